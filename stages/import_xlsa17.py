"""Import a benchmark in the xlsa17 format (res101.mat + att_splits.mat) into a feature store."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from stages._common import run, stage_command
from zerodiff.store import store_summary
from zerodiff.xlsa17 import FEATURES_FILE, SEMANTICS_FILE, import_xlsa17

log = logging.getLogger("zerodiff.import_xlsa17")


@stage_command
def main(
    dataset_dir: Path = typer.Argument(..., help="xlsa17 dataset folder, for example data/xlsa17/AWA2."),
    out: Path = typer.Option(..., "--out", help="Feature store to write (HDF5)."),
    semantics: Path = typer.Option(
        Path(SEMANTICS_FILE),
        "--semantics",
        help="Class semantics and splits file; a relative path is taken inside DATASET_DIR. "
        "Use sent_splits.mat for CUB's 1024-d text semantics.",
    ),
    features: Path = typer.Option(
        Path(FEATURES_FILE),
        "--features",
        help="File with features, labels and image_files; a relative path is taken inside DATASET_DIR.",
    ),
    dataset: str = typer.Option("", "--dataset", help="Dataset name stored in the file; default: the folder name."),
    class_order: str = typer.Option(
        "auto",
        "--class-order",
        help="How labels map to allclasses_names: 'auto' aligns by the folder's att_splits.mat or by CUB-style "
        "numeric prefixes, 'file' keeps the order of the semantics file.",
    ),
) -> None:
    """Import an xlsa17 dataset folder (res101.mat, att_splits.mat, optional ce_ce.mat and con_paco.mat)."""
    log.info("importing %s", dataset_dir)
    store = import_xlsa17(
        dataset_dir, out, semantics=semantics, features=features, dataset=dataset or None, class_order=class_order
    )
    log.info("summary: %s", dict(store_summary(store)))


if __name__ == "__main__":
    run(main)
