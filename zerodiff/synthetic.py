"""The synthetic-feature file written by synthesis and read by evaluation (HDF5).

=================  =====================  ===========================================
path               dtype, shape           meaning
=================  =====================  ===========================================
/features/ce       float32 [M, D_ce]      generated features ṽ0, preprocessed space
/features/sc       float32 [M, D_sc]      generated representations r̃0 (optional),
                                          preprocessed space
/labels            int64 [M]              global class ids of the feature store
=================  =====================  ===========================================

"Preprocessed space" means the output of the generator, which was trained on
features transformed by the scaler saved in the DFG checkpoint; evaluation
applies that scaler to real features, never to these. Root attributes:
``sampler``, ``per_class`` (synthetic samples per class), ``store_sha256``,
``drg_sha256``, ``dfg_sha256``, ``seed`` and any other provenance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from zerodiff.atomic import atomic_output
from zerodiff.errors import UserError


@dataclass
class SyntheticFeatures:
    """Generated samples for a set of classes."""

    features_ce: np.ndarray
    labels: np.ndarray
    features_sc: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def _validate(synthetic: SyntheticFeatures, where: str) -> None:
    rows = synthetic.features_ce.shape[0]
    if synthetic.features_ce.ndim != 2 or rows == 0:
        raise UserError(f"{where}: /features/ce must be a non-empty 2-D array, got shape {synthetic.features_ce.shape}")
    if synthetic.labels.shape != (rows,):
        raise UserError(f"{where}: /labels has shape {synthetic.labels.shape}, expected [{rows}]")
    arrays = {"/features/ce": synthetic.features_ce}
    if synthetic.features_sc is not None:
        if synthetic.features_sc.ndim != 2 or synthetic.features_sc.shape[0] != rows:
            raise UserError(f"{where}: /features/sc has shape {synthetic.features_sc.shape}, expected [{rows}, D_sc]")
        arrays["/features/sc"] = synthetic.features_sc
    for path, array in arrays.items():
        if not np.isfinite(array).all():
            raise UserError(f"{where}: {path} contains NaN or Inf")


def write_synthetic(path: str | os.PathLike, synthetic: SyntheticFeatures) -> None:
    """Validate and write synthetic features atomically."""
    _validate(synthetic, str(path))
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as handle:
            for key, value in synthetic.attrs.items():
                handle.attrs[key] = value
            handle.create_dataset("features/ce", data=synthetic.features_ce.astype(np.float32))
            if synthetic.features_sc is not None:
                handle.create_dataset("features/sc", data=synthetic.features_sc.astype(np.float32))
            handle.create_dataset("labels", data=synthetic.labels.astype(np.int64))


def read_synthetic(path: str | os.PathLike) -> SyntheticFeatures:
    """Read and validate a synthetic-feature file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"synthetic features not found: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise UserError(f"{path}: not a readable HDF5 file ({error})") from None
    with handle:
        for key in ("features/ce", "labels"):
            if key not in handle:
                raise UserError(f"{path}: missing dataset /{key}; is this a file written by the synthesize stage?")
        attrs = {}
        for key, value in handle.attrs.items():
            attrs[key] = value.item() if isinstance(value, np.generic) else value
        synthetic = SyntheticFeatures(
            features_ce=np.asarray(handle["features/ce"][()], dtype=np.float32),
            features_sc=np.asarray(handle["features/sc"][()], dtype=np.float32) if "features/sc" in handle else None,
            labels=np.asarray(handle["labels"][()], dtype=np.int64),
            attrs=attrs,
        )
    _validate(synthetic, str(path))
    return synthetic
