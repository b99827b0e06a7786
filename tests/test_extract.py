"""Tests of the extract stage: loss, checkpoints, fine-tuning data, determinism, digits end to end."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from zerodiff.errors import UserError
from zerodiff.extraction import ExtractConfig, ExtractorConfig, load_image_arrays, run_extraction
from zerodiff.extraction.backbones import build_backbone, load_backbone_checkpoint
from zerodiff.extraction.config import check_config
from zerodiff.extraction.extract import build_transform, compute_features, top1_accuracies
from zerodiff.extraction.finetune import finetune_extractor, finetune_indices
from zerodiff.extraction.images import ImageDataset
from zerodiff.extraction.supcon import supervised_contrastive_loss
from zerodiff.store import read_store
from zerodiff.subset import sample_subset

REPO = Path(__file__).resolve().parents[1]

# Seven-segment codes (a b c d e f g) of the digits 0-9.
SEGMENTS = [
    [1, 1, 1, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0, 0], [1, 1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 0, 0, 1], [0, 1, 1, 0, 0, 1, 1],
    [1, 0, 1, 1, 0, 1, 1], [1, 0, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 1, 1],
]
UNSEEN_DIGITS = (2, 6, 9)

# The digits defaults proposed for params.yaml; the slow end-to-end test runs them unchanged.
DIGITS_PARAMS = {
    "device": "auto",
    "seed": 0,
    "architecture": "auto",
    "feature_dim": 64,
    "finetune_on": "trainval",
    "augment": {"shift": 1},
    "ce": {"init": "random", "epochs": 15, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "weight_decay": 0.0005},
    "sc": {
        "init": "random", "epochs": 15, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "weight_decay": 0.0005,
        "temperature": 0.1, "projection_dim": 32,
    },
}


def write_digits_folder(folder: Path, per_class: int | None = None) -> Path:
    """Write the image-arrays folder that ``prepare-digits`` produces, optionally keeping ``per_class`` images per digit."""
    digits = load_digits()
    images, labels = digits.images.astype(np.float32), digits.target.astype(np.int64)
    if per_class is not None:
        keep = np.sort(np.concatenate([np.flatnonzero(labels == digit)[:per_class] for digit in range(10)]))
        images, labels = images[keep], labels[keep]
    splits = {"trainval": [], "test_seen": [], "test_unseen": []}
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        if digit in UNSEEN_DIGITS:
            splits["test_unseen"] += members.tolist()
            continue
        order = members[np.random.default_rng([0, digit]).permutation(members.size)]
        test_count = round(0.2 * members.size)
        splits["test_seen"] += order[:test_count].tolist()
        splits["trainval"] += order[test_count:].tolist()
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "images.npy", images)
    np.save(folder / "labels.npy", labels)
    meta = {
        "format": "zerodiff-image-arrays",
        "format_version": 1,
        "dataset": "digits",
        "class_names": [str(digit) for digit in range(10)],
        "attribute_names": list("abcdefg"),
        "attributes": SEGMENTS,
        "pixel_max": 16.0,
        "splits": {name: sorted(indices) for name, indices in splits.items()},
    }
    (folder / "dataset.json").write_text(json.dumps(meta))
    return folder


def shrunk_config(epochs: int = 1, **changes) -> ExtractConfig:
    """Digits configuration with few epochs, for fast tests."""
    extractor = ExtractorConfig(init="random", epochs=epochs, batch_size=64, lr=0.05, projection_dim=16)
    return dataclasses.replace(ExtractConfig(device="cpu", feature_dim=16, ce=extractor, sc=extractor), **changes)


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory) -> Path:
    return write_digits_folder(tmp_path_factory.mktemp("digits") / "digits", per_class=30)


# ---------------------------------------------------------------- supervised contrastive loss


def reference_supcon(embeddings: np.ndarray, labels: list[int], temperature: float) -> float:
    """Khosla et al. L_out written out anchor by anchor, in float64."""
    z = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    losses = []
    for i in range(len(labels)):
        others = [a for a in range(len(labels)) if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(z[i] @ z[a] / temperature) for a in others)
        terms = [math.log(math.exp(z[i] @ z[p] / temperature) / denominator) for p in positives]
        losses.append(-sum(terms) / len(positives))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("labels", [[0, 0, 1, 1, 1, 2], [3, 3, 3, 3], [0, 1, 0, 2, 1, 0, 4]])
def test_supcon_matches_direct_computation(labels):
    embeddings = np.random.default_rng(len(labels)).normal(size=(len(labels), 5))
    loss = supervised_contrastive_loss(torch.tensor(embeddings), torch.tensor(labels), temperature=0.5)
    assert loss.item() == pytest.approx(reference_supcon(embeddings, labels, 0.5), rel=1e-10)


def test_supcon_without_positives_is_zero():
    embeddings = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    loss = supervised_contrastive_loss(embeddings, torch.tensor([0, 1, 2, 3]), temperature=0.1)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


def test_supcon_singleton_class_matches_reference():
    # A sample whose class occurs once is a negative for the others and no anchor of its own.
    embeddings = np.random.default_rng(1).normal(size=(5, 4))
    labels = [0, 0, 1, 1, 7]
    loss = supervised_contrastive_loss(torch.tensor(embeddings), torch.tensor(labels), temperature=0.2)
    assert loss.item() == pytest.approx(reference_supcon(embeddings, labels, 0.2), rel=1e-10)
    assert torch.isfinite(loss)


# ---------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def resnet101_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    network, _ = build_backbone("resnet101", 3, 0)
    return network.state_dict()


def paco_checkpoint(state: dict[str, torch.Tensor]) -> dict:
    """A checkpoint laid out like PaCo's: wrapped, prefixed, with a projection head, momentum encoder and queue."""
    wrapped = {f"module.encoder_q.{key}": value for key, value in state.items()}
    wrapped["module.encoder_q.fc.0.weight"] = torch.randn(2048, 2048)
    wrapped["module.encoder_q.fc.2.weight"] = torch.randn(128, 2048)
    wrapped["module.encoder_k.conv1.weight"] = torch.randn(64, 3, 7, 7)
    wrapped["module.queue"] = torch.randn(128, 16)
    wrapped["module.linear.weight"] = torch.randn(1000, 2048)
    return {"state_dict": wrapped, "epoch": 400}


