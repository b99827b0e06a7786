"""Select the limited-data subset of the seen-class training samples."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import typer

from stages._common import PARAMS_OPTION, SET_OPTION, run, stage_command, stage_config
from zerodiff.atomic import sha256_file
from zerodiff.errors import UserError
from zerodiff.matfile import load_mat
from zerodiff.store import apply_protocol, read_store
from zerodiff.subset import SubsetManifest, check_ratio, indices_from_split_positions, sample_subset, write_manifest

log = logging.getLogger("zerodiff.subset")


@dataclass(frozen=True)
class SubsetConfig:
    """Parameters of the subset stage.

    ``ratio`` is the kept fraction of each seen class's trainval samples, in (0, 1].
    ``protocol`` ``validation`` samples from the class-disjoint train split instead
    of trainval, for tuning without touching the test classes.
    """

    ratio: float = 1.0
    seed: int = 0
    protocol: Literal["standard", "validation"] = "standard"


@stage_command
def main(
    store: Path = typer.Option(..., "--store", help="Feature store (HDF5) to sample from."),
    out: Path = typer.Option(..., "--out", help="Subset manifest to write (Parquet)."),
    from_split: Path = typer.Option(
        None,
        "--from-split",
        help="Import a published split file (split_10percent.mat, split_30percent.mat) with 1-based "
        "trainval_loc positions instead of sampling; ratio is then taken from the file.",
    ),
    params: Path = PARAMS_OPTION,
    overrides: list[str] = SET_OPTION,
) -> None:
    """Keep a stratified, seeded, nested fraction of each seen class's training samples."""
    config = stage_config(SubsetConfig, params, "subset", overrides)
    try:
        check_ratio(config.ratio)
    except UserError as error:
        raise UserError(f"{params}: subset.ratio: {error}") from None
    feature_store = apply_protocol(read_store(store, load_features=False), config.protocol)
    labels = feature_store.labels
    trainval = feature_store.splits["trainval"]
    _warn_if_extractor_saw_another_subset(feature_store.provenance_ce, config)

    if from_split is None:
        indices = sample_subset(labels, trainval, config.ratio, config.seed)
        source, ratio = "sampled", config.ratio
    else:
        if config.protocol != "standard":
            raise UserError(f"--from-split positions index the standard trainval list; set subset.protocol to standard, not {config.protocol!r}")
        positions = load_mat(from_split, ["trainval_loc"])["trainval_loc"]
        indices = indices_from_split_positions(positions, labels, trainval, str(from_split))
        source, ratio = f"imported from {from_split.name} (SHA-256 {sha256_file(from_split)})", indices.size / trainval.size

    manifest = SubsetManifest(
        indices=indices,
        labels=labels[indices],
        ratio=ratio,
        seed=config.seed,
        source=source,
        store_sha256=sha256_file(store),
        protocol=config.protocol,
    )
    write_manifest(out, manifest)
    classes, counts = np.unique(manifest.labels, return_counts=True)
    per_class = ", ".join(f"{feature_store.class_names[c]}: {n}" for c, n in zip(classes, counts))
    log.info("kept %d of %d trainval samples (ratio %.4g, seed %d, %s) -> %s", indices.size, trainval.size, ratio, config.seed, source, out)
    log.info("per-class counts: %s", per_class)


def _warn_if_extractor_saw_another_subset(provenance: dict, config: SubsetConfig) -> None:
    """Warn when strict extractor fine-tuning used another ratio or seed than this subset."""
    finetune = provenance.get("finetune", provenance)
    if finetune.get("finetune_on") != "subset":
        return
    ratio, seed = finetune.get("subset_ratio"), finetune.get("subset_seed")
    if ratio != config.ratio or seed != config.seed:
        log.warning(
            "the extractors were fine-tuned on the subset with ratio %s and seed %s, but this subset uses ratio %s "
            "and seed %s; set extract.subset_ratio and extract.subset_seed to match for the strict protocol",
            ratio, seed, config.ratio, config.seed,
        )


if __name__ == "__main__":
    run(main)
