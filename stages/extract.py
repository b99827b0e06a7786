"""Fine-tune the CE and SC extractors on seen classes and write both feature sets to a feature store."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer

from stages._common import PARAMS_OPTION, SET_OPTION, run, stage_command, stage_config
from zerodiff.errors import UserError
from zerodiff.extraction import ExtractConfig, load_image_arrays, load_image_folder, load_xlsa17, run_extraction, save_extractor
from zerodiff.extraction.config import check_config
from zerodiff.extraction.sources import ImageSource
from zerodiff.store import store_summary, write_store

log = logging.getLogger("zerodiff.extract")

SOURCES = ("image-arrays", "xlsa17", "image-folder")


@stage_command
def main(
    source: str = typer.Option("image-arrays", "--source", help="Input kind: image-arrays, xlsa17 or image-folder."),
    input_path: Path = typer.Option(
        ..., "--input", help="Image-arrays folder, xlsa17 folder (res101.mat + att_splits.mat), or folder-per-class root."
    ),
    out: Path = typer.Option(..., "--out", help="Feature store to write (HDF5)."),
    models_dir: Path = typer.Option(..., "--models-dir", help="Folder for the fine-tuned extractors ce.pt and sc.pt."),
    image_root: Optional[Path] = typer.Option(None, "--image-root", help="xlsa17: folder that replaces the recorded image paths' dataset folder."),
    strip_prefix: Optional[str] = typer.Option(None, "--strip-prefix", help="xlsa17: literal prefix of the recorded paths to replace by --image-root."),
    splits_file: Optional[str] = typer.Option(None, "--splits-file", help="xlsa17: splits file name (default att_splits.mat, else sent_splits.mat)."),
    unseen_classes: Optional[Path] = typer.Option(None, "--unseen-classes", help="image-folder: text file with one unseen class name per line."),
    class_semantics: Optional[Path] = typer.Option(
        None, "--class-semantics", help="image-folder: CSV with a class name, then its attribute values, per row."
    ),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset name stored in the feature store (default: the input folder's name)."),
    params: Path = PARAMS_OPTION,
    overrides: list[str] = SET_OPTION,
) -> None:
    """Fine-tune F_ce and F_sc on seen-class images and extract both feature sets (ZeroDiff Alg. 1)."""
    started = time.perf_counter()
    config = stage_config(ExtractConfig, params, "extract", overrides)
    check_config(config, f"{params}: extract")
    images = _load_source(source, input_path, image_root, strip_prefix, splits_file, unseen_classes, class_semantics, dataset, config)
    log.info("read %s input %s: %d samples, %d classes", source, input_path, images.num_samples, len(images.class_names))

    result = run_extraction(images, config)

    for kind, checkpoint in result.extractors.items():
        save_extractor(models_dir / f"{kind}.pt", checkpoint)
    log.info("wrote fine-tuned extractors to %s", models_dir)
    write_store(out, result.store)
    log.info("wrote %s %s in %.1f s", out, dict(store_summary(result.store)), time.perf_counter() - started)


def _load_source(
    source: str,
    input_path: Path,
    image_root: Path | None,
    strip_prefix: str | None,
    splits_file: str | None,
    unseen_classes: Path | None,
    class_semantics: Path | None,
    dataset: str | None,
    config: ExtractConfig,
) -> ImageSource:
    if source == "image-arrays":
        return load_image_arrays(input_path)
    if source == "xlsa17":
        if image_root is None:
            raise UserError("--source xlsa17 needs --image-root, the folder that contains the images named in res101.mat")
        return load_xlsa17(input_path, image_root, strip_prefix, splits_file, dataset)
    if source == "image-folder":
        if unseen_classes is None or class_semantics is None:
            raise UserError("--source image-folder needs --unseen-classes and --class-semantics")
        return load_image_folder(input_path, unseen_classes, class_semantics, config.seen_test_fraction, config.split_seed, dataset)
    raise UserError(f"invalid --source {source!r}; expected one of {', '.join(SOURCES)}")


if __name__ == "__main__":
    run(main)
