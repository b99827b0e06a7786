"""Tests for reading .mat files and importing xlsa17 datasets into a feature store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from zerodiff.atomic import sha256_file
from zerodiff.errors import UserError
from zerodiff.matfile import load_mat
from zerodiff.store import read_store
from zerodiff.xlsa17 import import_xlsa17, locate_files

REPO = Path(__file__).resolve().parents[1]
XLSA17 = Path(__file__).resolve().parents[2] / "shared" / "data" / "xlsa17"
FEATURE_DIM = 16

# ---------------------------------------------------------------------------
# Writing .mat files


def write_mat_v5(path: Path, variables: dict) -> None:
    """Write ``variables`` as a MATLAB v5 file; a list of str becomes an [N, 1] cell."""
    converted = {}
    for key, value in variables.items():
        if isinstance(value, list):
            cell = np.empty((len(value), 1), dtype=object)
            for i, text in enumerate(value):
                cell[i, 0] = text
            value = cell
        converted[key] = value
    scipy.io.savemat(path, converted, format="5", oned_as="column")


_MATLAB_CLASSES = {
    np.dtype(np.float64): "double", np.dtype(np.float32): "single", np.dtype(np.bool_): "logical",
    np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16", np.dtype(np.uint32): "uint32",
    np.dtype(np.int32): "int32", np.dtype(np.int64): "int64",
}  # fmt: skip


def write_mat_v73(path: Path, variables: dict) -> None:
    """Write ``variables`` the way MATLAB's ``save -v7.3`` lays them out.

    The file is HDF5 behind a 512-byte MATLAB header. Every array is stored with
    its axes reversed and a ``MATLAB_class`` attribute; a 1-D array is saved as
    the [N, 1] column MATLAB would hold. A list of str becomes an [N, 1] cell
    array: a dataset of object references to uint16 char arrays under ``#refs#``.
    """
    with h5py.File(path, "w", userblock_size=512) as handle:
        for key, value in variables.items():
            if isinstance(value, list):
                _write_cell_of_strings(handle, key, value)
                continue
            array = np.asarray(value)
            if array.ndim == 1:
                array = array[:, None]
            dataset = handle.create_dataset(key, data=array.T.astype(np.uint8) if array.dtype == bool else array.T)
            dataset.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASSES[array.dtype])
            if array.dtype == bool:
                dataset.attrs["MATLAB_int_decode"] = np.int32(1)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2015 HDF5 schema 1.00 ."
    with open(path, "r+b") as handle:
        handle.write(header.ljust(116, b" ") + bytes(8) + b"\x00\x02" + b"IM")


def _write_cell_of_strings(handle: h5py.File, key: str, strings: list[str]) -> None:
    # Low-level h5py calls with shared type and space ids: the high-level API
    # takes several times longer for AWA2's 37,322 paths.
    refs = handle.require_group("#refs#")
    char_type = h5py.h5t.py_create(np.dtype("<u2"))
    class_type = h5py.h5t.C_S1.copy()
    class_type.set_size(len("char"))
    class_type.set_strpad(h5py.h5t.STR_NULLPAD)
    class_value = np.array(b"char", dtype="S4")
    int32_type = h5py.h5t.py_create(np.dtype(np.int32))
    decode_value = np.array(2, dtype=np.int32)  # MATLAB_int_decode 2: UTF-16 code units
    scalar = h5py.h5s.create(h5py.h5s.SCALAR)

    references = np.empty((1, len(strings)), dtype=h5py.ref_dtype)  # MATLAB [N, 1], axes reversed
    for i, text in enumerate(strings):
        name = f"{key}_{i}".encode()
        if text:
            codes = np.frombuffer(text.encode("utf-16-le"), dtype="<u2")[:, None]  # MATLAB [1, L], axes reversed
            element = h5py.h5d.create(refs.id, name, char_type, h5py.h5s.create_simple(codes.shape))
            element.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(codes))
            h5py.h5a.create(element, b"MATLAB_int_decode", int32_type, scalar).write(decode_value)
        else:
            # MATLAB stores an empty char array as its dimensions and marks it MATLAB_empty.
            dims = np.array([1, 0], dtype=np.uint64)
            element = h5py.h5d.create(refs.id, name, h5py.h5t.py_create(dims.dtype), h5py.h5s.create_simple(dims.shape))
            element.write(h5py.h5s.ALL, h5py.h5s.ALL, dims)
            h5py.h5a.create(element, b"MATLAB_empty", h5py.h5t.py_create(np.dtype(np.uint8)), scalar).write(
                np.array(1, dtype=np.uint8)
            )
        h5py.h5a.create(element, b"MATLAB_class", class_type, scalar).write(class_value)
        references[0, i] = h5py.h5r.create(refs.id, name, h5py.h5r.OBJECT)

    dataset = handle.create_dataset(key, data=references, dtype=h5py.ref_dtype)
    dataset.attrs["MATLAB_class"] = np.bytes_("cell")


WRITERS = {"v5": write_mat_v5, "v7.3": write_mat_v73}
# ---------------------------------------------------------------------------
# A small synthetic dataset in xlsa17 layout

TOY_CLASSES = ["antelope", "grizzly+bear", "killer+whale", "beaver", "dalmatian", "persian+cat"]
TOY_TRAIN_CLASSES, TOY_VAL_CLASSES, TOY_UNSEEN_CLASSES = [0, 1, 2], [3], [4, 5]
TOY_PER_CLASS = 8  # of a seen class: 6 trainval samples, 2 test_seen
TOY_ATTRIBUTES = 5


def toy_variables(seed: int = 0) -> tuple[dict, dict]:
    """Return the variables of a small ``res101.mat`` and ``att_splits.mat``.

    Samples are shuffled so that no split is a contiguous block. As in the real
    xlsa17 files, train_loc and val_loc cover trainval and test_seen together.
    """
    rng = np.random.default_rng(seed)
    num_classes = len(TOY_CLASSES)
    labels = rng.permutation(np.repeat(np.arange(num_classes), TOY_PER_CLASS))
    splits = {"trainval_loc": [], "test_seen_loc": [], "test_unseen_loc": [], "train_loc": [], "val_loc": []}
    for class_id in range(num_classes):
        members = np.flatnonzero(labels == class_id) + 1
        if class_id in TOY_UNSEEN_CLASSES:
            splits["test_unseen_loc"].extend(members)
            continue
        splits["trainval_loc"].extend(members[:6])
        splits["test_seen_loc"].extend(members[6:])
        splits["train_loc" if class_id in TOY_TRAIN_CLASSES else "val_loc"].extend(members)
    res101 = {
        "features": rng.normal(size=(FEATURE_DIM, labels.size)),
        "labels": (labels + 1).astype(np.float64)[:, None],
        "image_files": [
            f"/data/AWA2/JPEGImages/{TOY_CLASSES[label]}/{TOY_CLASSES[label]}_{10001 + i}.jpg"
            for i, label in enumerate(labels)
        ],
    }
    original_att = rng.uniform(0, 100, size=(TOY_ATTRIBUTES, num_classes))
    semantics = {
        "att": original_att / np.linalg.norm(original_att, axis=0),
        "original_att": original_att,
        "allclasses_names": list(TOY_CLASSES),
        **{key: np.sort(np.array(values)).astype(np.uint16)[:, None] for key, values in splits.items()},
    }
    return res101, semantics


def write_dataset(folder: Path, res101: dict, semantics: dict, writer=write_mat_v5, **extra: dict) -> Path:
    """Write a dataset folder; ``extra`` maps further file stems (ce_ce, con_paco) to their variables."""
    folder.mkdir(parents=True, exist_ok=True)
    writer(folder / "res101.mat", res101)
    writer(folder / "att_splits.mat", semantics)
    for stem, variables in extra.items():
        writer(folder / f"{stem}.mat", variables)
    return folder


def assert_no_output(out: Path) -> None:
    assert not out.exists()
    leftovers = [path.name for path in out.parent.iterdir()] if out.parent.exists() else []
    assert leftovers == []


# ---------------------------------------------------------------------------
# load_mat


@pytest.mark.parametrize("version", WRITERS)
def test_load_mat_reads_matlab_layout(tmp_path, version):
    matrix = np.arange(12, dtype=np.float64).reshape(3, 4)
    path = tmp_path / "data.mat"
    WRITERS[version](
        path,
        {
            "matrix": matrix,
            "positions": np.array([[3], [1], [2]], dtype=np.uint16),
            "flags": np.array([[True, False, True]]),
            "names": ["abbey", "", "lean-to", "caf\u00e9"],
        },
    )

    loaded = load_mat(path, ["matrix", "positions", "names"], optional=["flags", "absent"])

    assert loaded["matrix"].shape == (3, 4)
    np.testing.assert_array_equal(loaded["matrix"], matrix)
    assert loaded["positions"].shape == (3, 1)
    np.testing.assert_array_equal(loaded["positions"].ravel(), [3, 1, 2])
    assert loaded["flags"].dtype == bool
    np.testing.assert_array_equal(loaded["flags"], [[True, False, True]])
    assert loaded["names"] == ["abbey", "", "lean-to", "caf\u00e9"]
    assert "absent" not in loaded


@pytest.mark.parametrize("version", WRITERS)
def test_load_mat_missing_key_lists_contents(tmp_path, version):
    path = tmp_path / "data.mat"
    WRITERS[version](path, {"att": np.ones((2, 3)), "labels": np.ones((3, 1))})

    with pytest.raises(UserError, match=r"data\.mat: missing variable 'features'; the file contains: att, labels"):
        load_mat(path, ["att", "features"])


def test_load_mat_rejects_other_files(tmp_path):
    text = tmp_path / "notes.mat"
    text.write_text("not a MATLAB file\n")
    hdf5 = tmp_path / "plain.mat"
    with h5py.File(hdf5, "w") as handle:
        handle.create_dataset("att", data=np.ones(3))

    with pytest.raises(UserError, match=r"notes\.mat: not a readable MATLAB \.mat file"):
        load_mat(text, ["att"])
    with pytest.raises(UserError, match=r"missing\.mat: file not found"):
        load_mat(tmp_path / "missing.mat", ["att"])
    with pytest.raises(UserError, match=r"plain\.mat: variable 'att' has unsupported MATLAB class"):
        load_mat(hdf5, ["att"])


# ---------------------------------------------------------------------------
# Import of the toy dataset


def test_locate_files_finds_optional_files(tmp_path):
    res101, semantics = toy_variables()
    folder = write_dataset(tmp_path / "TOY", res101, semantics, ce_ce={"features": np.ones((2, 2))})
    write_mat_v5(folder / "sent_splits.mat", semantics)

    default = locate_files(folder)
    text = locate_files(folder, semantics="sent_splits.mat")

    assert default.features == folder / "res101.mat"
    assert default.semantics == folder / "att_splits.mat"
    assert default.names_reference is None
    assert default.ce == folder / "ce_ce.mat"
    assert default.sc is None
    assert text.semantics == folder / "sent_splits.mat"
    assert text.names_reference == folder / "att_splits.mat"


@pytest.mark.parametrize("version", WRITERS)
def test_import_toy_dataset(tmp_path, version):
    res101, semantics = toy_variables()
    folder = write_dataset(tmp_path / "TOY", res101, semantics, WRITERS[version])
    out = tmp_path / "out" / "features.h5"

    import_xlsa17(folder, out)

    labels = res101["labels"].ravel().astype(np.int64) - 1
    trainval = semantics["trainval_loc"].ravel().astype(np.int64) - 1
    with h5py.File(out, "r") as handle:
        assert handle.attrs["dataset"] == "TOY"
        assert not handle.attrs["sc_available"]
        assert "features/sc" not in handle
        assert handle["features/ce"].dtype == np.float32
        np.testing.assert_array_equal(handle["features/ce"][()], res101["features"].T.astype(np.float32))
        np.testing.assert_array_equal(handle["labels"][()], labels)
        assert [name.decode() for name in handle["classes/names"][()]] == TOY_CLASSES
        np.testing.assert_array_equal(handle["classes/attributes"][()], semantics["original_att"].T.astype(np.float32))
        for split in ("trainval", "test_seen", "test_unseen"):
            np.testing.assert_array_equal(handle[f"splits/{split}"][()], semantics[f"{split}_loc"].ravel() - 1)
        for split in ("train", "val"):
            positions = semantics[f"{split}_loc"].ravel().astype(np.int64) - 1
            np.testing.assert_array_equal(handle[f"splits/{split}"][()], positions[np.isin(positions, trainval)])
        assert [path.decode() for path in handle["image_files"][()]] == res101["image_files"]
        imported = json.loads(handle.attrs["imported_files"])
        provenance = json.loads(handle.attrs["provenance_ce"])
        assert handle.attrs["attributes_variable"].startswith("original_att of ")
        assert handle.attrs["class_folder_check"].startswith("passed")
    assert imported == {
        str(folder / "res101.mat"): sha256_file(folder / "res101.mat"),
        str(folder / "att_splits.mat"): sha256_file(folder / "att_splits.mat"),
    }
    assert provenance["source"] == f"imported from {folder / 'res101.mat'}"
    assert provenance["layout"].startswith("[D, N]")
    store = read_store(out)
    np.testing.assert_array_equal(store.seen_classes, TOY_TRAIN_CLASSES + TOY_VAL_CLASSES)
    np.testing.assert_array_equal(store.unseen_classes, TOY_UNSEEN_CLASSES)


def test_v5_and_v73_import_identically(tmp_path):
    res101, semantics = toy_variables(seed=3)
    rng = np.random.default_rng(4)
    num_samples = res101["labels"].shape[0]
    authors = {"ce_ce": {"features": rng.normal(size=(num_samples, 24))}, "con_paco": {"features": rng.normal(size=(num_samples, 8))}}
    outputs = {}
    for version, writer in WRITERS.items():
        folder = write_dataset(tmp_path / version, res101, semantics, writer, **authors)
        outputs[version] = tmp_path / f"{version}.h5"
        import_xlsa17(folder, outputs[version], dataset="TOY")

    with h5py.File(outputs["v5"], "r") as v5, h5py.File(outputs["v7.3"], "r") as v73:
        paths = []
        v5.visit(paths.append)
        other_paths = []
        v73.visit(other_paths.append)
        assert paths == other_paths
        for path in paths:
            if isinstance(v5[path], h5py.Dataset):
                assert v5[path].dtype == v73[path].dtype, path
                np.testing.assert_array_equal(v5[path][()], v73[path][()], err_msg=path)
        assert set(v5.attrs) == set(v73.attrs)
        for key in ("format_version", "dataset", "sc_available", "source_format", "class_folder_check"):
            assert v5.attrs[key] == v73.attrs[key], key


def test_authors_features_replace_res101(tmp_path):
    res101, semantics = toy_variables()
    num_samples = res101["labels"].shape[0]
    rng = np.random.default_rng(1)
    ce = rng.normal(size=(num_samples, 24))
    sc = rng.normal(size=(num_samples, 8))
    folder = write_dataset(tmp_path / "TOY", res101, semantics, ce_ce={"features": ce}, con_paco={"features": sc})
    out = tmp_path / "features.h5"

    store = import_xlsa17(folder, out)

    with h5py.File(out, "r") as handle:
        assert handle.attrs["sc_available"]
        np.testing.assert_array_equal(handle["features/ce"][()], ce.astype(np.float32))
        np.testing.assert_array_equal(handle["features/sc"][()], sc.astype(np.float32))
        provenance_ce = json.loads(handle.attrs["provenance_ce"])
        provenance_sc = json.loads(handle.attrs["provenance_sc"])
        imported = json.loads(handle.attrs["imported_files"])
    assert provenance_ce["file"] == str(folder / "ce_ce.mat")
    assert provenance_ce["sha256"] == sha256_file(folder / "ce_ce.mat")
    assert provenance_ce["layout"] == "[N, D]"
    assert provenance_sc["file"] == str(folder / "con_paco.mat")
    assert set(imported) == {str(folder / name) for name in ("res101.mat", "att_splits.mat", "ce_ce.mat", "con_paco.mat")}
    assert store.features_sc.shape == (num_samples, 8)


def test_res101_features_in_rows_are_detected(tmp_path):
    res101, semantics = toy_variables()
    features = res101["features"].T.copy()
    res101["features"] = features  # [N, D] instead of the documented [D, N]
    folder = write_dataset(tmp_path / "TOY", res101, semantics)

    store = import_xlsa17(folder, tmp_path / "features.h5")

    np.testing.assert_array_equal(store.features_ce, features.astype(np.float32))
    assert store.provenance_ce["layout"] == "[N, D]"


def test_missing_original_att_falls_back_to_att(tmp_path):
    res101, semantics = toy_variables()
    del semantics["original_att"]
    folder = write_dataset(tmp_path / "TOY", res101, semantics)

    store = import_xlsa17(folder, tmp_path / "features.h5")

    np.testing.assert_array_equal(store.attributes, semantics["att"].T.astype(np.float32))
    assert store.attrs["attributes_variable"] == f"att of {folder / 'att_splits.mat'}"


def test_semantics_aligned_to_att_splits_names(tmp_path):
    res101, semantics = toy_variables()
    folder = write_dataset(tmp_path / "TOY", res101, semantics)
    order = [3, 0, 5, 1, 4, 2]
    text_semantics = np.random.default_rng(2).normal(size=(7, len(TOY_CLASSES)))
    shuffled = {key: value for key, value in semantics.items() if key.endswith("_loc")}
    shuffled["att"] = text_semantics[:, order]
    shuffled["allclasses_names"] = [TOY_CLASSES[i] for i in order]
    write_mat_v5(folder / "sent_splits.mat", shuffled)

    store = import_xlsa17(folder, tmp_path / "aligned.h5", semantics="sent_splits.mat")

    assert store.class_names == TOY_CLASSES
    np.testing.assert_array_equal(store.attributes, text_semantics.T.astype(np.float32))
    assert store.attrs["attributes_variable"] == f"att of {folder / 'sent_splits.mat'}"
    with pytest.raises(UserError, match="image_files folders disagree"):
        import_xlsa17(folder, tmp_path / "file_order.h5", semantics="sent_splits.mat", class_order="file")
    assert not (tmp_path / "file_order.h5").exists()


def test_semantics_with_other_classes_rejected(tmp_path):
    res101, semantics = toy_variables()
    folder = write_dataset(tmp_path / "TOY", res101, semantics)
    renamed = dict(semantics, allclasses_names=[*TOY_CLASSES[:5], "zebra"])
    write_mat_v5(folder / "sent_splits.mat", renamed)

    with pytest.raises(UserError, match=r"only in sent_splits\.mat: zebra; only in att_splits\.mat: persian\+cat"):
        import_xlsa17(folder, tmp_path / "out" / "features.h5", semantics="sent_splits.mat")
    assert_no_output(tmp_path / "out" / "features.h5")


def test_class_id_prefixes_set_label_order(tmp_path):
    res101, semantics = toy_variables()
    prefixed = [f"{class_id + 1:03d}.{name}" for class_id, name in enumerate(TOY_CLASSES)]
    res101["image_files"] = [path.replace("/JPEGImages/", "/images/") for path in res101["image_files"]]
    for class_id, name in enumerate(TOY_CLASSES):
        res101["image_files"] = [path.replace(f"/{name}/", f"/{prefixed[class_id]}/") for path in res101["image_files"]]
    order = [4, 5, 0, 1, 2, 3]  # unseen classes first, unlike the label order
    semantics["allclasses_names"] = [prefixed[i] for i in order]
    semantics["att"] = semantics["att"][:, order]
    semantics["original_att"] = semantics["original_att"][:, order]
    folder = write_dataset(tmp_path / "TOY", res101, semantics)

    store = import_xlsa17(folder, tmp_path / "features.h5")

    assert store.class_names == prefixed
    np.testing.assert_array_equal(store.attributes[order], semantics["original_att"].T.astype(np.float32))
    assert store.attrs["class_order"].startswith("numeric class-id prefix")
    assert store.attrs["class_folder_check"].startswith("passed")


# ---------------------------------------------------------------------------
# Bad input


def _drop(variables: dict, key: str) -> None:
    del variables[key]


def _append_position(variables: dict, key: str, position: int) -> None:
    variables[key] = np.vstack([variables[key], [[position]]]).astype(np.uint16)


def _move_unseen_to_trainval(semantics: dict) -> None:
    unseen = semantics["test_unseen_loc"]
    semantics["test_unseen_loc"] = unseen[1:]
    _append_position(semantics, "trainval_loc", int(unseen[0, 0]))


def _swap_first_classes(semantics: dict) -> None:
    semantics["allclasses_names"] = [TOY_CLASSES[1], TOY_CLASSES[0], *TOY_CLASSES[2:]]
    for key in ("att", "original_att"):
        semantics[key] = semantics[key][:, [1, 0, 2, 3, 4, 5]]


def _drop_class_from_trainval(res101: dict, semantics: dict) -> None:
    trainval = semantics["trainval_loc"].ravel()
    labels = res101["labels"].ravel()
    grizzly_bear = TOY_CLASSES.index("grizzly+bear") + 1  # labels are 1-based
    semantics["trainval_loc"] = trainval[labels[trainval - 1] != grizzly_bear][:, None]


def _share_class_between_train_and_val(semantics: dict) -> None:
    train = semantics["train_loc"]
    semantics["train_loc"] = train[1:]
    _append_position(semantics, "val_loc", int(train[0, 0]))


def _set(variables: dict, key: str, index: tuple, value: float) -> None:
    variables[key] = variables[key].copy()
    variables[key][index] = value


NUM_TOY_SAMPLES = len(TOY_CLASSES) * TOY_PER_CLASS

# name -> (change to the res101 and att_splits variables, expected message)
BAD_INPUTS = {
    "missing labels": (lambda r, s: _drop(r, "labels"), r"res101\.mat: missing variable 'labels'"),
    "missing features": (lambda r, s: _drop(r, "features"), r"res101\.mat: missing variable 'features'"),
    "missing att": (lambda r, s: _drop(s, "att"), r"att_splits\.mat: missing variable 'att'"),
    "missing class names": (lambda r, s: _drop(s, "allclasses_names"), r"att_splits\.mat: missing variable 'allclasses_names'"),
    "missing test_unseen_loc": (lambda r, s: _drop(s, "test_unseen_loc"), r"att_splits\.mat: missing variable 'test_unseen_loc'"),
    "missing val_loc": (lambda r, s: _drop(s, "val_loc"), r"att_splits\.mat: contains train_loc without its partner"),
    "extra feature column": (
        lambda r, s: r.update(features=np.hstack([r["features"], r["features"][:, :1]])),
        r"res101\.mat: features has shape \[16, 49\] but there are 48 labels",
    ),
    "one label short": (
        lambda r, s: r.update(labels=r["labels"][:-1], image_files=r["image_files"][:-1]),
        r"res101\.mat: features has shape \[16, 48\] but there are 47 labels",
    ),
    "image_files short": (
        lambda r, s: r.update(image_files=r["image_files"][:-1]),
        r"res101\.mat: image_files has 47 entries but labels has 48",
    ),
    "labels beyond classes": (
        lambda r, s: s.update(
            att=s["att"][:, :5], original_att=s["original_att"][:, :5], allclasses_names=TOY_CLASSES[:5]
        ),
        r"res101\.mat: labels go up to class id 6 but .*att_splits\.mat has 5 classes",
    ),
    "class without samples": (
        lambda r, s: s.update(
            att=np.hstack([s["att"], s["att"][:, :1]]),
            original_att=np.hstack([s["original_att"], s["original_att"][:, :1]]),
            allclasses_names=[*TOY_CLASSES, "zebra"],
        ),
        r"res101\.mat: labels cover 6 of the 7 classes of .*att_splits\.mat; no sample has class id\(s\) 7 \(zebra\)",
    ),
    "names shorter than att": (
        lambda r, s: s.update(allclasses_names=TOY_CLASSES[:5]),
        r"att_splits\.mat: att has shape \[5, 6\] .* allclasses_names lists 5 classes",
    ),
    "original_att shape": (
        lambda r, s: s.update(original_att=s["original_att"][:4]),
        r"att_splits\.mat: original_att has shape \[4, 6\], expected \[5, 6\]",
    ),
    "label zero": (lambda r, s: _set(r, "labels", (0, 0), 0), r"res101\.mat: labels must hold 1-based positions at least 1"),
    "fractional label": (lambda r, s: _set(r, "labels", (2, 0), 1.5), r"res101\.mat: labels must hold whole numbers; entries 3 are 1.5"),
    "zero-based split": (
        lambda r, s: s.update(trainval_loc=s["trainval_loc"] - 1),
        r"att_splits\.mat: trainval_loc must hold 1-based positions within 1\.\.48",
    ),
    "split beyond samples": (
        lambda r, s: _append_position(s, "test_seen_loc", NUM_TOY_SAMPLES + 1),
        r"att_splits\.mat: test_seen_loc must hold 1-based positions within 1\.\.48; .* are 49",
    ),
    "repeated position": (
        lambda r, s: _append_position(s, "test_seen_loc", int(s["test_seen_loc"][0, 0])),
        r"att_splits\.mat: test_seen_loc repeats sample positions",
    ),
    "overlapping splits": (
        lambda r, s: _append_position(s, "trainval_loc", int(s["test_seen_loc"][0, 0])),
        r"att_splits\.mat: trainval_loc and test_seen_loc overlap in 1 sample\(s\)",
    ),
    "unseen class in trainval": (
        lambda r, s: _move_unseen_to_trainval(s),
        r"att_splits\.mat: unseen classes occur in trainval_loc: (dalmatian|persian\+cat)",
    ),
    "test_seen class missing from trainval": (
        lambda r, s: _drop_class_from_trainval(r, s),
        r"att_splits\.mat: test_seen_loc contains classes without samples in trainval_loc: grizzly\+bear",
    ),
    "train and val share a class": (
        lambda r, s: _share_class_between_train_and_val(s),
        r"att_splits\.mat: train_loc and val_loc share classes",
    ),
    "NaN feature": (
        lambda r, s: _set(r, "features", (3, 7), np.nan),
        r"res101\.mat: features contains NaN or Inf for sample\(s\) 8 \(1-based\), 1 in all",
    ),
    "Inf feature": (
        lambda r, s: _set(r, "features", (0, 20), -np.inf),
        r"res101\.mat: features contains NaN or Inf for sample\(s\) 21 ",
    ),
    "feature beyond float32": (
        lambda r, s: _set(r, "features", (5, 4), 1e300),
        r"res101\.mat: features contains NaN or Inf for sample\(s\) 5 ",
    ),
    "NaN semantics": (
        lambda r, s: _set(s, "original_att", (1, 2), np.nan),
        r"att_splits\.mat: original_att contains NaN or Inf for class\(es\) 3 ",
    ),
    "misaligned class names": (
        lambda r, s: _swap_first_classes(s),
        r"res101\.mat: image_files folders disagree with the class names of the labels for 16 of 48 samples",
    ),
}


@pytest.mark.parametrize("version", WRITERS)
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_rejected(tmp_path, version, case):
    change, message = BAD_INPUTS[case]
    res101, semantics = toy_variables()
    change(res101, semantics)
    folder = write_dataset(tmp_path / "TOY", res101, semantics, WRITERS[version])
    out = tmp_path / "out" / "features.h5"

    with pytest.raises(UserError, match=message):
        import_xlsa17(folder, out)
    assert_no_output(out)


@pytest.mark.parametrize(
    ("stem", "features", "message"),
    [
        ("ce_ce", np.full((NUM_TOY_SAMPLES, 4), np.nan), r"ce_ce\.mat: features contains NaN or Inf for sample\(s\) 1, 2"),
        ("con_paco", np.ones((NUM_TOY_SAMPLES - 1, 4)), r"con_paco\.mat: features has shape \[47, 4\] but there are 48 labels"),
    ],
)
def test_bad_authors_features_rejected(tmp_path, stem, features, message):
    res101, semantics = toy_variables()
    folder = write_dataset(tmp_path / "TOY", res101, semantics, **{stem: {"features": features}})
    out = tmp_path / "out" / "features.h5"

    with pytest.raises(UserError, match=message):
        import_xlsa17(folder, out)
    assert_no_output(out)


def test_missing_files_rejected(tmp_path):
    res101, semantics = toy_variables()
    folder = write_dataset(tmp_path / "TOY", res101, semantics)
    out = tmp_path / "out" / "features.h5"

    with pytest.raises(UserError, match=r"nowhere: dataset folder not found"):
        import_xlsa17(tmp_path / "nowhere", out)
    with pytest.raises(UserError, match=r"sent_splits\.mat: file not found; it should contain the class semantics"):
        import_xlsa17(folder, out, semantics="sent_splits.mat")
    (folder / "res101.mat").unlink()
    with pytest.raises(UserError, match=r"res101\.mat: file not found; it should contain the features and labels"):
        import_xlsa17(folder, out)
    (folder / "res101.mat").write_text("features,labels\n")
    with pytest.raises(UserError, match=r"res101\.mat: not a readable MATLAB \.mat file"):
        import_xlsa17(folder, out)
    assert_no_output(out)


def test_failed_import_keeps_previous_store(tmp_path):
    res101, semantics = toy_variables()
    good = write_dataset(tmp_path / "good", res101, semantics)
    out = tmp_path / "out" / "features.h5"
    import_xlsa17(good, out)
    before = out.read_bytes()
    _set(res101, "features", (0, 0), np.nan)
    bad = write_dataset(tmp_path / "bad", res101, semantics)

    with pytest.raises(UserError, match="NaN"):
        import_xlsa17(bad, out)

    assert out.read_bytes() == before
    assert [path.name for path in out.parent.iterdir()] == ["features.h5"]


# ---------------------------------------------------------------------------
# Real xlsa17 semantics files with a synthetic res101.mat

REAL_FILES = {"AWA2": "att_splits.mat", "SUN": "att_splits.mat", "CUB": "sent_splits.mat"}
SPLIT_KEYS = ("trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc", "val_loc")


def real_semantics(dataset: str) -> dict:
    path = XLSA17 / dataset / REAL_FILES[dataset]
    if not path.is_file():
        pytest.skip(f"real xlsa17 file {path} is not present; these tests need the shared data folder")
    return {key: value for key, value in scipy.io.loadmat(path).items() if not key.startswith("__")}


def class_names_by_id(dataset: str, names: list[str]) -> list[str]:
    """Return the class names in class-id order, which is the order res101.mat labels use.

    CUB's sent_splits.mat lists seen classes first; its names carry the class id
    ("001.Black_footed_Albatross"). The AWA2 and SUN files are in class-id order.
    """
    if dataset == "CUB":
        return sorted(names, key=lambda name: int(name.split(".")[0]))
    return names


def labels_consistent_with_splits(semantics: dict, num_classes: int) -> np.ndarray:
    """Return 0-based labels for every sample position of the split file.

    Every fifth class is unseen, and of the seen classes every fifth is a
    validation class. Samples of test_unseen_loc get unseen classes; samples of
    train_loc (val_loc) get train (validation) classes, which also covers
    trainval_loc and test_seen_loc. Classes are dealt out in turn, so each one
    gets samples in every split it belongs to.
    """
    positions = {key: semantics[key].ravel().astype(np.int64) - 1 for key in SPLIT_KEYS}
    labels = np.full(max(values.max() for values in positions.values()) + 1, -1)
    class_ids = np.arange(num_classes)
    unseen = class_ids[class_ids % 5 == 4]
    val = class_ids[class_ids % 5 == 3]
    train = class_ids[class_ids % 5 < 3]

    def deal(samples: np.ndarray, classes: np.ndarray) -> None:
        labels[samples] = classes[np.arange(samples.size) % classes.size]

    deal(positions["test_unseen_loc"], unseen)
    for key, classes in (("train_loc", train), ("val_loc", val)):
        for split in ("trainval_loc", "test_seen_loc"):
            deal(positions[key][np.isin(positions[key], positions[split])], classes)
    assert (labels >= 0).all()
    return labels


def image_path(dataset: str, class_name: str, index: int) -> str:
    """Return an image path laid out as in the dataset's own release."""
    if dataset == "AWA2":
        return f"/data/Animals_with_Attributes2/JPEGImages/{class_name}/{class_name}_{10001 + index}.jpg"
    if dataset == "CUB":
        return f"/data/CUB_200_2011/images/{class_name}/{class_name[4:]}_{index:04d}.jpg"
    folder = class_name
    for place in ("indoor", "outdoor"):
        if class_name.endswith(f"_{place}"):
            folder = f"{class_name[: -len(place) - 1]}/{place}"
    return f"/data/SUN/images/{class_name[0]}/{folder}/sun_{index:06d}.jpg"


