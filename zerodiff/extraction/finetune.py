"""Fine-tuning of the two extractors on seen-class training images (ZeroDiff Alg. 1).

F_ce learns with cross-entropy through a linear classifier over the seen
classes. F_sc learns with the supervised contrastive loss through a projection
head, on two augmented views of every image. Unseen-class images never enter
fine-tuning: :func:`finetune_indices` rejects them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as nn_functional
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from zerodiff.errors import UserError
from zerodiff.extraction.config import ExtractConfig, ExtractorConfig
from zerodiff.extraction.images import ImageDataset, ImageTransform
from zerodiff.extraction.sources import ImageSource
from zerodiff.extraction.supcon import supervised_contrastive_loss
from zerodiff.subset import sample_subset

log = logging.getLogger("zerodiff.extraction")

ExtractorKind = Literal["ce", "sc"]
SC_VIEWS = 2  # augmented views per image in a SupCon batch


def finetune_indices(source: ImageSource, config: ExtractConfig) -> np.ndarray:
    """Return the sorted sample indices that fine-tune the extractors.

    ``finetune_on: trainval`` uses every trainval sample; ``subset`` uses
    exactly ``sample_subset(labels, trainval, subset_ratio, subset_seed)``, the
    samples that the subset stage keeps with the same ratio and seed.
    """
    trainval = source.splits["trainval"]
    if config.finetune_on == "subset":
        indices = sample_subset(source.labels, trainval, config.subset_ratio, config.subset_seed)
    else:
        indices = np.sort(trainval)
    leaked = np.intersect1d(np.unique(source.labels[indices]), source.unseen_classes)
    if leaked.size:
        names = ", ".join(source.class_names[i] for i in leaked[:5])
        raise UserError(f"{source.location}: unseen class(es) {names} occur in the fine-tuning images; fix the splits")
    if indices.size < 2:
        raise UserError(f"{source.location}: fine-tuning needs at least 2 seen-class training images, got {indices.size}")
    return indices


@dataclass
class FinetuneResult:
    """A fine-tuned backbone, its training head, and the mean loss of each epoch."""

    network: nn.Module
    head: nn.Module
    classes: np.ndarray
    epoch_losses: list[float] = field(default_factory=list)


def build_head(kind: ExtractorKind, in_features: int, num_classes: int, projection_dim: int) -> nn.Module:
    """Return the training head: a linear classifier (CE) or a two-layer projection MLP (SC)."""
    if kind == "ce":
        return nn.Linear(in_features, num_classes)
    return nn.Sequential(nn.Linear(in_features, in_features), nn.ReLU(inplace=True), nn.Linear(in_features, projection_dim))


def finetune_extractor(
    kind: ExtractorKind,
    network: nn.Module,
    out_features: int,
    source: ImageSource,
    indices: np.ndarray,
    transform: ImageTransform,
    settings: ExtractorConfig,
    *,
    seed: int,
    num_workers: int,
    device: torch.device,
) -> FinetuneResult:
    """Fine-tune ``network`` on the samples ``indices`` and return it with its head.

    The head is initialised from ``seed``, batches are shuffled by a generator
    seeded with ``seed``, and augmentations are drawn per sample from ``seed``
    (see :func:`zerodiff.extraction.images.augmentation_generator`).
    Raises :class:`UserError` on the first non-finite loss.
    """
    classes = np.unique(source.labels[indices])
    torch.manual_seed(seed)
    head = build_head(kind, out_features, classes.size, settings.projection_dim)
    network.to(device)
    head.to(device)
    result = FinetuneResult(network=network, head=head, classes=classes)
    if settings.epochs == 0:
        return result

    target_of_class = torch.full((int(source.labels.max()) + 1,), -1, dtype=torch.long)
    target_of_class[torch.from_numpy(classes)] = torch.arange(classes.size)
    views = 1 if kind == "ce" else SC_VIEWS
    dataset = ImageDataset(source, indices, transform, train=True, views=views, seed=seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    # A last batch of one image would break BatchNorm's training statistics.
    loader = DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=generator,
        drop_last=len(dataset) % settings.batch_size == 1,
        num_workers=num_workers,
    )
    parameters = list(network.parameters()) + list(head.parameters())
    optimizer = _build_optimizer(settings, parameters)
    total_steps = settings.epochs * len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(settings.lr_schedule, step, total_steps))

    network.train()
    head.train()
    step = 0
    progress = tqdm(total=total_steps, desc=f"fine-tune F_{kind}", unit="step", leave=False)
    for epoch in range(settings.epochs):
        dataset.set_epoch(epoch)
        total, count = 0.0, 0
        for images, labels, _ in loader:
            images = images.flatten(0, 1).to(device)  # [B * views, C, H, W]
            targets = target_of_class[labels].repeat_interleave(views).to(device)
            outputs = head(network(images))
            if kind == "ce":
                loss = nn_functional.cross_entropy(outputs, targets)
            else:
                loss = supervised_contrastive_loss(outputs, targets, settings.temperature)
            if not torch.isfinite(loss):
                term = "cross-entropy" if kind == "ce" else "supervised contrastive"
                raise UserError(
                    f"F_{kind} fine-tuning: the {term} loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                    f"lower extract.{kind}.lr (now {settings.lr})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            progress.update()
            total += loss.item() * labels.shape[0]
            count += labels.shape[0]
        result.epoch_losses.append(total / max(count, 1))
        progress.set_postfix(epoch=epoch + 1, loss=f"{result.epoch_losses[-1]:.4f}")
    progress.close()
    log.info("fine-tuned F_%s for %d epochs on %d images of %d seen classes; loss %.4f -> %.4f",
             kind, settings.epochs, indices.size, classes.size, result.epoch_losses[0], result.epoch_losses[-1])
    return result


def _build_optimizer(settings: ExtractorConfig, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
    if settings.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(parameters, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)


def _lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Return the learning-rate multiplier after ``step`` optimiser steps (cosine decays to zero)."""
    if schedule == "constant" or total_steps == 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