def test_paco_checkpoint_loads_into_resnet101(tmp_path, resnet101_state):
    path = tmp_path / "paco.pth.tar"
    torch.save(paco_checkpoint(resnet101_state), path)
    torch.manual_seed(99)
    network, out_features = build_backbone("resnet101", 3, 0)
    info = load_backbone_checkpoint(network, path)
    assert out_features == 2048
    assert info["checkpoint_prefix"] == "module.encoder_q."
    assert info["checkpoint_dropped_keys"] == 2
    assert info["checkpoint_ignored_keys"] == 3
    loaded = network.state_dict()
    for key, value in resnet101_state.items():
        assert torch.equal(loaded[key], value), key


def test_torchvision_state_dict_drops_classifier(tmp_path, resnet101_state):
    state = dict(resnet101_state, **{"fc.weight": torch.randn(1000, 2048), "fc.bias": torch.randn(1000)})
    path = tmp_path / "resnet101.pth"
    torch.save(state, path)
    network, _ = build_backbone("resnet101", 3, 0)
    info = load_backbone_checkpoint(network, path)
    assert info["checkpoint_prefix"] == ""
    assert torch.equal(network.state_dict()["layer4.2.conv3.weight"], resnet101_state["layer4.2.conv3.weight"])


def test_mismatched_paco_checkpoint_names_keys(tmp_path, resnet101_state):
    checkpoint = paco_checkpoint(resnet101_state)
    del checkpoint["state_dict"]["module.encoder_q.layer3.5.bn2.weight"]
    checkpoint["state_dict"]["module.encoder_q.layer5.0.conv1.weight"] = torch.randn(3, 3)
    path = tmp_path / "broken.pth.tar"
    torch.save(checkpoint, path)
    network, _ = build_backbone("resnet101", 3, 0)
    with pytest.raises(UserError) as error:
        load_backbone_checkpoint(network, path)
    message = str(error.value)
    assert "missing keys: layer3.5.bn2.weight" in message
    assert "unexpected keys: layer5.0.conv1.weight" in message
    assert str(path) in message