# Writing and reading AWA2's 37,322 image paths as v7.3 cell elements takes about 10 s.
REAL_CASES = [
    pytest.param(dataset, version, marks=[pytest.mark.slow] if (dataset, version) == ("AWA2", "v7.3") else [])
    for dataset in REAL_FILES
    for version in WRITERS
]


@pytest.mark.parametrize(("dataset", "version"), REAL_CASES)
def test_import_real_semantics(tmp_path, dataset, version):
    semantics = real_semantics(dataset)
    file_names = [str(cell[0]) for cell in semantics["allclasses_names"].ravel()]
    names = class_names_by_id(dataset, file_names)
    labels = labels_consistent_with_splits(semantics, len(names))
    features = np.random.default_rng(0).normal(size=(labels.size, FEATURE_DIM))
    image_files = [image_path(dataset, names[label], i) for i, label in enumerate(labels)]
    folder = tmp_path / dataset
    folder.mkdir()
    WRITERS[version](
        folder / "res101.mat",
        {"features": features.T, "labels": (labels + 1).astype(np.float64)[:, None], "image_files": image_files},
    )
    semantics_path = XLSA17 / dataset / REAL_FILES[dataset]
    if version == "v7.3":
        semantics_path = folder / REAL_FILES[dataset]
        copied = {key: value for key, value in semantics.items() if key != "allclasses_names"}
        write_mat_v73(semantics_path, {**copied, "allclasses_names": file_names})
    out = tmp_path / "features.h5"

    import_xlsa17(folder, out, semantics=semantics_path)

    unnormalised = semantics.get("original_att", semantics["att"])
    columns = [file_names.index(name) for name in names]
    trainval = semantics["trainval_loc"].ravel().astype(np.int64) - 1
    with h5py.File(out, "r") as handle:
        np.testing.assert_array_equal(handle["features/ce"][()], features.astype(np.float32))
        np.testing.assert_array_equal(handle["labels"][()], labels)
        assert [name.decode() for name in handle["classes/names"][()]] == names
        np.testing.assert_array_equal(handle["classes/attributes"][()], unnormalised[:, columns].T.astype(np.float32))
        for key in SPLIT_KEYS[:3]:
            np.testing.assert_array_equal(handle[f"splits/{key[:-4]}"][()], semantics[key].ravel() - 1)
        for key in SPLIT_KEYS[3:]:
            positions = semantics[key].ravel().astype(np.int64) - 1
            np.testing.assert_array_equal(handle[f"splits/{key[:-4]}"][()], positions[np.isin(positions, trainval)])
        assert [path.decode() for path in handle["image_files"][()]] == image_files
        assert handle.attrs["attributes_variable"].startswith("original_att" if "original_att" in semantics else "att ")
        assert json.loads(handle.attrs["imported_files"])[str(semantics_path)] == sha256_file(semantics_path)
    if dataset == "CUB":
        assert all(name.startswith(f"{class_id + 1:03d}.") for class_id, name in enumerate(names))
    read_store(out)


