"""Limited-data subsets: stratified counts, nesting, determinism, split import, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

from stages import subset as subset_stage
from stages._common import make_app
from tests.conftest import make_store
from zerodiff.atomic import sha256_file
from zerodiff.errors import UserError
from zerodiff.store import write_store
from zerodiff.subset import indices_from_split_positions, kept_count, read_manifest, sample_subset

runner = CliRunner()


def _labels_with_sizes(sizes: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.concatenate([np.full(n, c) for c, n in sizes.items()]).astype(np.int64)
    return labels, np.arange(labels.size, dtype=np.int64)


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (0.1, {0: 1, 1: 2, 2: 10, 3: 1}),
        (0.3, {0: 1, 1: 5, 2: 30, 3: 2}),
        (0.5, {0: 2, 1: 8, 2: 50, 3: 4}),
        (1.0, {0: 3, 1: 15, 2: 100, 3: 7}),
    ],
)
def test_per_class_counts(ratio, expected):
    labels, trainval = _labels_with_sizes({0: 3, 1: 15, 2: 100, 3: 7})
    kept = sample_subset(labels, trainval, ratio, seed=0)
    counts = dict(zip(*np.unique(labels[kept], return_counts=True)))
    assert {int(c): int(n) for c, n in counts.items()} == expected


def test_kept_count_rounds_half_up():
    assert kept_count(0.5, 5) == 3
    assert kept_count(0.5, 3) == 2
    assert kept_count(0.01, 10) == 1


def test_nested_across_ratios():
    labels, trainval = _labels_with_sizes({0: 40, 1: 23, 2: 3, 3: 57})
    for seed in (0, 1, 9182):
        small = set(sample_subset(labels, trainval, 0.1, seed).tolist())
        medium = set(sample_subset(labels, trainval, 0.3, seed).tolist())
        full = set(sample_subset(labels, trainval, 1.0, seed).tolist())
        assert small <= medium
        assert medium <= full
        assert full == set(trainval.tolist())


def test_seeds_differ_and_repeat():
    labels, trainval = _labels_with_sizes({0: 50, 1: 50})
    first = sample_subset(labels, trainval, 0.3, seed=0)
    np.testing.assert_array_equal(first, sample_subset(labels, trainval, 0.3, seed=0))
    assert not np.array_equal(first, sample_subset(labels, trainval, 0.3, seed=1))


def test_only_trainval_samples_are_drawn():
    store = make_store()
    kept = sample_subset(store.labels, store.splits["trainval"], 0.5, seed=3)
    assert set(kept.tolist()) <= set(store.splits["trainval"].tolist())


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5, float("nan")])
def test_invalid_ratio_rejected(ratio):
    labels, trainval = _labels_with_sizes({0: 5})
    with pytest.raises(UserError, match="invalid subset ratio"):
        sample_subset(labels, trainval, ratio, seed=0)


def test_split_positions_map_to_store_indices():
    labels = np.array([0, 0, 1, 1, 2, 2], dtype=np.int64)
    trainval = np.array([5, 0, 2, 1], dtype=np.int64)
    indices = indices_from_split_positions(np.array([[2], [3], [1]]), labels, trainval, "split.mat")
    assert indices.tolist() == [0, 2, 5]


def test_split_positions_errors():
    labels = np.array([0, 0, 1, 1], dtype=np.int64)
    trainval = np.array([0, 1, 2, 3], dtype=np.int64)
    with pytest.raises(UserError, match=r"outside the trainval list \[1, 4\]: 5"):
        indices_from_split_positions(np.array([1, 5]), labels, trainval, "split.mat")
    with pytest.raises(UserError, match="repeats positions 2"):
        indices_from_split_positions(np.array([2, 2, 3]), labels, trainval, "split.mat")
    with pytest.raises(UserError, match="drops every sample of seen class"):
        indices_from_split_positions(np.array([1, 2]), labels, trainval, "split.mat")


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "store.h5"
    write_store(path, make_store(per_class=30))
    return path


def _run_subset(*args):
    return runner.invoke(make_app(subset_stage.main), list(args), catch_exceptions=False)


def test_stage_writes_identical_manifests(tmp_path, store_path):
    for name in ("a", "b"):
        result = _run_subset("--store", str(store_path), "--out", str(tmp_path / f"{name}.parquet"), "--set", "ratio=0.3")
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    manifest = read_manifest(tmp_path / "a.parquet", store_path)
    assert manifest.ratio == 0.3
    assert manifest.seed == 0
    assert manifest.source == "sampled"
    assert manifest.store_sha256 == sha256_file(store_path)
    assert manifest.indices.size == 3 * kept_count(0.3, 20)


def test_stage_imports_split_file(tmp_path, store_path):
    positions = np.array([[1], [2], [21], [41], [42]], dtype=np.uint16)
    split_file = tmp_path / "split_10percent.mat"
    scipy.io.savemat(split_file, {"trainval_loc": positions})
    out = tmp_path / "subset.parquet"
    result = _run_subset("--store", str(store_path), "--out", str(out), "--from-split", str(split_file))
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out, store_path)
    from zerodiff.store import read_store

    trainval = read_store(store_path).splits["trainval"]
    np.testing.assert_array_equal(manifest.indices, np.sort(trainval[positions.ravel() - 1]))
    assert "split_10percent.mat" in manifest.source


def test_stage_rejects_split_dropping_class(tmp_path, store_path):
    split_file = tmp_path / "split.mat"
    scipy.io.savemat(split_file, {"trainval_loc": np.array([[1], [2]])})
    out = tmp_path / "subset.parquet"
    result = runner.invoke(make_app(subset_stage.main), ["--store", str(store_path), "--out", str(out), "--from-split", str(split_file)])
    assert result.exit_code == 1
    assert "drops every sample of seen class" in result.output
    assert not out.exists()


def test_stage_rejects_invalid_ratio(tmp_path, store_path):
    out = tmp_path / "subset.parquet"
    result = runner.invoke(make_app(subset_stage.main), ["--store", str(store_path), "--out", str(out), "--set", "ratio=1.5"])
    assert result.exit_code == 1
    assert "invalid subset ratio 1.5" in result.output
    assert not out.exists()


def test_manifest_for_other_store_rejected(tmp_path, store_path):
    out = tmp_path / "subset.parquet"
    assert _run_subset("--store", str(store_path), "--out", str(out)).exit_code == 0
    other = tmp_path / "other.h5"
    write_store(other, make_store(seed=5, per_class=30))
    with pytest.raises(UserError) as error:
        read_manifest(out, other)
    assert sha256_file(store_path) in str(error.value)
    assert sha256_file(other) in str(error.value)


def test_validation_protocol_samples_train_classes(tmp_path, store_path):
    out = tmp_path / "subset.parquet"
    assert _run_subset("--store", str(store_path), "--out", str(out), "--set", "protocol=validation").exit_code == 0
    manifest = read_manifest(out, store_path)
    from zerodiff.store import read_store

    store = read_store(store_path)
    assert manifest.protocol == "validation"
    assert set(manifest.labels.tolist()) == set(store.labels[store.splits["train"]].tolist())
