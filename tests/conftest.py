"""Shared fixtures: small valid feature stores built in temporary folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zerodiff.store import FeatureStore

XLSA17_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "xlsa17"


def make_store(
    num_classes: int = 5,
    unseen: tuple[int, ...] = (3, 4),
    per_class: int = 12,
    d_ce: int = 6,
    d_sc: int | None = 4,
    num_attributes: int = 3,
    seed: int = 0,
) -> FeatureStore:
    """Build a valid store with class-dependent Gaussian features.

    Seen classes put two thirds of their samples in trainval and the rest in
    test_seen; unseen classes go to test_unseen. The first seen class is the
    validation class of the optional train/val split.
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), per_class).astype(np.int64)
    centres = rng.normal(size=(num_classes, d_ce)) * 3
    features_ce = (centres[labels] + rng.normal(size=(labels.size, d_ce))).astype(np.float32)
    features_sc = None
    if d_sc is not None:
        features_sc = rng.normal(size=(labels.size, d_sc)).astype(np.float32) + labels[:, None].astype(np.float32)
    trainval, test_seen, test_unseen = [], [], []
    for class_id in range(num_classes):
        members = np.flatnonzero(labels == class_id)
        if class_id in unseen:
            test_unseen.extend(members)
        else:
            cut = (2 * members.size) // 3
            trainval.extend(members[:cut])
            test_seen.extend(members[cut:])
    trainval = np.array(trainval, dtype=np.int64)
    seen = sorted(set(range(num_classes)) - set(unseen))
    in_val = labels[trainval] == seen[0]
    return FeatureStore(
        dataset="toy",
        features_ce=features_ce,
        features_sc=features_sc,
        labels=labels,
        class_names=[f"class_{i}" for i in range(num_classes)],
        attributes=rng.uniform(size=(num_classes, num_attributes)).astype(np.float32),
        splits={
            "trainval": trainval,
            "test_seen": np.array(test_seen, dtype=np.int64),
            "test_unseen": np.array(test_unseen, dtype=np.int64),
            "train": trainval[~in_val],
            "val": trainval[in_val],
        },
        provenance_ce={"source": "synthetic test data"},
        provenance_sc={"source": "synthetic test data"},
    )


@pytest.fixture
def toy_store() -> FeatureStore:
    return make_store()