def test_real_cub_in_file_order_is_detected(tmp_path):
    semantics = real_semantics("CUB")
    file_names = [str(cell[0]) for cell in semantics["allclasses_names"].ravel()]
    names = class_names_by_id("CUB", file_names)
    labels = labels_consistent_with_splits(semantics, len(names))
    folder = tmp_path / "CUB"
    folder.mkdir()
    write_mat_v5(
        folder / "res101.mat",
        {
            "features": np.zeros((FEATURE_DIM, labels.size)),
            "labels": (labels + 1).astype(np.float64)[:, None],
            "image_files": [image_path("CUB", names[label], i) for i, label in enumerate(labels)],
        },
    )
    out = tmp_path / "out" / "features.h5"

    with pytest.raises(UserError, match=r"image_files folders disagree .* First mismatches: sample 1: ") as caught:
        import_xlsa17(folder, out, semantics=XLSA17 / "CUB" / "sent_splits.mat", class_order="file")

    first = labels[0]
    assert f"label {first + 1} is {file_names[first]!r}" in str(caught.value)
    assert_no_output(out)


# ---------------------------------------------------------------------------
# Command line


def run_stage(*arguments: str | Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "stages.import_xlsa17", *map(str, arguments)],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_writes_store(tmp_path):
    res101, semantics = toy_variables()
    folder = write_dataset(tmp_path / "TOY", res101, semantics, write_mat_v73)
    out = tmp_path / "features.h5"

    result = run_stage(folder, "--out", out, "--dataset", "toy")

    assert result.returncode == 0, result.stderr
    with h5py.File(out, "r") as handle:
        assert handle.attrs["dataset"] == "toy"
        assert handle["features/ce"].shape == (NUM_TOY_SAMPLES, FEATURE_DIM)
        assert handle["labels"].dtype == np.int64
        assert handle["classes/attributes"].shape == (len(TOY_CLASSES), TOY_ATTRIBUTES)


def test_cli_reports_bad_input_without_traceback(tmp_path):
    res101, semantics = toy_variables()
    _move_unseen_to_trainval(semantics)
    folder = write_dataset(tmp_path / "TOY", res101, semantics)
    out = tmp_path / "out" / "features.h5"

    result = run_stage(folder, "--out", out)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"error: {folder / 'att_splits.mat'}: unseen classes occur in trainval_loc")
    assert_no_output(out)


def test_cli_rejects_unknown_class_order(tmp_path):
    res101, semantics = toy_variables()
    folder = write_dataset(tmp_path / "TOY", res101, semantics)

    result = run_stage(folder, "--out", tmp_path / "features.h5", "--class-order", "sorted")

    assert result.returncode == 1
    assert "invalid class order 'sorted'; expected one of auto, file" in result.stderr
    assert "Traceback" not in result.stderr
