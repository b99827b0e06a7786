"""Import a benchmark in the xlsa17 format (Xian et al., GBU) into a feature store.

A dataset folder holds:

- ``res101.mat``: ``features`` [D, N] (one column per sample), ``labels`` [N, 1]
  with 1-based class ids, and optionally ``image_files`` [N, 1], a cell of paths.
- ``att_splits.mat``, or another semantics file such as CUB's ``sent_splits.mat``:
  ``att`` [A, C], optionally ``original_att`` [A, C] (the unnormalised
  semantics), ``allclasses_names`` [C, 1], and the 1-based sample positions
  ``trainval_loc``, ``test_seen_loc``, ``test_unseen_loc`` and optionally
  ``train_loc`` and ``val_loc``.
- Optionally the ZeroDiff authors' fine-tuned features ``ce_ce.mat`` (used as the
  CE features in place of the ``res101.mat`` ones) and ``con_paco.mat`` (the SC
  representations), each with ``features`` [N, D].

The labels index the class order of the dataset's ``att_splits.mat``. Another
semantics file may list its classes in another order: CUB's ``sent_splits.mat``
puts the 150 seen classes first. :func:`load_xlsa17` therefore reorders the
semantics columns to the label order. Where ``image_files`` carry class folders,
it also checks that every sample's folder names the class of its label.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np

from zerodiff.atomic import sha256_file
from zerodiff.errors import UserError
from zerodiff.matfile import load_mat
from zerodiff.store import FeatureStore, write_store

log = logging.getLogger("zerodiff.xlsa17")

ClassOrder = Literal["auto", "file"]
CLASS_ORDERS: tuple[str, ...] = ("auto", "file")

FEATURES_FILE = "res101.mat"
SEMANTICS_FILE = "att_splits.mat"
CE_FILE = "ce_ce.mat"
SC_FILE = "con_paco.mat"

# Store split name -> variable of the semantics file with its 1-based sample positions.
SPLIT_VARIABLES = {"trainval": "trainval_loc", "test_seen": "test_seen_loc", "test_unseen": "test_unseen_loc"}
VALIDATION_VARIABLES = {"train": "train_loc", "val": "val_loc"}

_MAX_LISTED = 5  # offending values quoted in an error message
# NOTE: SUN is expected to nest some classes (apse/indoor for apse_indoor); the
# tests check this against synthetic paths only, not a real SUN res101.mat.
_MAX_FOLDER_DEPTH = 3
_CLASS_ID_PREFIX = re.compile(r"^(\d+)\.")  # CUB-style names such as 001.Black_footed_Albatross


@dataclass(frozen=True)
class Xlsa17Files:
    """Paths of the files one import reads.

    ``names_reference`` is the dataset's ``att_splits.mat`` when the semantics
    come from another file: its ``allclasses_names`` give the label order.
    ``ce`` and ``sc`` are the authors' fine-tuned features, None when absent.
    """

    features: Path
    semantics: Path
    names_reference: Path | None = None
    ce: Path | None = None
    sc: Path | None = None


def locate_files(
    dataset_dir: str | os.PathLike,
    semantics: str | os.PathLike = SEMANTICS_FILE,
    features: str | os.PathLike = FEATURES_FILE,
) -> Xlsa17Files:
    """Find the files of an xlsa17 dataset folder.

    A relative ``semantics`` or ``features`` path is taken inside ``dataset_dir``.
    ``ce_ce.mat`` and ``con_paco.mat`` are used when the folder contains them.
    """
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: dataset folder not found; expected a folder with {FEATURES_FILE} and {SEMANTICS_FILE}")
    features_path = folder / features
    semantics_path = folder / semantics
    for path, role in ((features_path, "features and labels"), (semantics_path, "class semantics and splits")):
        if not path.is_file():
            raise UserError(f"{path}: file not found; it should contain the {role} of the dataset")
    reference = folder / SEMANTICS_FILE
    use_reference = reference.is_file() and reference.resolve() != semantics_path.resolve()
    return Xlsa17Files(
        features=features_path,
        semantics=semantics_path,
        names_reference=reference if use_reference else None,
        ce=_optional_file(folder / CE_FILE),
        sc=_optional_file(folder / SC_FILE),
    )


def _optional_file(path: Path) -> Path | None:
    return path if path.is_file() else None


def import_xlsa17(
    dataset_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    semantics: str | os.PathLike = SEMANTICS_FILE,
    features: str | os.PathLike = FEATURES_FILE,
    dataset: str | None = None,
    class_order: ClassOrder = "auto",
) -> FeatureStore:
    """Read an xlsa17 dataset folder and write it as a feature store at ``out``.

    Every input check runs before anything is written, and the store is written
    atomically, so a failed import leaves no output file.
    """
    files = locate_files(dataset_dir, semantics=semantics, features=features)
    store = load_xlsa17(files, dataset=dataset or Path(dataset_dir).resolve().name, class_order=class_order)
    write_store(out, store)
    log.info("wrote feature store %s", out)
    return store


def load_xlsa17(files: Xlsa17Files, dataset: str, class_order: ClassOrder = "auto") -> FeatureStore:
    """Read and check the files of one dataset; return the feature store contents.

    ``class_order="auto"`` puts the semantics columns into label order: by the
    names of ``files.names_reference`` when given, else by CUB-style numeric
    prefixes ("001.Black_footed_Albatross" is class 1) when every name has one,
    else in the order of the semantics file. ``"file"`` always keeps the order
    of the semantics file.

    Raises:
        UserError: naming the file and the problem. The checks cover missing
            files or variables, shape mismatches, labels outside the class
            range, classes without samples, split positions outside the
            samples, overlapping splits, unseen classes in trainval, NaN or Inf
            values, and image folders that disagree with the class names.
    """
    if class_order not in CLASS_ORDERS:
        raise UserError(f"invalid class order {class_order!r}; expected one of {', '.join(CLASS_ORDERS)}")
    log.info("reading %s and %s", files.features, files.semantics)
    split_keys = list(SPLIT_VARIABLES.values())
    semantics = load_mat(
        files.semantics,
        ["att", "allclasses_names", *split_keys],
        optional=["original_att", *VALIDATION_VARIABLES.values()],
    )
    source = load_mat(files.features, ["labels"] if files.ce else ["labels", "features"], optional=["image_files"])

    class_names, attributes, attributes_variable, order_note = _read_classes(files, semantics, class_order)
    labels = _one_based(source["labels"], files.features, "labels")
    _check_label_range(labels, class_names, files)
    num_samples = labels.size

    if files.ce is not None:
        features_ce, provenance_ce = _read_features(files.ce, None, num_samples, samples_in_rows=True)
    else:
        features_ce, provenance_ce = _read_features(files.features, source, num_samples, samples_in_rows=False)
    features_sc, provenance_sc = None, {}
    if files.sc is not None:
        features_sc, provenance_sc = _read_features(files.sc, None, num_samples, samples_in_rows=True)
    else:
        log.warning("%s has no %s: the store contains CE features only, so the training stages reject it (except the f-VAEGAN baseline)",
                    files.features.parent, SC_FILE)

    splits = _read_splits(semantics, files.semantics, labels, class_names)
    image_files = _image_files(source, files.features, num_samples)
    folder_check = "no image_files"
    if image_files is not None:
        folder_check = check_class_folders(image_files, labels, class_names, files)

    imported = [files.features, files.semantics, files.names_reference, files.ce, files.sc]
    attrs = {
        "source_format": "xlsa17",
        "imported_files": json.dumps({str(path): sha256_file(path) for path in imported if path is not None}, sort_keys=True),
        "attributes_variable": f"{attributes_variable} of {files.semantics}",
        "class_order": order_note,
        "class_folder_check": folder_check,
        "validation_split": (
            f"train_loc and val_loc of {files.semantics}, restricted to trainval_loc"
            if "train" in splits else "absent"
        ),
    }
    store = FeatureStore(
        dataset=dataset,
        features_ce=features_ce,
        features_sc=features_sc,
        labels=labels,
        class_names=class_names,
        attributes=attributes,
        splits=splits,
        image_files=image_files,
        provenance_ce=provenance_ce,
        provenance_sc=provenance_sc,
        attrs=attrs,
    )
    log.info(
        "imported %s: %d samples, %d classes (%d seen, %d unseen), CE %s, SC %s",
        dataset, num_samples, len(class_names), store.seen_classes.size, store.unseen_classes.size,
        features_ce.shape[1], "absent" if features_sc is None else features_sc.shape[1],
    )
    return store


# ---------------------------------------------------------------------------
# Classes and semantics


def _read_classes(
    files: Xlsa17Files, semantics: dict, class_order: ClassOrder
) -> tuple[list[str], np.ndarray, str, str]:
    """Return class names and attributes [C, A] in label order, the variable used and how the order was found."""
    path = files.semantics
    names = _string_list(semantics["allclasses_names"], path, "allclasses_names")
    att = _numeric(semantics["att"], path, "att", ndim=2)
    if att.shape[1] != len(names):
        raise UserError(
            f"{path}: att has shape {list(att.shape)} (attributes x classes) but allclasses_names lists "
            f"{len(names)} classes; the class counts must agree"
        )
    if "original_att" in semantics:
        matrix = _numeric(semantics["original_att"], path, "original_att", ndim=2)
        if matrix.shape != att.shape:
            raise UserError(f"{path}: original_att has shape {list(matrix.shape)}, expected {list(att.shape)} like att")
        variable = "original_att"
    else:
        log.info("%s has no original_att; storing att as the class semantics", path)
        matrix, variable = att, "att"
    with np.errstate(over="ignore"):
        matrix = matrix.astype(np.float32)
    _check_finite(matrix.T, path, variable, "class(es)")

    order = np.arange(len(names))
    note = f"allclasses_names of {path}"
    if class_order == "auto" and files.names_reference is not None:
        reference = load_mat(files.names_reference, ["allclasses_names"])
        reference_names = _string_list(reference["allclasses_names"], files.names_reference, "allclasses_names")
        order = _align_names(names, path, reference_names, files.names_reference)
        note = f"allclasses_names of {files.names_reference}, semantics columns of {path} matched by name"
    elif class_order == "auto":
        by_prefix = _class_id_order(names)
        if by_prefix is not None:
            order = by_prefix
            note = f"numeric class-id prefix of allclasses_names in {path}"
    names = [names[i] for i in order]
    return names, np.ascontiguousarray(matrix[:, order].T), variable, note


def _align_names(names: list[str], path: Path, reference: list[str], reference_path: Path) -> np.ndarray:
    """Return column positions in ``names`` of each class of ``reference``."""
    for listed, where in ((names, path), (reference, reference_path)):
        if len(set(listed)) != len(listed):
            duplicates = sorted({name for name in listed if listed.count(name) > 1})
            raise UserError(f"{where}: allclasses_names repeats class names: {', '.join(duplicates[:_MAX_LISTED])}")
    only_reference = [name for name in reference if name not in set(names)]
    only_semantics = [name for name in names if name not in set(reference)]
    if only_reference or only_semantics:
        raise UserError(
            f"{path}: allclasses_names lists other classes than {reference_path}, whose order the labels follow "
            f"(only in {path.name}: {', '.join(only_semantics[:_MAX_LISTED]) or 'none'}; "
            f"only in {reference_path.name}: {', '.join(only_reference[:_MAX_LISTED]) or 'none'}); "
            f"use class order 'file' if the labels index the order of {path.name}"
        )
    position = {name: i for i, name in enumerate(names)}
    return np.array([position[name] for name in reference], dtype=np.int64)


def _class_id_order(names: Sequence[str]) -> np.ndarray | None:
    """Return the column order that sorts CUB-style names by class id, or None.

    None unless every name starts with a number and a dot and the numbers are
    exactly 1..C.
    """
    matches = [_CLASS_ID_PREFIX.match(name) for name in names]
    if not all(matches):
        return None
    ids = np.array([int(match.group(1)) for match in matches])
    if not np.array_equal(np.sort(ids), np.arange(1, len(names) + 1)):
        return None
    return np.argsort(ids, kind="stable")


def _check_label_range(labels: np.ndarray, class_names: list[str], files: Xlsa17Files) -> None:
    """Check that the labels use exactly the classes of the semantics file."""
    outside = np.flatnonzero(labels >= len(class_names))
    if outside.size:
        raise UserError(
            f"{files.features}: labels go up to class id {labels.max() + 1} but {files.semantics} has "
            f"{len(class_names)} classes (first samples beyond: {_listed(outside + 1)}, 1-based); "
            "the semantics file probably belongs to another dataset"
        )
    counts = np.bincount(labels, minlength=len(class_names))
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        listed = ", ".join(f"{i + 1} ({class_names[i]})" for i in empty[:_MAX_LISTED])
        raise UserError(
            f"{files.features}: labels cover {len(class_names) - empty.size} of the {len(class_names)} classes of "
            f"{files.semantics}; no sample has class id(s) {listed}, {empty.size} classes in all. "
            "The semantics file probably belongs to another dataset"
        )


# ---------------------------------------------------------------------------
# Features


def _read_features(
    path: Path, contents: dict | None, num_samples: int, *, samples_in_rows: bool
) -> tuple[np.ndarray, dict]:
    """Return the ``features`` variable of ``path`` as float32 [N, D] and its provenance.

    ``samples_in_rows`` is the documented layout: [N, D] for the authors' files,
    [D, N] for ``res101.mat``. The layout actually used is detected from the
    sample count, and the documented one wins when both axes match.
    """
    if contents is None:
        contents = load_mat(path, ["features"])
    matrix = _numeric(contents["features"], path, "features", ndim=2)
    rows_match, columns_match = matrix.shape[0] == num_samples, matrix.shape[1] == num_samples
    if not (rows_match or columns_match):
        raise UserError(
            f"{path}: features has shape {list(matrix.shape)} but there are {num_samples} labels; "
            "one axis must have one entry per sample"
        )
    transpose = columns_match and not (rows_match and samples_in_rows)
    # Casting to float32 may overflow to Inf, so the check runs on the cast values.
    with np.errstate(over="ignore"):
        features = np.ascontiguousarray(matrix.T if transpose else matrix, dtype=np.float32)
    _check_finite(features, path, "features", "sample(s)")
    layout = "[D, N], transposed on import" if transpose else "[N, D]"
    provenance = {"source": f"imported from {path}", "file": str(path), "sha256": sha256_file(path),
                  "variable": "features", "layout": layout}
    log.info("read features %s from %s (%s)", list(features.shape), path, layout)
    return features, provenance


# ---------------------------------------------------------------------------
# Splits


def _read_splits(semantics: dict, path: Path, labels: np.ndarray, class_names: list[str]) -> dict[str, np.ndarray]:
    """Return 0-based sample indices per split, after checking them against the labels."""
    num_samples = labels.size
    splits = {name: _one_based(semantics[key], path, key, num_samples) for name, key in SPLIT_VARIABLES.items()}
    for name, indices in splits.items():
        _check_unique(indices, path, SPLIT_VARIABLES[name])
    names = list(SPLIT_VARIABLES)
    for position, first in enumerate(names):
        for second in names[position + 1 :]:
            _check_disjoint(splits[first], splits[second], path, SPLIT_VARIABLES[first], SPLIT_VARIABLES[second])
    for name in ("trainval", "test_unseen"):
        if splits[name].size == 0:
            raise UserError(f"{path}: {SPLIT_VARIABLES[name]} is empty")

    seen = np.unique(labels[splits["trainval"]])
    unseen = np.unique(labels[splits["test_unseen"]])
    both = np.intersect1d(seen, unseen)
    if both.size:
        raise UserError(
            f"{path}: unseen classes occur in trainval_loc: {_class_list(both, class_names)} "
            f"({both.size} classes in all); test_unseen_loc classes must not be trained on"
        )
    not_seen = np.setdiff1d(np.unique(labels[splits["test_seen"]]), seen)
    if not_seen.size:
        raise UserError(
            f"{path}: test_seen_loc contains classes without samples in trainval_loc: {_class_list(not_seen, class_names)}"
        )

    present = [key for key in VALIDATION_VARIABLES.values() if key in semantics]
    if len(present) == 1:
        raise UserError(f"{path}: contains {present[0]} without its partner; give both train_loc and val_loc or neither")
    if present:
        splits.update(_validation_splits(semantics, path, labels, class_names, splits["trainval"]))
    return splits


def _validation_splits(
    semantics: dict, path: Path, labels: np.ndarray, class_names: list[str], trainval: np.ndarray
) -> dict[str, np.ndarray]:
    """Return the class-disjoint train/val split, kept to trainval samples.

    In the xlsa17 files train_loc and val_loc cover trainval and test_seen
    together, so they are cut down to trainval here: tuning on them must never
    touch a test sample.
    """
    result = {}
    for name, key in VALIDATION_VARIABLES.items():
        indices = _one_based(semantics[key], path, key, labels.size)
        _check_unique(indices, path, key)
        result[name] = indices[np.isin(indices, trainval)]
    _check_disjoint(result["train"], result["val"], path, "train_loc", "val_loc")
    shared = np.intersect1d(labels[result["train"]], labels[result["val"]])
    if shared.size:
        raise UserError(
            f"{path}: train_loc and val_loc share classes {_class_list(shared, class_names)}; "
            "the validation split must be class-disjoint"
        )
    for name, key in VALIDATION_VARIABLES.items():
        if result[name].size == 0:
            raise UserError(f"{path}: {key} has no samples in trainval_loc")
    return result


def _check_unique(indices: np.ndarray, path: Path, key: str) -> None:
    values, counts = np.unique(indices, return_counts=True)
    if (counts > 1).any():
        raise UserError(f"{path}: {key} repeats sample positions {_listed(values[counts > 1] + 1)} (1-based)")


def _check_disjoint(first: np.ndarray, second: np.ndarray, path: Path, first_key: str, second_key: str) -> None:
    overlap = np.intersect1d(first, second)
    if overlap.size:
        raise UserError(
            f"{path}: {first_key} and {second_key} overlap in {overlap.size} sample(s), "
            f"for example positions {_listed(overlap + 1)} (1-based)"
        )


# ---------------------------------------------------------------------------
# Image files


def _image_files(source: dict, path: Path, num_samples: int) -> list[str] | None:
    if "image_files" not in source:
        return None
    image_files = _string_list(source["image_files"], path, "image_files")
    if len(image_files) != num_samples:
        raise UserError(f"{path}: image_files has {len(image_files)} entries but labels has {num_samples}")
    return image_files


def check_class_folders(
    image_files: Sequence[str], labels: np.ndarray, class_names: Sequence[str], files: Xlsa17Files
) -> str:
    """Check that each image lies in the folder of its label's class; return a note for the store.

    A folder matches when it equals the class name ignoring case and a CUB-style
    numeric prefix, or when its last two or three folder levels joined by "_" do,
    as for ``apse_indoor`` in ``apse/indoor``. The check is skipped when no path
    has a folder.

    Raises:
        UserError: listing the first mismatching samples.
    """
    folders = [_folders(path) for path in image_files]
    if not any(folders):
        log.warning("%s: image_files carry no folder names, so the class order cannot be checked", files.features)
        return "skipped: image_files carry no folders"
    targets = [_canonical(name) for name in class_names]
    mismatches = [
        index for index, (parts, label) in enumerate(zip(folders, labels))
        if not _folder_matches(parts, targets[label])
    ]  # fmt: skip
    if mismatches:
        examples = "; ".join(
            f"sample {index + 1}: {image_files[index]!r}, label {labels[index] + 1} is {class_names[labels[index]]!r}"
            for index in mismatches[:_MAX_LISTED]
        )
        raise UserError(
            f"{files.features}: image_files folders disagree with the class names of the labels for "
            f"{len(mismatches)} of {len(image_files)} samples, so allclasses_names of {files.semantics} is probably "
            f"in another order than the labels. First mismatches: {examples}"
        )
    return "passed: every image lies in its class folder"


def _folders(path: str) -> tuple[str, ...]:
    return PurePosixPath(path.replace("\\", "/")).parts[:-1]


def _canonical(name: str) -> str:
    return _CLASS_ID_PREFIX.sub("", name.strip()).lower()


def _folder_matches(folders: tuple[str, ...], target: str) -> bool:
    for depth in range(1, min(_MAX_FOLDER_DEPTH, len(folders)) + 1):
        if _canonical("_".join(folders[-depth:])) == target:
            return True
    return False


# ---------------------------------------------------------------------------
# Value conversion


def _numeric(value: object, path: Path, key: str, ndim: int | None = None) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise UserError(f"{path}: {key} must be a numeric array, got a cell or char array")
    if ndim is not None and value.ndim != ndim:
        raise UserError(f"{path}: {key} must be {ndim}-D, got shape {list(value.shape)}")
    return value


def _one_based(value: object, path: Path, key: str, upper: int | None = None) -> np.ndarray:
    """Convert a vector of 1-based integers, at most ``upper`` when given, to 0-based int64."""
    array = _numeric(value, path, key)
    if array.ndim > 2 or (array.ndim == 2 and min(array.shape) > 1):
        raise UserError(f"{path}: {key} must be a vector, got shape {list(array.shape)}")
    flat = array.ravel().astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(flat) | (flat != np.round(flat)))
    if bad.size:
        raise UserError(f"{path}: {key} must hold whole numbers; entries {_listed(bad + 1)} are {_listed(flat[bad])}")
    bad = np.flatnonzero((flat < 1) | (flat > (np.inf if upper is None else upper)))
    if bad.size:
        valid = "at least 1" if upper is None else f"within 1..{upper}"
        raise UserError(
            f"{path}: {key} must hold 1-based positions {valid}; entries {_listed(bad + 1)} are "
            f"{_listed(flat[bad].astype(np.int64))}, {bad.size} bad entries in all"
        )
    return flat.astype(np.int64) - 1


def _string_list(value: object, path: Path, key: str) -> list[str]:
    if not isinstance(value, list):
        raise UserError(f"{path}: {key} must be a cell array of strings, got a numeric array")
    return value


def _check_finite(matrix: np.ndarray, path: Path, key: str, rows_name: str) -> None:
    """Raise when ``matrix`` [rows, D] has NaN or Inf, naming the 1-based rows (samples or classes)."""
    finite = np.isfinite(matrix)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        raise UserError(
            f"{path}: {key} contains NaN or Inf for {rows_name} {_listed(rows + 1)} (1-based), {rows.size} in all"
        )


def _class_list(class_ids: np.ndarray, class_names: Sequence[str]) -> str:
    return ", ".join(class_names[i] for i in class_ids[:_MAX_LISTED])


def _listed(values: np.ndarray) -> str:
    return ", ".join(str(value) for value in np.asarray(values).ravel()[:_MAX_LISTED].tolist())
