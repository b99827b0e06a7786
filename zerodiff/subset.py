"""The limited-data protocol: stratified, seeded, nested subsets of trainval.

For each seen class c with n_c trainval samples, a seeded permutation of that
class's samples is drawn once; a ratio keeps the first ``max(1, round(ratio * n_c))``
of them (round half up). Because the permutation does not depend on the ratio,
for one seed the 10% subset is contained in the 30% subset, which is contained
in the full trainval set.

The manifest is a Parquet file with one row per kept sample (``index`` into the
feature store, ``label``) and file metadata ``ratio``, ``seed``, ``source`` and
``store_sha256`` and ``protocol`` (``standard``, or ``validation`` for the
class-disjoint train/val split; see :func:`zerodiff.store.apply_protocol`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from zerodiff.atomic import atomic_output, sha256_file
from zerodiff.errors import UserError
from zerodiff.store import FeatureStore, apply_protocol, read_store

_METADATA_PREFIX = "zerodiff."


def kept_count(ratio: float, num_samples: int) -> int:
    """Return how many of ``num_samples`` a class keeps at ``ratio``: round half up, at least one.

    >>> [kept_count(0.1, n) for n in (3, 5, 15, 100)]
    [1, 1, 2, 10]
    """
    return max(1, math.floor(ratio * num_samples + 0.5))


def check_ratio(ratio: float) -> None:
    if not (0.0 < ratio <= 1.0) or math.isnan(ratio):
        raise UserError(f"invalid subset ratio {ratio}; expected a value in (0, 1], for example 0.1, 0.3 or 1.0")


def sample_subset(labels: np.ndarray, trainval: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Return the sorted indices kept from ``trainval`` at ``ratio`` with ``seed``.

    ``labels`` are the labels of all samples in the store, ``trainval`` the
    trainval indices into them. Sampling is stratified per class and nested
    across ratios for one seed (see the module docstring). Ratio 1.0 returns
    all of trainval.
    """
    check_ratio(ratio)
    trainval = np.asarray(trainval, dtype=np.int64)
    kept = []
    for class_id in np.unique(labels[trainval]):
        members = np.sort(trainval[labels[trainval] == class_id])
        # One independent stream per (seed, class): adding a class never reshuffles another.
        rng = np.random.default_rng(np.random.SeedSequence([seed, int(class_id)]))
        order = rng.permutation(members.size)
        kept.append(members[order[: kept_count(ratio, members.size)]])
    return np.sort(np.concatenate(kept)) if kept else np.empty(0, dtype=np.int64)


def indices_from_split_positions(
    positions: np.ndarray, labels: np.ndarray, trainval: np.ndarray, source: str
) -> np.ndarray:
    """Map 1-based ``trainval_loc`` positions (as in the published split files) to store indices.

    Raises :class:`UserError` for positions outside trainval, repeated positions,
    or a seen class left without samples.
    """
    positions = np.asarray(positions).astype(np.int64).ravel()
    if positions.size == 0:
        raise UserError(f"{source}: trainval_loc is empty")
    outside = positions[(positions < 1) | (positions > trainval.size)]
    if outside.size:
        raise UserError(
            f"{source}: trainval_loc has positions outside the trainval list [1, {trainval.size}]: "
            f"{', '.join(map(str, outside[:5].tolist()))}"
        )
    unique, counts = np.unique(positions, return_counts=True)
    if (counts > 1).any():
        raise UserError(f"{source}: trainval_loc repeats positions {', '.join(map(str, unique[counts > 1][:5].tolist()))}")
    indices = np.sort(trainval[positions - 1])
    missing = np.setdiff1d(np.unique(labels[trainval]), np.unique(labels[indices]))
    if missing.size:
        raise UserError(
            f"{source}: the split drops every sample of seen class(es) {', '.join(map(str, missing.tolist()))}; "
            "each seen class needs at least one training sample"
        )
    return indices


@dataclass(frozen=True)
class SubsetManifest:
    """A subset of trainval: sorted store indices with their labels and provenance."""

    indices: np.ndarray
    labels: np.ndarray
    ratio: float
    seed: int
    source: str
    store_sha256: str
    protocol: str = "standard"


def write_manifest(path: str | os.PathLike, manifest: SubsetManifest) -> None:
    """Write the manifest as Parquet, atomically, with deterministic bytes."""
    table = pa.Table.from_pandas(
        pd.DataFrame({"index": manifest.indices.astype(np.int64), "label": manifest.labels.astype(np.int64)}),
        preserve_index=False,
    )
    metadata = {
        f"{_METADATA_PREFIX}ratio": repr(float(manifest.ratio)),
        f"{_METADATA_PREFIX}seed": str(int(manifest.seed)),
        f"{_METADATA_PREFIX}source": manifest.source,
        f"{_METADATA_PREFIX}store_sha256": manifest.store_sha256,
        f"{_METADATA_PREFIX}protocol": manifest.protocol,
    }
    # Drop pandas' schema blob so the bytes depend only on the data and the metadata above.
    table = table.replace_schema_metadata({key.encode(): value.encode() for key, value in metadata.items()})
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def read_manifest(path: str | os.PathLike, store_path: str | os.PathLike | None = None) -> SubsetManifest:
    """Read a manifest; with ``store_path``, reject it unless it was made for that store.

    The check compares the SHA-256 recorded in the manifest with the store's.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"subset manifest not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise UserError(f"{path}: not a readable Parquet file ({error})") from None
    metadata = {key.decode(): value.decode() for key, value in (table.schema.metadata or {}).items()}
    missing = [key for key in ("ratio", "seed", "source", "store_sha256") if f"{_METADATA_PREFIX}{key}" not in metadata]
    if missing or set(table.column_names) != {"index", "label"}:
        raise UserError(f"{path}: not a subset manifest (missing metadata {missing or 'none'}, columns {table.column_names})")
    manifest = SubsetManifest(
        indices=table.column("index").to_numpy().astype(np.int64),
        labels=table.column("label").to_numpy().astype(np.int64),
        ratio=float(metadata[f"{_METADATA_PREFIX}ratio"]),
        seed=int(metadata[f"{_METADATA_PREFIX}seed"]),
        source=metadata[f"{_METADATA_PREFIX}source"],
        store_sha256=metadata[f"{_METADATA_PREFIX}store_sha256"],
        protocol=metadata.get(f"{_METADATA_PREFIX}protocol", "standard"),
    )
    if store_path is not None:
        actual = sha256_file(store_path)
        if actual != manifest.store_sha256:
            raise UserError(
                f"{path} was made for another feature store: it records SHA-256 {manifest.store_sha256}, "
                f"but {store_path} has {actual}; re-run the subset stage on this store"
            )
        _check_against_store(manifest, path, read_store(store_path, load_features=False))
    return manifest


def _check_against_store(manifest: SubsetManifest, path: Path, store: FeatureStore) -> None:
    trainval = apply_protocol(store, manifest.protocol).splits["trainval"]
    outside = np.setdiff1d(manifest.indices, trainval)
    if outside.size:
        raise UserError(f"{path}: indices not in the store's trainval split: {', '.join(map(str, outside[:5].tolist()))}")
    wrong = np.flatnonzero(store.labels[manifest.indices] != manifest.labels)
    if wrong.size:
        raise UserError(f"{path}: labels disagree with the store at indices {', '.join(map(str, manifest.indices[wrong][:5].tolist()))}")
