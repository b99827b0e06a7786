"""The HDF5 feature store: one validated file per dataset.

Schema (all indices 0-based):

=======================  =====================  =======================================
path                     dtype, shape           meaning
=======================  =====================  =======================================
/features/ce             float32 [N, D_ce]      cross-entropy extractor features (v0)
/features/sc             float32 [N, D_sc]      supervised-contrastive representations
                                                (r0); absent when no SC source exists
/labels                  int64 [N]              class index into /classes/*
/classes/names           utf-8 str [C]          class names in label order
/classes/attributes      float32 [C, A]         class semantics, unnormalised
/splits/trainval         int64                  seen-class training samples
/splits/test_seen        int64                  seen-class test samples
/splits/test_unseen      int64                  unseen-class test samples
/splits/train, /val      int64 (optional)       class-disjoint validation split
/image_files             utf-8 str [N] (opt.)   source image path per sample
=======================  =====================  =======================================

Root attributes: ``format_version``, ``dataset``, ``sc_available`` and, per
feature set, provenance as a JSON string under ``provenance_ce`` /
``provenance_sc``. Any further attribute is kept as given.

:func:`write_store` validates before writing and writes atomically;
:func:`read_store` validates on open. Every violation raises :class:`UserError`
naming the file, the HDF5 path and the offending values.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from zerodiff.atomic import atomic_output
from zerodiff.errors import UserError

FORMAT_VERSION = 1
REQUIRED_SPLITS = ("trainval", "test_seen", "test_unseen")
OPTIONAL_SPLITS = ("train", "val")
_MAX_LISTED = 5  # offending values quoted in an error message


@dataclass
class FeatureStore:
    """In-memory contents of a feature store.

    ``features_sc`` is None when the dataset has no supervised-contrastive
    representations. ``attrs`` contains the root attributes other than
    ``format_version``, ``dataset``, ``sc_available`` and the provenance entries.
    """

    dataset: str
    features_ce: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    attributes: np.ndarray
    splits: dict[str, np.ndarray]
    features_sc: np.ndarray | None = None
    image_files: list[str] | None = None
    provenance_ce: dict[str, Any] = field(default_factory=dict)
    provenance_sc: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def seen_classes(self) -> np.ndarray:
        """Sorted class ids that occur in trainval."""
        return np.unique(self.labels[self.splits["trainval"]])

    @property
    def unseen_classes(self) -> np.ndarray:
        """Sorted class ids that occur in test_unseen."""
        return np.unique(self.labels[self.splits["test_unseen"]])


def _listed(values: np.ndarray | list) -> str:
    values = list(np.asarray(values).ravel()[:_MAX_LISTED].tolist())
    return ", ".join(map(str, values))


def validate_store(store: FeatureStore, source: str | os.PathLike) -> None:
    """Check every schema rule; raise :class:`UserError` on the first violation.

    ``source`` is the file name quoted in messages.
    """
    where = str(source)
    n = store.features_ce.shape[0] if store.features_ce.ndim == 2 else -1
    if store.features_ce.ndim != 2 or n == 0:
        raise UserError(f"{where}: /features/ce must be a non-empty 2-D array, got shape {store.features_ce.shape}")
    _check_finite(store.features_ce, where, "/features/ce")
    if store.features_sc is not None:
        if store.features_sc.ndim != 2 or store.features_sc.shape[0] != n:
            raise UserError(f"{where}: /features/sc has shape {store.features_sc.shape}, expected [{n}, D_sc] to match /features/ce")
        _check_finite(store.features_sc, where, "/features/sc")

    labels = store.labels
    if labels.ndim != 1 or labels.shape[0] != n:
        raise UserError(f"{where}: /labels has shape {labels.shape}, expected [{n}] to match /features/ce")
    num_classes = len(store.class_names)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise UserError(
            f"{where}: /labels out of range [0, {num_classes}) at sample(s) {_listed(bad)} with value(s) {_listed(labels[bad])}"
        )
    if store.attributes.ndim != 2 or store.attributes.shape[0] != num_classes:
        raise UserError(
            f"{where}: /classes/attributes has shape {store.attributes.shape}, expected [{num_classes}, A] "
            f"to match the {num_classes} entries of /classes/names"
        )
    _check_finite(store.attributes, where, "/classes/attributes")
    if len(set(store.class_names)) != num_classes:
        duplicates = sorted({name for name in store.class_names if store.class_names.count(name) > 1})
        raise UserError(f"{where}: /classes/names has duplicate names: {', '.join(duplicates[:_MAX_LISTED])}")

    for name in REQUIRED_SPLITS:
        if name not in store.splits:
            raise UserError(f"{where}: missing split /splits/{name}")
    for name, indices in store.splits.items():
        if name not in REQUIRED_SPLITS + OPTIONAL_SPLITS:
            raise UserError(f"{where}: unknown split /splits/{name}; valid splits are {', '.join(REQUIRED_SPLITS + OPTIONAL_SPLITS)}")
        if indices.ndim != 1:
            raise UserError(f"{where}: /splits/{name} must be 1-D, got shape {indices.shape}")
        bad = indices[(indices < 0) | (indices >= n)]
        if bad.size:
            raise UserError(f"{where}: /splits/{name} has indices out of range [0, {n}): {_listed(bad)}")
        uniq, counts = np.unique(indices, return_counts=True)
        if (counts > 1).any():
            raise UserError(f"{where}: /splits/{name} repeats indices: {_listed(uniq[counts > 1])}")
    for position, first in enumerate(REQUIRED_SPLITS):
        for second in REQUIRED_SPLITS[position + 1 :]:
            overlap = np.intersect1d(store.splits[first], store.splits[second])
            if overlap.size:
                raise UserError(f"{where}: /splits/{first} and /splits/{second} overlap at indices {_listed(overlap)}")
    if "train" in store.splits or "val" in store.splits:
        if not ("train" in store.splits and "val" in store.splits):
            raise UserError(f"{where}: /splits/train and /splits/val must be given together")
        overlap = np.intersect1d(store.splits["train"], store.splits["val"])
        if overlap.size:
            raise UserError(f"{where}: /splits/train and /splits/val overlap at indices {_listed(overlap)}")
        shared = np.intersect1d(labels[store.splits["train"]], labels[store.splits["val"]])
        if shared.size:
            raise UserError(f"{where}: /splits/train and /splits/val share classes {_listed(shared)}; they must be class-disjoint")

    seen = np.unique(labels[store.splits["trainval"]])
    unseen = np.unique(labels[store.splits["test_unseen"]])
    if seen.size == 0 or unseen.size == 0:
        raise UserError(f"{where}: /splits/trainval and /splits/test_unseen must both be non-empty")
    both = np.intersect1d(seen, unseen)
    if both.size:
        names = [store.class_names[i] for i in both[:_MAX_LISTED]]
        raise UserError(
            f"{where}: unseen classes occur in /splits/trainval: class id(s) {_listed(both)} ({', '.join(names)})"
        )
    test_seen_classes = np.unique(labels[store.splits["test_seen"]])
    not_seen = np.setdiff1d(test_seen_classes, seen)
    if not_seen.size:
        raise UserError(f"{where}: /splits/test_seen contains classes that are not in /splits/trainval: {_listed(not_seen)}")

    if store.image_files is not None and len(store.image_files) != n:
        raise UserError(f"{where}: /image_files has {len(store.image_files)} entries, expected {n}")


def _check_finite(array: np.ndarray, where: str, path: str) -> None:
    finite = np.isfinite(array)
    if not finite.all():
        rows = np.unique(np.argwhere(~finite)[:, 0])
        raise UserError(f"{where}: {path} contains NaN or Inf in row(s) {_listed(rows)} ({rows.size} rows in all)")


def write_store(path: str | os.PathLike, store: FeatureStore) -> None:
    """Validate ``store`` and write it to ``path`` atomically."""
    path = Path(path)
    validate_store(store, path)
    text = h5py.string_dtype(encoding="utf-8")
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as handle:
            handle.attrs["format_version"] = FORMAT_VERSION
            handle.attrs["dataset"] = store.dataset
            handle.attrs["sc_available"] = store.features_sc is not None
            handle.attrs["provenance_ce"] = json.dumps(store.provenance_ce, sort_keys=True)
            if store.features_sc is not None:
                handle.attrs["provenance_sc"] = json.dumps(store.provenance_sc, sort_keys=True)
            for key, value in store.attrs.items():
                handle.attrs[key] = value
            handle.create_dataset("features/ce", data=np.asarray(store.features_ce, dtype=np.float32))
            if store.features_sc is not None:
                handle.create_dataset("features/sc", data=np.asarray(store.features_sc, dtype=np.float32))
            handle.create_dataset("labels", data=np.asarray(store.labels, dtype=np.int64))
            handle.create_dataset("classes/names", data=list(store.class_names), dtype=text)
            handle.create_dataset("classes/attributes", data=np.asarray(store.attributes, dtype=np.float32))
            for name, indices in store.splits.items():
                handle.create_dataset(f"splits/{name}", data=np.asarray(indices, dtype=np.int64))
            if store.image_files is not None:
                handle.create_dataset("image_files", data=list(store.image_files), dtype=text)


def read_store(path: str | os.PathLike, *, load_features: bool = True) -> FeatureStore:
    """Open and validate a feature store.

    With ``load_features=False`` the feature matrices are not read: they are
    returned as empty arrays of shape ``[0, D]``, and validation covers labels,
    classes and splits only.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"feature store not found: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise UserError(f"{path}: not a readable HDF5 file ({error})") from None
    with handle:
        for key in ("features/ce", "labels", "classes/names", "classes/attributes"):
            if key not in handle:
                raise UserError(f"{path}: missing dataset /{key}; is this a feature store written by zerodiff?")
        version = handle.attrs.get("format_version")
        if version != FORMAT_VERSION:
            raise UserError(f"{path}: format_version is {version!r}, expected {FORMAT_VERSION}")
        num_rows = handle["features/ce"].shape[0]
        features_ce = _read_features(handle, "features/ce", path, load_features)
        features_sc = _read_features(handle, "features/sc", path, load_features) if "features/sc" in handle else None
        splits = {}
        if "splits" in handle:
            splits = {name: np.asarray(dataset[()], dtype=np.int64) for name, dataset in handle["splits"].items()}
        attrs = {key: _plain(value) for key, value in handle.attrs.items()}
        store = FeatureStore(
            dataset=str(attrs.pop("dataset", path.stem)),
            features_ce=features_ce,
            features_sc=features_sc,
            labels=np.asarray(handle["labels"][()], dtype=np.int64),
            class_names=_read_strings(handle["classes/names"]),
            attributes=np.asarray(handle["classes/attributes"][()], dtype=np.float32),
            splits=splits,
            image_files=_read_strings(handle["image_files"]) if "image_files" in handle else None,
            provenance_ce=json.loads(attrs.pop("provenance_ce", "{}")),
            provenance_sc=json.loads(attrs.pop("provenance_sc", "{}")),
        )
    attrs.pop("format_version", None)
    attrs.pop("sc_available", None)
    store.attrs = attrs
    if load_features:
        validate_store(store, path)
    else:
        stand_in = np.zeros((num_rows, 1), dtype=np.float32)
        validate_store(dataclasses.replace(store, features_ce=stand_in, features_sc=None), path)
    return store


