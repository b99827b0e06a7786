"""The linear softmax classifier: learns separable data, is deterministic, records epochs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zerodiff.classifier import ClassifierConfig, predict, train_linear_classifier

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def single_thread():
    """Run torch on one thread: these tiny problems are slower with more, above all on busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def separable_data(num_classes: int = 4, per_class: int = 30, dims: int = 8, seed: int = 0):
    """Gaussian blobs around well-separated one-hot centres, like min-max scaled features."""
    rng = np.random.default_rng(seed)
    centres = np.eye(num_classes, dims, dtype=np.float32)
    labels = np.repeat(np.arange(num_classes), per_class)
    features = centres[labels] + rng.normal(0.0, 0.05, size=(labels.size, dims)).astype(np.float32)
    return features, labels


def train(features, labels, num_classes, **kwargs):
    options = {"config": ClassifierConfig(), "batch_size": 30, "seed": 3, "device": CPU}
    options.update(kwargs)
    return train_linear_classifier(features, labels, num_classes, **options)


def test_separable_features_reach_full_accuracy():
    features, labels = separable_data()
    test_features, test_labels = separable_data(seed=1)
    run = train(features, labels, 4, eval_sets={"test": test_features})
    assert np.array_equal(run.predictions["test"], test_labels)


def test_same_seed_gives_identical_weights():
    features, labels = separable_data()
    first = train(features, labels, 4)
    second = train(features, labels, 4)
    assert torch.equal(first.layer.weight, second.layer.weight)
    assert torch.equal(first.layer.bias, second.layer.bias)


def test_other_seed_gives_other_weights():
    features, labels = separable_data()
    first = train(features, labels, 4, seed=3)
    second = train(features, labels, 4, seed=4)
    assert not torch.equal(first.layer.weight, second.layer.weight)


def test_epoch_predictions_recorded_per_epoch():
    features, labels = separable_data()
    config = ClassifierConfig(epochs=3)
    run = train(features, labels, 4, config=config, eval_sets={"a": features, "b": features[:5]}, record_epochs=True)
    assert len(run.epoch_predictions["a"]) == 3
    assert len(run.epoch_predictions["b"]) == 3
    assert run.epoch_predictions["b"][0].shape == (5,)
    assert np.array_equal(run.epoch_predictions["a"][-1], run.predictions["a"])


def test_epoch_predictions_empty_unless_requested():
    features, labels = separable_data()
    run = train(features, labels, 4, eval_sets={"a": features})
    assert run.epoch_predictions == {}


def test_recording_epochs_does_not_change_training():
    features, labels = separable_data()
    plain = train(features, labels, 4, eval_sets={"a": features})
    recorded = train(features, labels, 4, eval_sets={"a": features}, record_epochs=True)
    assert torch.equal(plain.layer.weight, recorded.layer.weight)


def test_epochs_are_all_run():
    features, labels = separable_data()
    one_epoch = train(features, labels, 4, config=ClassifierConfig(epochs=1))
    two_epochs = train(features, labels, 4, config=ClassifierConfig(epochs=2))
    assert not torch.equal(one_epoch.layer.weight, two_epochs.layer.weight)


def test_batch_size_changes_training():
    features, labels = separable_data()
    small = train(features, labels, 4, batch_size=7)
    large = train(features, labels, 4, batch_size=120)
    assert not torch.equal(small.layer.weight, large.layer.weight)


def test_class_without_samples_not_predicted():
    # Class 4 has no training samples; its bias is pushed down, so separable data never lands there.
    features, labels = separable_data(num_classes=4, dims=8)
    run = train(features, labels, 5, eval_sets={"train": features})
    assert np.array_equal(run.predictions["train"], labels)


def test_predict_returns_argmax():
    layer = torch.nn.Linear(2, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        layer.bias.zero_()
    features = np.array([[2.0, 1.0], [0.0, 3.0], [-1.0, -2.0]], dtype=np.float32)
    assert predict(layer, features, CPU).tolist() == [0, 1, 2]
    assert predict(layer, features[:0], CPU).shape == (0,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": np.array([0, 1, 9])}, "labels"),
        ({"features": np.array([[np.nan, 0.0]] * 3, dtype=np.float32)}, "NaN"),
        ({"batch_size": 0}, "at least 1"),
        ({"features": np.zeros((0, 2), dtype=np.float32), "labels": np.zeros(0, dtype=np.int64)}, "non-empty"),
    ],
)
def test_invalid_inputs_raise(change, message):
    arguments = {"features": np.zeros((3, 2), dtype=np.float32), "labels": np.array([0, 1, 2]), "batch_size": 2}
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        train(arguments.pop("features"), arguments.pop("labels"), 3, **arguments)


def test_eval_set_with_wrong_width_raises():
    features, labels = separable_data()
    with pytest.raises(ValueError, match="evaluation set 'test'"):
        train(features, labels, 4, eval_sets={"test": features[:, :3]})
