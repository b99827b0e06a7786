"""The three image inputs of the extract stage, read into one :class:`ImageSource`.

1. An image-arrays folder (``images.npy``, ``labels.npy``, ``dataset.json``), as
   written by ``zerodiff prepare-digits``.
2. An xlsa17 folder: ``res101.mat`` (``image_files``, 1-based ``labels``) plus
   ``att_splits.mat`` or ``sent_splits.mat`` (1-based ``*_loc`` splits, ``att``,
   ``original_att``, ``allclasses_names``). The recorded absolute image paths are
   remapped under an image root (see :func:`remap_image_path`).
3. A folder-per-class tree ``ROOT/<class name>/*.png|jpg|jpeg`` with a text file
   listing the unseen classes and a CSV of class semantics.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from zerodiff.errors import UserError
from zerodiff.matfile import load_mat
from zerodiff.store import OPTIONAL_SPLITS, REQUIRED_SPLITS, FeatureStore, validate_store

log = logging.getLogger("zerodiff.extraction")

IMAGE_ARRAYS_FORMAT = "zerodiff-image-arrays"
IMAGE_ARRAYS_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_MAX_LISTED = 5


@dataclass
class ImageSource:
    """Images with labels, class semantics and splits, before any feature exists.

    Exactly one of ``arrays`` (float32 [N, H, W], pixel values scaled to [0, 1])
    and ``paths`` (one image file per sample) is set. ``attributes`` is
    [C, A], unnormalised, and ``splits`` contains 0-based int64 sample indices.
    """

    dataset: str
    kind: str
    location: str
    labels: np.ndarray
    class_names: list[str]
    attributes: np.ndarray
    splits: dict[str, np.ndarray]
    arrays: np.ndarray | None = None
    paths: list[Path] | None = None

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def seen_classes(self) -> np.ndarray:
        return np.unique(self.labels[self.splits["trainval"]])

    @property
    def unseen_classes(self) -> np.ndarray:
        return np.unique(self.labels[self.splits["test_unseen"]])

    def without_samples(self, removed: np.ndarray) -> ImageSource:
        """Return a copy without the samples ``removed``, with the splits renumbered."""
        keep = np.ones(self.num_samples, dtype=bool)
        keep[np.asarray(removed, dtype=np.int64)] = False
        new_index = np.cumsum(keep) - 1
        splits = {name: new_index[indices[keep[indices]]].astype(np.int64) for name, indices in self.splits.items()}
        return dataclasses.replace(
            self,
            labels=self.labels[keep],
            splits=splits,
            arrays=None if self.arrays is None else self.arrays[keep],
            paths=None if self.paths is None else [path for path, kept in zip(self.paths, keep) if kept],
        )


def check_source(source: ImageSource, where: str) -> None:
    """Apply the feature store's rules on labels, classes and splits to ``source``."""
    stand_in = FeatureStore(
        dataset=source.dataset,
        features_ce=np.zeros((source.num_samples, 1), dtype=np.float32),
        labels=source.labels,
        class_names=source.class_names,
        attributes=source.attributes,
        splits=source.splits,
    )
    validate_store(stand_in, where)


# ---------------------------------------------------------------- image arrays