def _read_features(handle: h5py.File, key: str, path: Path, load: bool) -> np.ndarray:
    dataset = handle[key]
    if dataset.ndim != 2:
        raise UserError(f"{path}: /{key} must be 2-D, got shape {dataset.shape}")
    if not load:
        return np.empty((0, dataset.shape[1]), dtype=np.float32)
    return np.asarray(dataset[()], dtype=np.float32)


def _read_strings(dataset: h5py.Dataset) -> list[str]:
    return [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in dataset[()]]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


VALIDATION_TEST_FRACTION = 0.2
VALIDATION_SPLIT_SEED = 0


def apply_protocol(store: FeatureStore, protocol: str) -> FeatureStore:
    """Return ``store`` with its splits arranged for an evaluation protocol.

    ``standard`` returns the store unchanged. ``validation`` is the honest way to
    tune, and it uses trainval samples only, so no test image is ever touched:

    - trainval: samples of ``/splits/train`` that are in trainval, less the
      held-out part below;
    - test_seen: a seeded 20% of those samples per train class (at least one
      held out whenever a class has two or more);
    - test_unseen: samples of ``/splits/val`` that are in trainval.

    In the xlsa17 files ``train`` and ``val`` also cover the standard test_seen
    samples, which is why both are intersected with trainval.
    """
    if protocol == "standard":
        return store
    if protocol != "validation":
        raise UserError(f"invalid protocol {protocol!r}; expected one of 'standard', 'validation'")
    if "train" not in store.splits or "val" not in store.splits:
        raise UserError(
            f"feature store {store.dataset!r} has no /splits/train and /splits/val, so the validation protocol "
            "is unavailable; use protocol: standard"
        )
    trainval = store.splits["trainval"]
    train = np.intersect1d(store.splits["train"], trainval)
    val = np.intersect1d(store.splits["val"], trainval)
    if train.size == 0 or val.size == 0:
        raise UserError(f"feature store {store.dataset!r}: /splits/train or /splits/val has no trainval samples")
    held_out = []
    for class_id in np.unique(store.labels[train]):
        members = train[store.labels[train] == class_id]
        rng = np.random.default_rng(np.random.SeedSequence([VALIDATION_SPLIT_SEED, int(class_id)]))
        num_held_out = max(1, round(VALIDATION_TEST_FRACTION * members.size)) if members.size > 1 else 0
        held_out.append(members[rng.permutation(members.size)[:num_held_out]])
    test_seen = np.sort(np.concatenate(held_out))
    splits = {
        "trainval": np.setdiff1d(train, test_seen),
        "test_seen": test_seen,
        "test_unseen": val,
    }
    return dataclasses.replace(store, splits=splits)


def store_summary(store: FeatureStore) -> Mapping[str, Any]:
    """Return counts for a log line: samples, classes, dimensions, split sizes."""
    return {
        "samples": int(store.labels.shape[0]),
        "classes": store.num_classes,
        "seen": int(store.seen_classes.size),
        "unseen": int(store.unseen_classes.size),
        "d_ce": int(store.features_ce.shape[1]),
        "d_sc": None if store.features_sc is None else int(store.features_sc.shape[1]),
        "attributes": int(store.attributes.shape[1]),
        **{f"split_{name}": int(indices.size) for name, indices in store.splits.items()},
    }
