"""Feature store: schema round trip and every validation rule."""

from __future__ import annotations

import dataclasses
import re

import h5py
import numpy as np
import pytest

from tests.conftest import make_store
from zerodiff.errors import UserError
from zerodiff.store import FORMAT_VERSION, apply_protocol, read_store, write_store


def test_round_trip_preserves_everything(tmp_path, toy_store):
    path = tmp_path / "store.h5"
    toy_store.image_files = [f"img/{i}.png" for i in range(toy_store.labels.size)]
    toy_store.attrs = {"note": "kept"}
    write_store(path, toy_store)
    loaded = read_store(path)
    np.testing.assert_array_equal(loaded.features_ce, toy_store.features_ce)
    np.testing.assert_array_equal(loaded.features_sc, toy_store.features_sc)
    np.testing.assert_array_equal(loaded.labels, toy_store.labels)
    np.testing.assert_array_equal(loaded.attributes, toy_store.attributes)
    assert loaded.class_names == toy_store.class_names
    assert loaded.image_files == toy_store.image_files
    assert set(loaded.splits) == set(toy_store.splits)
    for name, indices in toy_store.splits.items():
        np.testing.assert_array_equal(loaded.splits[name], indices)
    assert loaded.provenance_ce == toy_store.provenance_ce
    assert loaded.attrs == {"note": "kept"}
    assert loaded.dataset == "toy"


def test_file_matches_schema_with_plain_h5py(tmp_path, toy_store):
    path = tmp_path / "store.h5"
    write_store(path, toy_store)
    with h5py.File(path, "r") as handle:
        assert handle.attrs["format_version"] == FORMAT_VERSION
        assert handle["features/ce"].dtype == np.float32
        assert handle["features/sc"].dtype == np.float32
        assert handle["labels"].dtype == np.int64
        assert handle["classes/attributes"].dtype == np.float32
        assert handle["splits/trainval"].dtype == np.int64
        assert handle["classes/names"][0].decode() == "class_0"


def test_store_without_sc_round_trips(tmp_path):
    store = make_store(d_sc=None)
    write_store(tmp_path / "store.h5", store)
    loaded = read_store(tmp_path / "store.h5")
    assert loaded.features_sc is None
    with h5py.File(tmp_path / "store.h5", "r") as handle:
        assert not handle.attrs["sc_available"]


def test_load_features_false_skips_matrices(tmp_path, toy_store):
    write_store(tmp_path / "store.h5", toy_store)
    loaded = read_store(tmp_path / "store.h5", load_features=False)
    assert loaded.features_ce.shape == (0, toy_store.features_ce.shape[1])
    np.testing.assert_array_equal(loaded.labels, toy_store.labels)


def _break(store, **changes):
    broken = dataclasses.replace(store, **changes)
    broken.splits = dict(broken.splits)
    return broken


def _bad_stores(store):
    nan_features = store.features_ce.copy()
    nan_features[4, 1] = np.nan
    inf_sc = store.features_sc.copy()
    inf_sc[2, 0] = np.inf
    labels_out = store.labels.copy()
    labels_out[0] = store.num_classes
    unseen_in_trainval = dict(store.splits)
    unseen_in_trainval["trainval"] = np.append(store.splits["trainval"], store.splits["test_unseen"][0])
    unseen_in_trainval["test_unseen"] = store.splits["test_unseen"][1:]
    overlap = dict(store.splits)
    overlap["test_seen"] = np.append(store.splits["test_seen"], store.splits["trainval"][0])
    out_of_range = dict(store.splits)
    out_of_range["test_seen"] = np.append(store.splits["test_seen"], store.labels.size + 3)
    missing_split = {k: v for k, v in store.splits.items() if k != "test_seen"}
    train_val_shared = dict(store.splits)
    train_val_shared["val"] = np.append(store.splits["val"], store.splits["train"][0])
    train_val_shared["train"] = store.splits["train"][1:]

    return {
        "nan features": (_break(store, features_ce=nan_features), "NaN or Inf in row(s) 4"),
        "inf sc": (_break(store, features_sc=inf_sc), "/features/sc contains NaN or Inf"),
        "label out of range": (_break(store, labels=labels_out), "/labels out of range"),
        "row count": (_break(store, labels=store.labels[:-1]), "/labels has shape"),
        "sc rows": (_break(store, features_sc=store.features_sc[:-2]), "/features/sc has shape"),
        "attribute classes": (_break(store, attributes=store.attributes[:-1]), "/classes/attributes has shape"),
        "unseen in trainval": (_break(store, splits=unseen_in_trainval), "unseen classes occur in /splits/trainval"),
        "overlapping splits": (_break(store, splits=overlap), "overlap at indices"),
        "index out of range": (_break(store, splits=out_of_range), f"out of range [0, {store.labels.size})"),
        "missing split": (_break(store, splits=missing_split), "missing split /splits/test_seen"),
        "train val classes": (_break(store, splits=train_val_shared), "class-disjoint"),
        "duplicate names": (_break(store, class_names=["a"] * store.num_classes), "duplicate names"),
    }