def load_image_arrays(folder: Path) -> ImageSource:
    """Read an image-arrays folder and check it against its format."""
    folder = Path(folder)
    meta_path = folder / "dataset.json"
    for path in (folder / "images.npy", folder / "labels.npy", meta_path):
        if not path.is_file():
            raise UserError(f"{path} not found; is {folder} a folder written by zerodiff prepare-digits?")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{meta_path}: invalid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != IMAGE_ARRAYS_FORMAT:
        raise UserError(f"{meta_path}: key 'format' must be {IMAGE_ARRAYS_FORMAT!r}, got {meta.get('format') if isinstance(meta, dict) else meta!r}")
    if meta.get("format_version") != IMAGE_ARRAYS_VERSION:
        raise UserError(f"{meta_path}: format_version is {meta.get('format_version')!r}, expected {IMAGE_ARRAYS_VERSION}")
    missing = [key for key in ("dataset", "class_names", "attributes", "pixel_max", "splits") if key not in meta]
    if missing:
        raise UserError(f"{meta_path}: missing key(s) {', '.join(missing)}")

    images = _load_npy(folder / "images.npy")
    labels = _load_npy(folder / "labels.npy")
    if images.ndim != 3 or not np.issubdtype(images.dtype, np.number):
        raise UserError(f"{folder / 'images.npy'}: expected a numeric [N, H, W] array, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{folder / 'labels.npy'}: expected integer labels of shape [{images.shape[0]}], got {labels.dtype} {labels.shape}")
    pixel_max = meta["pixel_max"]
    if isinstance(pixel_max, bool) or not isinstance(pixel_max, (int, float)) or not pixel_max > 0:
        raise UserError(f"{meta_path}: pixel_max must be a positive number, got {pixel_max!r}")
    images = images.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(images).all(axis=(1, 2)) | (images < 0).any(axis=(1, 2)) | (images > pixel_max).any(axis=(1, 2)))
    if bad.size:
        raise UserError(
            f"{folder / 'images.npy'}: {bad.size} image(s) have pixel values outside [0, {pixel_max}] or non-finite values, "
            f"at sample(s) {', '.join(map(str, bad[:_MAX_LISTED].tolist()))}"
        )

    try:
        attributes = np.asarray(meta["attributes"], dtype=np.float32)
    except (TypeError, ValueError):
        raise UserError(f"{meta_path}: 'attributes' must be a [C, A] list of numbers") from None
    splits = {}
    for name, indices in (meta["splits"] or {}).items():
        if name not in REQUIRED_SPLITS + OPTIONAL_SPLITS:
            raise UserError(f"{meta_path}: unknown split {name!r} under 'splits'; valid splits are {', '.join(REQUIRED_SPLITS + OPTIONAL_SPLITS)}")
        if not isinstance(indices, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
            raise UserError(f"{meta_path}: splits.{name} must be a list of integer sample indices")
        splits[name] = np.asarray(indices, dtype=np.int64)
    source = ImageSource(
        dataset=str(meta["dataset"]),
        kind="image-arrays",
        location=str(folder),
        labels=labels.astype(np.int64),
        class_names=[str(name) for name in meta["class_names"]],
        attributes=attributes,
        splits=splits,
        arrays=images / np.float32(pixel_max),
    )
    check_source(source, str(meta_path))
    return source


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise UserError(f"{path}: not a readable .npy array ({error})") from None


# ---------------------------------------------------------------- xlsa17


def remap_image_path(recorded: str, image_root: Path, strip_prefix: str | None = None) -> Path:
    """Map an absolute path recorded in ``res101.mat`` to a file under ``image_root``.

    With ``strip_prefix``, the recorded path must start with it and the rest is
    joined to ``image_root``. Without it, everything up to and including the
    last path component equal to ``image_root``'s folder name is removed, so
    ``/BS/xian/data/AWA2//JPEGImages/ant/1.jpg`` with root ``/data/AWA2`` becomes
    ``/data/AWA2/JPEGImages/ant/1.jpg``. Repeated slashes count as one.

    >>> str(remap_image_path("/old/AWA2//JPEGImages/ant/1.jpg", Path("/data/AWA2")))
    '/data/AWA2/JPEGImages/ant/1.jpg'
    >>> str(remap_image_path("/old/x/CUB/images/1.jpg", Path("/d"), strip_prefix="/old/x"))
    '/d/CUB/images/1.jpg'
    """
    if strip_prefix is not None:
        if not recorded.startswith(strip_prefix):
            raise UserError(f"recorded image path {recorded!r} does not start with --strip-prefix {strip_prefix!r}")
        return image_root.joinpath(*PurePosixPath(recorded[len(strip_prefix) :].lstrip("/")).parts)
    parts = PurePosixPath(recorded).parts
    matches = [position for position, part in enumerate(parts) if part == image_root.name]
    if not matches:
        raise UserError(
            f"recorded image path {recorded!r} contains no folder named {image_root.name!r} (the name of --image-root); "
            "point --image-root at the dataset folder that the recorded paths contain, or give --strip-prefix"
        )
    return image_root.joinpath(*parts[matches[-1] + 1 :])


def load_xlsa17(
    folder: Path,
    image_root: Path,
    strip_prefix: str | None = None,
    splits_file: str | None = None,
    dataset: str | None = None,
) -> ImageSource:
    """Read an xlsa17 folder and remap its image paths under ``image_root``.

    ``splits_file`` defaults to ``att_splits.mat``, else ``sent_splits.mat``.
    Class semantics are ``original_att`` when present (unnormalised), else
    ``att``. Labels are aligned with ``allclasses_names`` by
    :func:`_align_labels_with_folders`.
    """
    folder = Path(folder)
    res_path = folder / "res101.mat"
    if splits_file is None:
        splits_file = "att_splits.mat" if (folder / "att_splits.mat").is_file() else "sent_splits.mat"
    split_path = folder / splits_file
    # Only the named variables are read, so the large 'features' array of res101.mat stays on disk.
    res = load_mat(res_path, ["image_files", "labels"])
    required = ["allclasses_names", "att"] + [f"{name}_loc" for name in REQUIRED_SPLITS]
    optional = ["original_att"] + [f"{name}_loc" for name in OPTIONAL_SPLITS]
    splits_mat = load_mat(split_path, required, optional=optional)

    recorded = res["image_files"]
    raw_labels = np.asarray(res["labels"]).astype(np.int64).ravel()
    if raw_labels.shape[0] != len(recorded):
        raise UserError(f"{res_path}: 'labels' has {raw_labels.shape[0]} entries but 'image_files' has {len(recorded)}")
    names = splits_mat["allclasses_names"]
    semantics_key = "original_att" if "original_att" in splits_mat else "att"
    attributes = np.asarray(splits_mat[semantics_key]).astype(np.float32)
    if attributes.ndim != 2 or attributes.shape[1] != len(names):
        raise UserError(f"{split_path}: {semantics_key!r} has shape {attributes.shape}, expected [A, {len(names)}] for the {len(names)} allclasses_names")
    out_of_range = np.flatnonzero((raw_labels < 1) | (raw_labels > len(names)))
    if out_of_range.size:
        raise UserError(
            f"{res_path}: 'labels' must be 1-based class ids in [1, {len(names)}]; sample(s) "
            f"{', '.join(map(str, out_of_range[:_MAX_LISTED].tolist()))} have {', '.join(map(str, raw_labels[out_of_range[:_MAX_LISTED]].tolist()))}"
        )
    labels = _align_labels_with_folders(raw_labels - 1, recorded, names, res_path)

    splits = {}
    for name in REQUIRED_SPLITS + OPTIONAL_SPLITS:
        key = f"{name}_loc"
        if key in splits_mat:
            positions = np.asarray(splits_mat[key]).astype(np.int64).ravel()
            if positions.size and (positions.min() < 1 or positions.max() > len(recorded)):
                raise UserError(f"{split_path}: {key!r} has positions outside [1, {len(recorded)}] (the samples of {res_path})")
            splits[name] = positions - 1

    paths = [remap_image_path(path, Path(image_root), strip_prefix) for path in recorded]
    source = ImageSource(
        dataset=dataset or folder.name,
        kind="xlsa17",
        location=str(folder),
        labels=labels,
        class_names=names,
        attributes=attributes.T.copy(),
        splits=splits,
        paths=paths,
    )
    check_source(source, str(split_path))
    return source


def _align_labels_with_folders(labels: np.ndarray, recorded: list[str], names: list[str], where: Path) -> np.ndarray:
    """Check, and if needed repair, the label-to-name order using the images' class folders.

    The splits file may list ``allclasses_names`` in another order than the
    labels (the CUB ``sent_splits.mat`` does). Images whose parent folder is a
    class name vote for that name. If every label's voters agree with its
    name, labels are returned unchanged. If they agree on another name, the
    labels are renumbered to that name's position. Anything else is an error.
    Labels without voters (folders that are not class names, as for SUN's
    nested scene folders) are trusted as given.
    """
    name_position = {name: position for position, name in enumerate(names)}
    folders = np.array([PurePosixPath(path).parent.name for path in recorded])
    mapping = np.arange(len(names))
    changed = []
    for label in np.unique(labels):
        voters = {folder for folder in folders[labels == label] if folder in name_position}
        if not voters:
            continue
        if len(voters) > 1:
            raise UserError(f"{where}: images of label {label + 1} lie in folders of several classes: {', '.join(sorted(voters)[:_MAX_LISTED])}")
        folder = voters.pop()
        if folder != names[label]:
            mapping[label] = name_position[folder]
            changed.append(f"{label + 1} -> {folder}")
    if changed:
        if np.unique(mapping).size != mapping.size:
            raise UserError(f"{where}: labels disagree with allclasses_names and cannot be realigned by folder name ({', '.join(changed[:_MAX_LISTED])})")
        log.info("realigned %d label(s) with allclasses_names by image folder name, e.g. %s", len(changed), ", ".join(changed[:3]))
    return mapping[labels].astype(np.int64)


# ---------------------------------------------------------------- folder per class


def load_image_folder(
    root: Path,
    unseen_file: Path,
    semantics_file: Path,
    seen_test_fraction: float,
    split_seed: int,
    dataset: str | None = None,
) -> ImageSource:
    """Read a folder-per-class tree and split it into the GZSL splits.

    Classes are the rows of ``semantics_file`` in file order. Each seen class's
    images (sorted by name) are permuted with a generator seeded by
    ``(split_seed, class id)``. The first ``round(seen_test_fraction * n)`` of
    them become test_seen (at most n - 1) and the rest trainval. Every image
    of an unseen class is test_unseen.
    """
    root, unseen_file, semantics_file = Path(root), Path(unseen_file), Path(semantics_file)
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    names, attributes = _read_semantics_csv(semantics_file)
    if not unseen_file.is_file():
        raise UserError(f"unseen-class list not found: {unseen_file}")
    unseen_names = [line.strip() for line in unseen_file.read_text().splitlines() if line.strip()]
    unknown = sorted(set(unseen_names) - set(names))
    if unknown:
        raise UserError(f"{unseen_file}: unknown class name(s) {', '.join(unknown[:_MAX_LISTED])}; class names are the first column of {semantics_file}")
    if not unseen_names or len(set(unseen_names)) == len(names):
        raise UserError(f"{unseen_file}: list at least one unseen class and leave at least one class seen")

    folders = sorted(path.name for path in root.iterdir() if path.is_dir())
    extra = sorted(set(folders) - set(names))
    if extra:
        raise UserError(f"{root}: class folder(s) {', '.join(extra[:_MAX_LISTED])} have no row in {semantics_file}")
    paths: list[Path] = []
    labels: list[int] = []
    for class_id, name in enumerate(names):
        class_dir = root / name
        files = sorted(path for path in class_dir.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES) if class_dir.is_dir() else []
        if not files:
            raise UserError(f"{class_dir}: no images ({', '.join(IMAGE_SUFFIXES)}) for class {name!r} listed in {semantics_file}")
        paths.extend(files)
        labels.extend([class_id] * len(files))
    label_array = np.asarray(labels, dtype=np.int64)

    unseen_ids = {names.index(name) for name in unseen_names}
    trainval, test_seen, test_unseen = [], [], []
    for class_id in range(len(names)):
        members = np.flatnonzero(label_array == class_id)
        if class_id in unseen_ids:
            test_unseen.append(members)
            continue
        rng = np.random.default_rng(np.random.SeedSequence([split_seed, class_id]))
        order = members[rng.permutation(members.size)]
        test_count = min(math.floor(seen_test_fraction * members.size + 0.5), members.size - 1)
        test_seen.append(np.sort(order[:test_count]))
        trainval.append(np.sort(order[test_count:]))
    source = ImageSource(
        dataset=dataset or root.name,
        kind="image-folder",
        location=str(root),
        labels=label_array,
        class_names=names,
        attributes=attributes,
        splits={
            "trainval": np.concatenate(trainval),
            "test_seen": np.concatenate(test_seen),
            "test_unseen": np.concatenate(test_unseen),
        },
        paths=paths,
    )
    check_source(source, str(root))
    return source


def _read_semantics_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """Read ``class name, value, value, ...`` rows. A first row with non-numeric values is a header."""
    if not path.is_file():
        raise UserError(f"class-semantics file not found: {path}")
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if rows and not _all_numbers(rows[0][1:]):
        rows = rows[1:]
    if not rows:
        raise UserError(f"{path}: no class rows; expected 'class name, attribute values...' per line")
    widths = {len(row) for row in rows}
    if len(widths) != 1 or widths.pop() < 2:
        raise UserError(f"{path}: every row needs a class name and the same number (at least one) of attribute values")
    names = [row[0].strip() for row in rows]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(f"{path}: duplicate class name(s) {', '.join(duplicates[:_MAX_LISTED])}")
    for row in rows:
        if not _all_numbers(row[1:]):
            raise UserError(f"{path}: class {row[0]!r} has non-numeric attribute values {row[1:][:_MAX_LISTED]}")
    return names, np.asarray([[float(cell) for cell in row[1:]] for row in rows], dtype=np.float32)


def _all_numbers(cells: list[str]) -> bool:
    try:
        values = [float(cell) for cell in cells]
    except ValueError:
        return False
    return all(math.isfinite(value) for value in values)
