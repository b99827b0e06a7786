"""Tests of the extract stage's inputs: image folders, xlsa17 folders, image arrays, unreadable images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from stages.extract import main
from zerodiff.atomic import sha256_file
from zerodiff.errors import UserError
from zerodiff.extraction import load_image_arrays, load_image_folder, load_xlsa17
from zerodiff.extraction.backbones import build_backbone
from zerodiff.extraction.sources import remap_image_path
from zerodiff.store import read_store

CLASSES = ["cat", "dog", "fox"]
IMAGES_PER_CLASS = 5


def stage_app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(main)
    return app


def write_png(path: Path, seed: int, size: tuple[int, int] = (24, 20)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture()
def image_tree(tmp_path) -> dict[str, Path]:
    root = tmp_path / "animals"
    for class_id, name in enumerate(CLASSES):
        for number in range(IMAGES_PER_CLASS):
            write_png(root / name / f"{name}_{number}.png", seed=10 * class_id + number)
    unseen = tmp_path / "unseen.txt"
    unseen.write_text("fox\n")
    semantics = tmp_path / "semantics.csv"
    semantics.write_text("class,furry,barks\ncat,1,0\ndog,1,1\nfox,1,0.5\n")
    return {"root": root, "unseen": unseen, "semantics": semantics}


@pytest.fixture(scope="module")
def resnet18_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A torchvision-style state dict for F_ce and a PaCo-style wrapped checkpoint for F_sc, random weights."""
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(1)
    network, _ = build_backbone("resnet18", 3, 0)
    state = dict(network.state_dict(), **{"fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)})
    torch.save(state, folder / "resnet18.pth")
    torch.manual_seed(2)
    network, _ = build_backbone("resnet18", 3, 0)
    wrapped = {f"module.encoder_q.{key}": value for key, value in network.state_dict().items()}
    wrapped["module.encoder_q.fc.0.weight"] = torch.randn(512, 512)
    wrapped["module.encoder_k.conv1.weight"] = torch.randn(64, 3, 7, 7)
    torch.save({"state_dict": wrapped}, folder / "paco_r18.pth.tar")
    return {"ce": folder / "resnet18.pth", "sc": folder / "paco_r18.pth.tar"}


def folder_args(tree: dict[str, Path], tmp_path: Path, checkpoints: dict[str, Path]) -> list[str]:
    params = tmp_path / "params.yaml"
    params.write_text("extract:\n  device: cpu\n  architecture: resnet18\n  image_size: 16\n  resize_size: 18\n")
    return [
        "--source", "image-folder", "--input", str(tree["root"]), "--unseen-classes", str(tree["unseen"]),
        "--class-semantics", str(tree["semantics"]), "--out", str(tmp_path / "out" / "animals.h5"),
        "--models-dir", str(tmp_path / "models"), "--params", str(params),
        "--set", f"ce.checkpoint={checkpoints['ce']}", "--set", f"sc.checkpoint={checkpoints['sc']}",
        "--set", "ce.epochs=1", "--set", "sc.epochs=1", "--set", "ce.batch_size=4", "--set", "sc.batch_size=4",
    ]


# ---------------------------------------------------------------- folder per class


def test_image_folder_run_writes_valid_store(tmp_path, image_tree, resnet18_checkpoints):
    result = CliRunner().invoke(stage_app(), folder_args(image_tree, tmp_path, resnet18_checkpoints))
    assert result.exit_code == 0, result.output

    store = read_store(tmp_path / "out" / "animals.h5")
    total = len(CLASSES) * IMAGES_PER_CLASS
    assert store.dataset == "animals"
    assert store.features_ce.shape == (total, 512)
    assert store.features_sc.shape == (total, 512)
    assert store.class_names == CLASSES
    assert store.attributes.tolist() == [[1.0, 0.0], [1.0, 1.0], [1.0, 0.5]]
    assert store.unseen_classes.tolist() == [2]
    assert store.splits["test_unseen"].size == IMAGES_PER_CLASS
    assert store.splits["test_seen"].size == 2  # round(0.2 * 5) per seen class
    assert store.splits["trainval"].size == 8
    assert store.image_files[0].endswith("cat/cat_0.png")
    assert store.provenance_ce["checkpoint_sha256"] == sha256_file(resnet18_checkpoints["ce"])
    assert store.provenance_sc["checkpoint_sha256"] == sha256_file(resnet18_checkpoints["sc"])
    assert store.provenance_sc["checkpoint_prefix"] == "module.encoder_q."
    assert store.provenance_ce["image_size"] == "16x16"
    assert (tmp_path / "models" / "ce.pt").is_file()
    assert (tmp_path / "models" / "sc.pt").is_file()


def test_unreadable_images_listed_and_stop(tmp_path, image_tree, resnet18_checkpoints):
    broken = [image_tree["root"] / "dog" / "dog_3.png", image_tree["root"] / "fox" / "fox_1.png"]
    broken[0].write_bytes(b"not an image")
    broken[1].write_bytes(broken[1].read_bytes()[:60])
    result = CliRunner().invoke(stage_app(), folder_args(image_tree, tmp_path, resnet18_checkpoints))
    assert result.exit_code == 1
    assert "2 of 15 images cannot be read" in result.output
    for path in broken:
        assert str(path) in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "animals.h5").exists()


def test_skip_unreadable_records_paths(tmp_path, image_tree, resnet18_checkpoints):
    broken = image_tree["root"] / "cat" / "cat_2.png"
    broken.write_bytes(b"")
    args = folder_args(image_tree, tmp_path, resnet18_checkpoints) + ["--set", "skip_unreadable=true"]
    result = CliRunner().invoke(stage_app(), args)
    assert result.exit_code == 0, result.output
    store = read_store(tmp_path / "out" / "animals.h5")
    assert json.loads(store.attrs["skipped_images"]) == [str(broken)]
    assert store.labels.size == len(CLASSES) * IMAGES_PER_CLASS - 1
    assert str(broken) not in store.image_files
    assert np.sort(np.concatenate(list(store.splits.values()))).tolist() == list(range(store.labels.size))


def test_seen_split_is_seeded_and_per_class(image_tree):
    first = load_image_folder(image_tree["root"], image_tree["unseen"], image_tree["semantics"], 0.4, split_seed=3)
    again = load_image_folder(image_tree["root"], image_tree["unseen"], image_tree["semantics"], 0.4, split_seed=3)
    for name in ("trainval", "test_seen", "test_unseen"):
        assert np.array_equal(first.splits[name], again.splits[name])
    test_seen_labels = first.labels[first.splits["test_seen"]]
    assert np.bincount(test_seen_labels, minlength=3).tolist() == [2, 2, 0]


def test_image_folder_rejects_unknown_unseen_class(image_tree):
    image_tree["unseen"].write_text("wolf\n")
    with pytest.raises(UserError, match="unknown class name.*wolf"):
        load_image_folder(image_tree["root"], image_tree["unseen"], image_tree["semantics"], 0.2, 0)


def test_image_folder_rejects_folder_without_semantics(image_tree):
    write_png(image_tree["root"] / "owl" / "owl_0.png", seed=99)
    with pytest.raises(UserError, match="owl have no row in"):
        load_image_folder(image_tree["root"], image_tree["unseen"], image_tree["semantics"], 0.2, 0)


def test_semantics_csv_without_header(image_tree):
    image_tree["semantics"].write_text("cat,1,0\ndog,1,1\nfox,1,0.5\n")
    source = load_image_folder(image_tree["root"], image_tree["unseen"], image_tree["semantics"], 0.2, 0)
    assert source.class_names == CLASSES
    assert source.attributes.shape == (3, 2)


# ---------------------------------------------------------------- xlsa17


def mat_cells(strings: list[str]) -> np.ndarray:
    cells = np.empty((len(strings), 1), dtype=object)
    for row, text in enumerate(strings):
        cells[row, 0] = np.array([text])
    return cells


def write_xlsa17(folder: Path, names_in_splits_file: list[str]) -> list[str]:
    """Six images, two per class in CLASSES, with labels 1..3 in CLASSES order; returns the recorded paths."""
    folder.mkdir(parents=True, exist_ok=True)
    recorded = [f"/BS/old/data/animals//JPEGImages/{name}/{name}_{n}.png" for name in CLASSES for n in range(2)]
    labels = np.repeat(np.arange(1, 4), 2).reshape(-1, 1)
    scipy.io.savemat(folder / "res101.mat", {"image_files": mat_cells(recorded), "labels": labels, "features": np.zeros((4, 6))})
    attributes = np.array([[float(CLASSES.index(name)), 1.0] for name in names_in_splits_file]).T
    scipy.io.savemat(
        folder / "att_splits.mat",
        {
            "allclasses_names": mat_cells(names_in_splits_file),
            "att": attributes / np.linalg.norm(attributes, axis=0),
            "original_att": attributes,
            "trainval_loc": np.array([[1], [3]]),
            "test_seen_loc": np.array([[2], [4]]),
            "test_unseen_loc": np.array([[5], [6]]),
        },
    )
    return recorded


def test_xlsa17_remaps_paths_and_reads_splits(tmp_path):
    recorded = write_xlsa17(tmp_path / "xlsa17" / "ANIMALS", CLASSES)
    image_root = tmp_path / "images" / "animals"
    source = load_xlsa17(tmp_path / "xlsa17" / "ANIMALS", image_root)
    assert source.dataset == "ANIMALS"
    assert source.paths[0] == image_root / "JPEGImages" / "cat" / "cat_0.png"
    assert source.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert source.splits["trainval"].tolist() == [0, 2]
    assert source.splits["test_unseen"].tolist() == [4, 5]
    assert source.attributes[:, 0].tolist() == [0.0, 1.0, 2.0]  # original_att, not the normalised att
    assert len(recorded) == 6


def test_xlsa17_realigns_labels_by_folder(tmp_path):
    shuffled = ["dog", "fox", "cat"]
    write_xlsa17(tmp_path / "AWA", shuffled)
    source = load_xlsa17(tmp_path / "AWA", tmp_path / "animals")
    names = [source.class_names[label] for label in source.labels]
    assert names == ["cat", "cat", "dog", "dog", "fox", "fox"]
    assert source.attributes[source.labels[0], 0] == 0.0  # the cat column of original_att


def test_xlsa17_strip_prefix(tmp_path):
    write_xlsa17(tmp_path / "AWA", CLASSES)
    source = load_xlsa17(tmp_path / "AWA", tmp_path / "imgs", strip_prefix="/BS/old/data/animals/")
    assert source.paths[1] == tmp_path / "imgs" / "JPEGImages" / "cat" / "cat_1.png"


def test_remap_without_dataset_folder_is_rejected():
    with pytest.raises(UserError, match="contains no folder named 'CUB'"):
        remap_image_path("/BS/data/AWA2/x.jpg", Path("/data/CUB"))


def test_xlsa17_missing_key_is_named(tmp_path):
    write_xlsa17(tmp_path / "AWA", CLASSES)
    contents = scipy.io.loadmat(tmp_path / "AWA" / "att_splits.mat")
    del contents["test_unseen_loc"]
    scipy.io.savemat(tmp_path / "AWA" / "att_splits.mat", {k: v for k, v in contents.items() if not k.startswith("__")})
    with pytest.raises(UserError, match="att_splits.mat: missing variable 'test_unseen_loc'"):
        load_xlsa17(tmp_path / "AWA", tmp_path / "animals")


def test_xlsa17_stage_runs_on_remapped_images(tmp_path):
    write_xlsa17(tmp_path / "xlsa17" / "AWA", CLASSES)
    image_root = tmp_path / "animals"
    for class_id, name in enumerate(CLASSES):
        for number in range(2):
            write_png(image_root / "JPEGImages" / name / f"{name}_{number}.png", seed=class_id * 2 + number)
    out = tmp_path / "awa.h5"
    args = [
        "--source", "xlsa17", "--input", str(tmp_path / "xlsa17" / "AWA"), "--image-root", str(image_root),
        "--out", str(out), "--models-dir", str(tmp_path / "models"), "--params", str(tmp_path / "none.yaml"),
    ]
    (tmp_path / "none.yaml").write_text("{}\n")
    settings = ["device=cpu", "architecture=small_resnet", "feature_dim=8", "image_size=12", "resize_size=12",
                "ce.init=random", "sc.init=random", "ce.epochs=1", "sc.epochs=1", "ce.batch_size=2", "sc.batch_size=2"]
    result = CliRunner().invoke(stage_app(), args + [item for setting in settings for item in ("--set", setting)])
    assert result.exit_code == 0, result.output
    store = read_store(out)
    assert store.features_ce.shape == (6, 8)
    assert store.image_files[5] == str(image_root / "JPEGImages" / "fox" / "fox_1.png")
    assert store.provenance_ce["input_channels"] == 3


# ---------------------------------------------------------------- image arrays


def write_arrays(folder: Path, meta_changes: dict | None = None, images: np.ndarray | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.array([0, 0, 1, 1, 2, 2], dtype=np.int64)
    np.save(folder / "images.npy", images if images is not None else np.full((6, 4, 4), 2.0, dtype=np.float32))
    np.save(folder / "labels.npy", labels)
    meta = {
        "format": "zerodiff-image-arrays", "format_version": 1, "dataset": "tiny", "class_names": ["a", "b", "c"],
        "attribute_names": ["x"], "attributes": [[0.0], [1.0], [2.0]], "pixel_max": 4.0,
        "splits": {"trainval": [0, 2], "test_seen": [1, 3], "test_unseen": [4, 5]},
    }
    meta.update(meta_changes or {})
    (folder / "dataset.json").write_text(json.dumps(meta))
    return folder


def test_image_arrays_scaled_by_pixel_max(tmp_path):
    source = load_image_arrays(write_arrays(tmp_path / "tiny"))
    assert source.arrays.shape == (6, 4, 4)
    assert np.all(source.arrays == 0.5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "other"}, "key 'format' must be 'zerodiff-image-arrays'"),
        ({"format_version": 2}, "format_version is 2"),
        ({"splits": {"trainval": [0, 4], "test_seen": [1], "test_unseen": [4, 5]}}, "overlap at indices 4"),
        ({"attributes": [[0.0], [1.0]]}, "expected \\[3, A\\]"),
    ],
)
def test_image_arrays_bad_metadata(tmp_path, changes, message):
    folder = write_arrays(tmp_path / "tiny", changes)
    with pytest.raises(UserError, match=message):
        load_image_arrays(folder)


def test_image_arrays_pixels_out_of_range(tmp_path):
    images = np.full((6, 4, 4), 2.0, dtype=np.float32)
    images[3, 0, 0] = 5.0
    with pytest.raises(UserError, match="outside \\[0, 4.0\\].*sample\\(s\\) 3"):
        load_image_arrays(write_arrays(tmp_path / "tiny", images=images))