def test_wrong_shape_checkpoint_is_rejected(tmp_path):
    narrow, _ = build_backbone("small_resnet", 1, 32)
    path = tmp_path / "narrow.pt"
    torch.save(narrow.state_dict(), path)
    wide, _ = build_backbone("small_resnet", 1, 64)
    with pytest.raises(UserError, match=r"shape mismatches: .*conv1.weight \(checkpoint \(16, 1, 3, 3\), network \(32, 1, 3, 3\)\)"):
        load_backbone_checkpoint(wide, path)


def test_wrong_shape_checkpoint_stops_stage(tmp_path, small_digits):
    from typer.testing import CliRunner

    narrow, _ = build_backbone("small_resnet", 1, 8)
    torch.save(narrow.state_dict(), tmp_path / "ce.pt")
    out = tmp_path / "features.h5"
    args = [
        "--source", "image-arrays", "--input", str(small_digits), "--out", str(out), "--models-dir", str(tmp_path / "models"),
        "--params", str(tmp_path / "missing-is-fine.yaml"),
    ]
    overrides = ["--set", "device=cpu", "--set", "feature_dim=16", "--set", f"ce.checkpoint={tmp_path / 'ce.pt'}", "--set", "sc.init=random"]
    (tmp_path / "missing-is-fine.yaml").write_text("extract: {}\n")
    result = CliRunner().invoke(_stage_app(), args + overrides)
    assert result.exit_code == 1
    assert "shape mismatches" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not (tmp_path / "models" / "ce.pt").exists()


def test_checkpoint_init_without_file_is_rejected():
    with pytest.raises(UserError, match="ce.checkpoint is not set"):
        check_config(ExtractConfig())


def _stage_app():
    import typer

    from stages.extract import main

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(main)
    return app


# ---------------------------------------------------------------- fine-tuning data


@pytest.mark.parametrize("kind", ["ce", "sc"])
@pytest.mark.parametrize("finetune_on", ["trainval", "subset"])
def test_finetuning_draws_only_seen_training_images(monkeypatch, small_digits, kind, finetune_on):
    source = load_image_arrays(small_digits)
    config = shrunk_config(epochs=2, finetune_on=finetune_on, subset_ratio=0.3, subset_seed=5)
    drawn = []
    original_load = ImageDataset.load

    def recording_load(self, index, generator):
        drawn.append(index)
        return original_load(self, index, generator)

    monkeypatch.setattr(ImageDataset, "load", recording_load)
    indices = finetune_indices(source, config)
    network, width = build_backbone("small_resnet", 1, config.feature_dim)
    transform = build_transform("small_resnet", source, config)
    finetune_extractor(kind, network, width, source, indices, transform, config.ce, seed=0, num_workers=0, device=torch.device("cpu"))

    drawn = np.array(drawn)
    expected = source.splits["trainval"] if finetune_on == "trainval" else sample_subset(source.labels, source.splits["trainval"], 0.3, 5)
    assert np.array_equal(np.unique(drawn), np.sort(expected))
    assert not np.isin(source.labels[drawn], UNSEEN_DIGITS).any()
    assert not np.isin(drawn, source.splits["test_seen"]).any()
    views = 1 if kind == "ce" else 2
    assert drawn.size == 2 * views * expected.size


def test_unseen_sample_in_trainval_is_rejected(small_digits):
    source = load_image_arrays(small_digits)
    unseen_sample = source.splits["test_unseen"][:1]
    source.splits["trainval"] = np.concatenate([source.splits["trainval"], unseen_sample])
    source.splits["test_unseen"] = source.splits["test_unseen"][1:]
    with pytest.raises(UserError, match="unseen class"):
        finetune_indices(source, shrunk_config())


# ---------------------------------------------------------------- extraction


def test_extracting_twice_gives_identical_vectors(small_digits):
    source = load_image_arrays(small_digits)
    config = shrunk_config()
    torch.manual_seed(0)
    network, _ = build_backbone("small_resnet", 1, 16)
    transform = build_transform("small_resnet", source, config)
    everything = np.arange(source.num_samples)
    kwargs = {"batch_size": 7, "num_workers": 0, "device": torch.device("cpu"), "description": "test"}
    first = compute_features(network, source, everything, transform, **kwargs)
    second = compute_features(network, source, everything[::-1].copy(), transform, **kwargs)[::-1]
    assert first.shape == (source.num_samples, 16)
    assert np.array_equal(first, second)


