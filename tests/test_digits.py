"""Embedded digits dataset: determinism, documented split sizes, semantics."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from stages import prepare_digits
from stages._common import make_app
from zerodiff.digits import SEVEN_SEGMENT_CODES, load_digits_dataset

# Split sizes documented in the README (sklearn's 1,797 digits, split seed 0).
EXPECTED_SIZES = {"trainval": 1007, "test_seen": 252, "test_unseen": 538, "train": 718, "val": 289}


def test_prepare_is_byte_identical(tmp_path):
    app = make_app(prepare_digits.main)
    for name in ("first", "second"):
        result = CliRunner().invoke(app, ["--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    for file_name in ("images.npy", "labels.npy", "dataset.json"):
        assert (tmp_path / "first" / file_name).read_bytes() == (tmp_path / "second" / file_name).read_bytes()
    description = json.loads((tmp_path / "first" / "dataset.json").read_text())
    assert description["format"] == "zerodiff-image-arrays"
    assert {name: len(indices) for name, indices in description["splits"].items()} == EXPECTED_SIZES
    assert np.load(tmp_path / "first" / "images.npy").shape == (1797, 8, 8)


def test_splits_follow_the_protocol():
    data = load_digits_dataset()
    labels, splits = data.labels, data.splits
    assert sorted(set(labels[splits["test_unseen"]].tolist())) == [2, 6, 9]
    assert sorted(set(labels[splits["trainval"]].tolist())) == [0, 1, 3, 4, 5, 7, 8]
    assert sorted(set(labels[splits["val"]].tolist())) == [3, 7]
    assert not set(labels[splits["train"]].tolist()) & {3, 7, 2, 6, 9}
    for digit in (0, 1, 3, 4, 5, 7, 8):
        total = int((labels == digit).sum())
        in_test = int((labels[splits["test_seen"]] == digit).sum())
        assert in_test == round(0.2 * total)
    everything = np.concatenate([splits["trainval"], splits["test_seen"], splits["test_unseen"]])
    assert np.array_equal(np.sort(everything), np.arange(labels.size))


def test_seven_segment_codes():
    # Segment counts of the digits 0-9 on a seven-segment display.
    assert SEVEN_SEGMENT_CODES.sum(axis=1).tolist() == [6, 2, 5, 5, 4, 5, 6, 3, 7, 6]
    assert len({tuple(row) for row in SEVEN_SEGMENT_CODES.tolist()}) == 10
