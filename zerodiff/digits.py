"""The embedded default dataset: scikit-learn's handwritten digits with seven-segment semantics.

``sklearn.datasets.load_digits`` ships 1,797 scanned 8x8 digits in 10 classes.
Each class's semantic vector is its seven-segment display code (segments a top,
b upper right, c lower right, d bottom, e lower left, f upper left, g middle).
Digits 2, 6 and 9 are unseen; the seen classes' samples are split 80/20 per
class into trainval and test_seen with a fixed seed, and every unseen sample is
test_unseen. Seen digits 3 and 7 form the class-disjoint validation split
(``val``); the other seen classes' trainval samples are ``train``.

:func:`write_image_arrays` writes the dataset as an *image arrays folder*, the
form the extract stage reads:

- ``images.npy``: float32 [N, H, W] pixel values in [0, ``pixel_max``]
- ``labels.npy``: int64 [N] class ids
- ``dataset.json``: ``format`` ("zerodiff-image-arrays"), ``format_version``,
  ``dataset``, ``class_names``, ``attribute_names``, ``attributes`` [C][A],
  ``pixel_max`` and ``splits`` (0-based sample indices per split name)

The bytes are the same on every run.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from zerodiff.atomic import atomic_output

IMAGE_ARRAYS_FORMAT = "zerodiff-image-arrays"
IMAGE_ARRAYS_VERSION = 1

SEGMENT_NAMES = ("a_top", "b_upper_right", "c_lower_right", "d_bottom", "e_lower_left", "f_upper_left", "g_middle")
# Seven-segment code per digit 0-9, segments in SEGMENT_NAMES order.
SEVEN_SEGMENT_CODES = np.array(
    [
        [1, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 0, 0, 0, 0],
        [1, 1, 0, 1, 1, 0, 1],
        [1, 1, 1, 1, 0, 0, 1],
        [0, 1, 1, 0, 0, 1, 1],
        [1, 0, 1, 1, 0, 1, 1],
        [1, 0, 1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 1, 1],
    ],
    dtype=np.float32,
)
UNSEEN_DIGITS = (2, 6, 9)
VALIDATION_DIGITS = (3, 7)
TEST_SEEN_FRACTION = 0.2
SPLIT_SEED = 0
PIXEL_MAX = 16.0


@dataclass(frozen=True)
class ImageArrays:
    """An image dataset held as arrays, with class semantics and splits."""

    dataset: str
    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    attribute_names: list[str]
    attributes: np.ndarray
    pixel_max: float
    splits: dict[str, np.ndarray]


def split_digits(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Return the fixed splits of the digits dataset as sorted 0-based index arrays."""
    trainval, test_seen, test_unseen = [], [], []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        if digit in UNSEEN_DIGITS:
            test_unseen.append(members)
            continue
        rng = np.random.default_rng(np.random.SeedSequence([SPLIT_SEED, digit]))
        shuffled = members[rng.permutation(members.size)]
        num_test = int(round(TEST_SEEN_FRACTION * members.size))
        test_seen.append(shuffled[:num_test])
        trainval.append(shuffled[num_test:])
    splits = {
        "trainval": np.sort(np.concatenate(trainval)),
        "test_seen": np.sort(np.concatenate(test_seen)),
        "test_unseen": np.sort(np.concatenate(test_unseen)),
    }
    in_val = np.isin(labels[splits["trainval"]], VALIDATION_DIGITS)
    splits["train"] = splits["trainval"][~in_val]
    splits["val"] = splits["trainval"][in_val]
    return splits


def load_digits_dataset() -> ImageArrays:
    """Load scikit-learn's digits with seven-segment semantics and the fixed splits."""
    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    return ImageArrays(
        dataset="digits",
        images=bunch.images.astype(np.float32),
        labels=labels,
        class_names=[str(digit) for digit in range(10)],
        attribute_names=list(SEGMENT_NAMES),
        attributes=SEVEN_SEGMENT_CODES.copy(),
        pixel_max=PIXEL_MAX,
        splits=split_digits(labels),
    )


def write_image_arrays(folder: str | os.PathLike, data: ImageArrays) -> None:
    """Write ``data`` as an image arrays folder; each file is written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_npy(folder / "images.npy", data.images.astype(np.float32))
    _write_npy(folder / "labels.npy", data.labels.astype(np.int64))
    description = {
        "format": IMAGE_ARRAYS_FORMAT,
        "format_version": IMAGE_ARRAYS_VERSION,
        "dataset": data.dataset,
        "class_names": data.class_names,
        "attribute_names": data.attribute_names,
        "attributes": data.attributes.astype(float).tolist(),
        "pixel_max": data.pixel_max,
        "splits": {name: indices.astype(int).tolist() for name, indices in data.splits.items()},
    }
    with atomic_output(folder / "dataset.json") as tmp:
        tmp.write_text(json.dumps(description, indent=1) + "\n")


def _write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