def test_same_seed_gives_identical_store(tmp_path, small_digits):
    from zerodiff.extraction import save_extractor

    source = load_image_arrays(small_digits)
    first = run_extraction(source, shrunk_config(epochs=2))
    second = run_extraction(source, shrunk_config(epochs=2))
    other_seed = run_extraction(source, shrunk_config(epochs=2, seed=1))
    assert np.array_equal(first.store.features_ce, second.store.features_ce)
    assert np.array_equal(first.store.features_sc, second.store.features_sc)
    assert first.store.provenance_ce == second.store.provenance_ce
    assert not np.array_equal(first.store.features_ce, other_seed.store.features_ce)
    save_extractor(tmp_path / "first.pt", first.extractors["sc"])
    save_extractor(tmp_path / "second.pt", second.extractors["sc"])
    assert (tmp_path / "first.pt").read_bytes() == (tmp_path / "second.pt").read_bytes()


def test_top1_accuracies_against_counting():
    predicted = np.array([1, 1, 2, 2, 2, 3])
    actual = np.array([1, 2, 2, 2, 3, 3])
    overall, per_class = top1_accuracies(predicted, actual)
    assert overall == pytest.approx(100 * 4 / 6)
    assert per_class == pytest.approx(100 * (1 / 1 + 2 / 3 + 1 / 2) / 3)


def test_shrunk_digits_store_is_valid(tmp_path, small_digits):
    from zerodiff.extraction import save_extractor
    from zerodiff.store import write_store

    source = load_image_arrays(small_digits)
    result = run_extraction(source, shrunk_config(epochs=1, finetune_on="subset", subset_ratio=0.5))
    write_store(tmp_path / "digits.h5", result.store)
    save_extractor(tmp_path / "ce.pt", result.extractors["ce"])
    store = read_store(tmp_path / "digits.h5")
    assert store.features_ce.shape == (300, 16)
    assert store.features_sc.shape == (300, 16)
    assert store.provenance_ce["checkpoint"] == "random"
    assert store.provenance_ce["finetune"]["finetune_on"] == "subset"
    assert store.provenance_ce["finetune"]["num_images"] == sample_subset(source.labels, source.splits["trainval"], 0.5, 0).size
    assert store.provenance_sc["finetune"]["loss"] == "supervised_contrastive"
    assert 0.0 <= store.provenance_ce["test_seen_accuracy"] <= 100.0
    saved = torch.load(tmp_path / "ce.pt", weights_only=True)
    network, _ = build_backbone("small_resnet", 1, 16)
    network.load_state_dict(saved["backbone_state_dict"])
    transform = build_transform("small_resnet", source, shrunk_config())
    again = compute_features(
        network, source, np.arange(source.num_samples), transform,
        batch_size=64, num_workers=0, device=torch.device("cpu"), description="test",
    )
    assert np.array_equal(again, store.features_ce)


@pytest.mark.slow
def test_digits_default_end_to_end(tmp_path):
    """Run the proposed digits defaults through ``python -m stages.extract``."""
    import yaml
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    digits = write_digits_folder(tmp_path / "digits")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"extract": DIGITS_PARAMS}))
    out = tmp_path / "features" / "digits.h5"
    command = [
        sys.executable, "-m", "stages.extract", "--source", "image-arrays", "--input", str(digits),
        "--out", str(out), "--models-dir", str(tmp_path / "models"), "--params", str(params),
    ]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]

    store = read_store(out)
    assert store.features_ce.shape == (1797, 64)
    assert store.features_sc.shape == (1797, 64)
    assert (tmp_path / "models" / "ce.pt").is_file()
    assert (tmp_path / "models" / "sc.pt").is_file()
    assert store.provenance_ce["test_seen_accuracy"] > 90.0
    unseen = store.splits["test_unseen"]
    for features in (store.features_ce, store.features_sc):
        accuracy = cross_val_score(LogisticRegression(max_iter=2000), features[unseen] / features.max(), store.labels[unseen], cv=5)
        assert accuracy.mean() > 0.85