@pytest.mark.parametrize("case", list(_bad_stores(make_store())))
def test_write_rejects_bad_store(tmp_path, case):
    store, message = _bad_stores(make_store())[case]
    path = tmp_path / "bad.h5"
    with pytest.raises(UserError, match=re.escape(message)):
        write_store(path, store)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["nan features", "overlapping splits", "unseen in trainval"])
def test_read_rejects_file_written_around_validation(tmp_path, case):
    path = tmp_path / "store.h5"
    write_store(path, make_store())
    bad, message = _bad_stores(make_store())[case]
    with h5py.File(path, "r+") as handle:
        del handle["features/ce"]
        handle["features/ce"] = bad.features_ce
        for name, indices in bad.splits.items():
            del handle[f"splits/{name}"]
            handle[f"splits/{name}"] = indices
    with pytest.raises(UserError) as error:
        read_store(path)
    assert str(path) in str(error.value)
    assert message.split(" in row")[0] in str(error.value)


def test_read_names_missing_dataset(tmp_path, toy_store):
    path = tmp_path / "store.h5"
    write_store(path, toy_store)
    with h5py.File(path, "r+") as handle:
        del handle["labels"]
    with pytest.raises(UserError, match="missing dataset /labels"):
        read_store(path)


def test_read_rejects_missing_and_non_hdf5(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_store(tmp_path / "absent.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        read_store(junk)


def test_validation_protocol_uses_trainval_only(toy_store):
    view = apply_protocol(toy_store, "validation")
    trainval = set(toy_store.splits["trainval"].tolist())
    for name in ("trainval", "test_seen", "test_unseen"):
        assert set(view.splits[name].tolist()) <= trainval, name
    assert set(view.splits["test_unseen"].tolist()) == set(toy_store.splits["val"].tolist())
    assert set(view.splits["trainval"].tolist()) | set(view.splits["test_seen"].tolist()) == set(toy_store.splits["train"].tolist())
    assert not set(view.splits["trainval"].tolist()) & set(view.splits["test_seen"].tolist())


def test_validation_protocol_holds_out_a_fifth(toy_store):
    view = apply_protocol(toy_store, "validation")
    for class_id in np.unique(toy_store.labels[toy_store.splits["train"]]):
        in_train = int((toy_store.labels[toy_store.splits["train"]] == class_id).sum())
        held_out = int((view.labels[view.splits["test_seen"]] == class_id).sum())
        assert held_out == round(0.2 * in_train)


def test_validation_protocol_ignores_test_samples_in_train(toy_store):
    splits = dict(toy_store.splits)
    test_seen = toy_store.splits["test_seen"]
    train_classes = np.unique(toy_store.labels[toy_store.splits["train"]])
    splits["train"] = np.concatenate([toy_store.splits["train"], test_seen[np.isin(toy_store.labels[test_seen], train_classes)]])
    store = dataclasses.replace(toy_store, splits=splits)
    view = apply_protocol(store, "validation")
    assert not set(view.splits["test_seen"].tolist()) & set(toy_store.splits["test_seen"].tolist())
    assert not set(view.splits["trainval"].tolist()) & set(toy_store.splits["test_seen"].tolist())


def test_validation_protocol_needs_train_val(toy_store):
    store = dataclasses.replace(toy_store, splits={k: toy_store.splits[k] for k in ("trainval", "test_seen", "test_unseen")})
    with pytest.raises(UserError, match="validation protocol is unavailable"):
        apply_protocol(store, "validation")
