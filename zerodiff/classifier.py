"""The final zero-shot classifier: a linear softmax layer trained with Adam.

Generative ZSL judges the generator by the classifier it makes possible: a
single linear layer with softmax (cross-entropy) loss, trained from scratch on
real seen and synthetic unseen features. Defaults follow the ZeroDiff
evaluation: Adam with lr 1e-3 and betas (0.5, 0.999), 25 epochs, and a batch
size equal to the number of synthetic samples per class.

Training is seeded: weight initialisation and the per-epoch shuffling draw from
one ``torch.Generator``, so on the CPU the same seed and inputs give
bit-identical weights and predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional
from tqdm import tqdm

ADAM_BETA2 = 0.999
INIT_WEIGHT_STD = 0.02  # normal(0, 0.02) weights and zero bias, as in the f-VAEGAN family
PREDICT_BATCH_SIZE = 4096  # rows per forward pass when predicting; affects memory only


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of the linear softmax classifier.

    ``batch_size`` None means "the number of synthetic samples per class",
    which the caller resolves from the synthetic-feature file.
    """

    lr: float = 1e-3
    beta1: float = 0.5
    epochs: int = 25
    batch_size: int | None = None


@dataclass
class ClassifierRun:
    """A trained classifier and its predictions, as class indices in [0, num_classes).

    ``predictions`` maps each named evaluation set to its predictions after the
    final epoch. ``epoch_predictions`` maps it to one array per epoch (index 0
    is epoch 1) and is empty unless ``record_epochs`` was requested.
    """

    layer: torch.nn.Linear
    predictions: dict[str, np.ndarray]
    epoch_predictions: dict[str, list[np.ndarray]] = field(default_factory=dict)


def train_linear_classifier(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    config: ClassifierConfig,
    batch_size: int,
    seed: int,
    device: torch.device,
    eval_sets: Mapping[str, np.ndarray] | None = None,
    record_epochs: bool = False,
) -> ClassifierRun:
    """Train a linear softmax classifier on ``features`` [n, d] with ``labels`` [n] in [0, num_classes).

    ``batch_size`` overrides ``config.batch_size`` (the caller resolves None).
    Each epoch visits every training sample once in a fresh seeded order, the
    last batch possibly smaller. ``eval_sets`` are feature matrices [m, d] to
    predict after training and, with ``record_epochs``, after every epoch.
    """
    _check_inputs(features, labels, num_classes, batch_size, config.epochs)
    eval_sets = dict(eval_sets or {})
    for name, matrix in eval_sets.items():
        if matrix.ndim != 2 or matrix.shape[1] != features.shape[1]:
            raise ValueError(f"evaluation set {name!r} has shape {matrix.shape}, expected [m, {features.shape[1]}]")

    generator = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(features.shape[1], num_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * INIT_WEIGHT_STD)
        layer.bias.zero_()
    layer.to(device)
    optimizer = torch.optim.Adam(layer.parameters(), lr=config.lr, betas=(config.beta1, ADAM_BETA2))

    inputs = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(device)
    targets = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)).to(device)
    epoch_predictions: dict[str, list[np.ndarray]] = {name: [] for name in eval_sets} if record_epochs else {}
    for _ in tqdm(range(config.epochs), desc="classifier", unit="epoch", leave=False, disable=None):
        layer.train()
        order = torch.randperm(inputs.shape[0], generator=generator).to(device)
        for start in range(0, inputs.shape[0], batch_size):
            batch = order[start : start + batch_size]
            loss = functional.cross_entropy(layer(inputs[batch]), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if record_epochs:
            for name, matrix in eval_sets.items():
                epoch_predictions[name].append(predict(layer, matrix, device))

    predictions = {name: predict(layer, matrix, device) for name, matrix in eval_sets.items()}
    return ClassifierRun(layer=layer, predictions=predictions, epoch_predictions=epoch_predictions)


@torch.no_grad()
def predict(layer: torch.nn.Linear, features: np.ndarray, device: torch.device) -> np.ndarray:
    """Return the arg-max class index (int64 [m]) of ``layer`` for each row of ``features`` [m, d]."""
    layer.eval()
    outputs = []
    for start in range(0, features.shape[0], PREDICT_BATCH_SIZE):
        chunk = torch.from_numpy(np.ascontiguousarray(features[start : start + PREDICT_BATCH_SIZE], dtype=np.float32))
        outputs.append(layer(chunk.to(device)).argmax(dim=1).cpu().numpy())
    if not outputs:
        return np.empty(0, dtype=np.int64)
    return np.concatenate(outputs).astype(np.int64)


def _check_inputs(features: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int, epochs: int) -> None:
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"expected non-empty training features [n, d], got shape {features.shape}")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels have shape {labels.shape}, expected [{features.shape[0]}]")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]")
    if not np.isfinite(features).all():
        raise ValueError("training features contain NaN or Inf")
    if batch_size < 1 or epochs < 1:
        raise ValueError(f"batch_size and epochs must be at least 1, got {batch_size} and {epochs}")
