"""The extract stage's library entry point: images in, a feature store and two extractors out.

:func:`run_extraction` follows ZeroDiff's Alg. 1: check that every image
opens, fine-tune F_ce and F_sc on seen-class training images, freeze both, and
apply them in eval mode with deterministic transforms to every image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from zerodiff.atomic import save_torch
from zerodiff.device import resolve_device
from zerodiff.errors import UserError
from zerodiff.extraction.backbones import build_backbone, load_backbone_checkpoint
from zerodiff.extraction.config import ExtractConfig, check_config
from zerodiff.extraction.finetune import FinetuneResult, finetune_extractor, finetune_indices
from zerodiff.extraction.images import ImageDataset, ImageTransform, find_unreadable
from zerodiff.extraction.sources import ImageSource, check_source
from zerodiff.store import FeatureStore

log = logging.getLogger("zerodiff.extraction")

EXTRACTORS = ("ce", "sc")
_SEED_STREAM = {"ce": 0, "sc": 1}  # independent random streams per extractor


@dataclass
class ExtractionResult:
    """The feature store to write and one saveable checkpoint dict per extractor."""

    store: FeatureStore
    extractors: dict[str, dict[str, Any]]


def resolve_architecture(config: ExtractConfig, source: ImageSource) -> str:
    """Return the backbone name: ``auto`` means small_resnet for arrays, resnet101 for image files."""
    if config.architecture != "auto":
        return config.architecture
    return "small_resnet" if source.arrays is not None else "resnet101"


def build_transform(architecture: str, source: ImageSource, config: ExtractConfig) -> ImageTransform:
    """Return the input transform that fits ``architecture`` and the kind of ``source``."""
    from_arrays = source.arrays is not None
    channels = 1 if (from_arrays and architecture == "small_resnet") else 3
    return ImageTransform(
        channels=channels,
        image_size=config.image_size,
        resize_size=config.resize_size,
        resize_arrays=from_arrays and architecture != "small_resnet",
        augment=config.augment,
    )


def drop_unreadable(source: ImageSource, config: ExtractConfig) -> tuple[ImageSource, list[str]]:
    """Check that every image file opens; stop on failures unless ``skip_unreadable`` is set.

    Returns the source without the unreadable samples and their paths. The
    error lists every unreadable file with the reason and the count.
    """
    if source.paths is None:
        return source, []
    log.info("checking that %d images open", len(source.paths))
    unreadable = find_unreadable(source.paths, config.resize_size)
    if not unreadable:
        return source, []
    listing = "\n".join(f"  {path}: {reason}" for _, path, reason in unreadable)
    if not config.skip_unreadable:
        raise UserError(
            f"{len(unreadable)} of {len(source.paths)} images cannot be read:\n{listing}\n"
            "Fix or remove them, or set extract.skip_unreadable: true to leave them out of the feature store."
        )
    log.warning("skipping %d unreadable images:\n%s", len(unreadable), listing)
    reduced = source.without_samples(np.array([index for index, _, _ in unreadable], dtype=np.int64))
    check_source(reduced, f"{source.location} without its unreadable images")
    return reduced, [str(path) for _, path, _ in unreadable]


def compute_features(
    network: nn.Module,
    source: ImageSource,
    indices: np.ndarray,
    transform: ImageTransform,
    *,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    description: str,
) -> np.ndarray:
    """Apply ``network`` in eval mode, without augmentation, to samples ``indices`` and return float32 [n, D]."""
    network.eval()
    loader = DataLoader(ImageDataset(source, indices, transform), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    parts = []
    with torch.no_grad():
        for images, _, _ in tqdm(loader, desc=description, unit="batch", leave=False):
            parts.append(network(images.to(device)).float().cpu())
    return torch.cat(parts).numpy().astype(np.float32, copy=False)


def top1_accuracies(predicted: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Return (overall top-1, mean over classes of per-class top-1), both in percent.

    >>> top1_accuracies(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]))
    (75.0, 83.33333333333334)
    """
    overall = 100.0 * float(np.mean(predicted == actual))
    per_class = [np.mean(predicted[actual == label] == label) for label in np.unique(actual)]
    return overall, 100.0 * float(np.mean(per_class))


@contextlib.contextmanager
def deterministic_algorithms(device: torch.device) -> Iterator[None]:
    """Require deterministic torch kernels on the CPU (warn only on CUDA) and restore the old setting."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn_only)


def extractor_seed(seed: int, kind: str) -> int:
    """Derive the seed of one extractor's initialisation, shuffling and augmentation."""
    return int(np.random.SeedSequence([seed, _SEED_STREAM[kind]]).generate_state(1)[0])


def run_extraction(source: ImageSource, config: ExtractConfig) -> ExtractionResult:
    """Fine-tune F_ce and F_sc on seen-class training images, then extract both feature sets.

    Returns the feature store with provenance (``write_store`` validates it)
    and, per extractor, a dict for :func:`save_extractor`. Same seed, inputs and CPU
    give bit-identical features.
    """
    check_config(config)
    source, skipped = drop_unreadable(source, config)
    device = resolve_device(config.device)
    architecture = resolve_architecture(config, source)
    transform = build_transform(architecture, source, config)
    indices = finetune_indices(source, config)
    if source.arrays is not None and not transform.resize_arrays:
        input_size = "x".join(map(str, source.arrays.shape[1:]))
    else:
        input_size = f"{config.image_size}x{config.image_size}"
    log.info("extracting %s (%d samples, %d classes) with %s on %s; fine-tuning on %d %s images",
             source.dataset, source.num_samples, len(source.class_names), architecture, device, indices.size, config.finetune_on)

    features: dict[str, np.ndarray] = {}
    provenance: dict[str, dict[str, Any]] = {}
    extractors: dict[str, dict[str, Any]] = {}
    with deterministic_algorithms(device):
        for kind in EXTRACTORS:
            settings = getattr(config, kind)
            seed = extractor_seed(config.seed, kind)
            torch.manual_seed(seed)
            network, out_features = build_backbone(architecture, transform.channels, config.feature_dim)
            if settings.init == "checkpoint":
                log.info("F_%s: loading initial weights from %s", kind, settings.checkpoint)
                checkpoint_info = load_backbone_checkpoint(network, settings.checkpoint, settings.checkpoint_prefix, settings.drop_prefixes)
            else:
                log.info("F_%s: random initial weights (init: random)", kind)
                checkpoint_info = {"checkpoint": "random", "checkpoint_sha256": "random"}

            log.info("F_%s: fine-tuning for %d epochs", kind, settings.epochs)
            result = finetune_extractor(
                kind, network, out_features, source, indices, transform, settings,
                seed=seed, num_workers=config.num_workers, device=device,
            )
            log.info("F_%s: extracting features of %d images", kind, source.num_samples)
            features[kind] = compute_features(
                result.network, source, np.arange(source.num_samples), transform,
                batch_size=config.extract_batch_size, num_workers=config.num_workers, device=device,
                description=f"extract F_{kind}",
            )
            provenance[kind] = _provenance(
                kind, architecture, out_features, transform, config, indices, checkpoint_info, result, input_size
            )
            if kind == "ce":
                provenance[kind].update(_test_seen_accuracy(result, features[kind], source, device))
            extractors[kind] = _extractor_checkpoint(kind, architecture, out_features, transform, result, provenance[kind])

    attrs: dict[str, Any] = {"source_kind": source.kind, "source_location": source.location, "extract_seed": config.seed}
    if skipped:
        attrs["skipped_images"] = json.dumps(skipped)
    store = FeatureStore(
        dataset=source.dataset,
        features_ce=features["ce"],
        features_sc=features["sc"],
        labels=source.labels,
        class_names=source.class_names,
        attributes=source.attributes,
        splits=source.splits,
        image_files=None if source.paths is None else [str(path) for path in source.paths],
        provenance_ce=provenance["ce"],
        provenance_sc=provenance["sc"],
        attrs=attrs,
    )
    return ExtractionResult(store=store, extractors=extractors)


def _test_seen_accuracy(result: FinetuneResult, features: np.ndarray, source: ImageSource, device: torch.device) -> dict[str, Any]:
    """Score F_ce's fine-tuning classifier on test_seen; accuracies in percent."""
    test_seen = source.splits["test_seen"]
    if test_seen.size == 0:
        return {"test_seen_accuracy": None, "test_seen_mean_class_accuracy": None}
    result.head.eval()
    with torch.no_grad():
        logits = result.head(torch.from_numpy(features[test_seen]).to(device)).cpu().numpy()
    predicted = result.classes[logits.argmax(axis=1)]
    overall, per_class = top1_accuracies(predicted, source.labels[test_seen])
    log.info("F_ce: test_seen top-1 %.2f%% (mean per-class %.2f%%) over %d images", overall, per_class, test_seen.size)
    return {"test_seen_accuracy": overall, "test_seen_mean_class_accuracy": per_class}


def _provenance(
    kind: str,
    architecture: str,
    out_features: int,
    transform: ImageTransform,
    config: ExtractConfig,
    indices: np.ndarray,
    checkpoint_info: dict[str, Any],
    result: FinetuneResult,
    input_size: str,
) -> dict[str, Any]:
    settings = getattr(config, kind)
    finetune = {
        "loss": "cross_entropy" if kind == "ce" else "supervised_contrastive",
        **{key: value for key, value in dataclasses.asdict(settings).items() if key not in ("init", "checkpoint", "checkpoint_prefix", "drop_prefixes")},
        "augment": dataclasses.asdict(config.augment),
        "finetune_on": config.finetune_on,
        "subset_ratio": config.subset_ratio if config.finetune_on == "subset" else 1.0,
        "subset_seed": config.subset_seed,
        "num_images": int(indices.size),
        "seen_classes": int(result.classes.size),
        "seed": config.seed,
        "final_loss": result.epoch_losses[-1] if result.epoch_losses else None,
    }
    finetune["drop_prefixes"] = list(settings.drop_prefixes)
    if kind == "ce":
        finetune.pop("temperature")
        finetune.pop("projection_dim")
    return {
        "extractor": f"F_{kind}",
        "architecture": architecture,
        "feature_dim": out_features,
        "input_channels": transform.channels,
        "image_size": input_size,
        "resize_size": config.resize_size if input_size == f"{config.image_size}x{config.image_size}" else None,
        "normalisation": "imagenet" if transform.channels == 3 else "pixel / pixel_max",
        **checkpoint_info,
        "finetune": finetune,
    }


def _extractor_checkpoint(
    kind: str, architecture: str, out_features: int, transform: ImageTransform, result: FinetuneResult, provenance: dict[str, Any]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "architecture": architecture,
        "input_channels": transform.channels,
        "feature_dim": out_features,
        "backbone_state_dict": {key: value.cpu() for key, value in result.network.state_dict().items()},
        "head_state_dict": {key: value.cpu() for key, value in result.head.state_dict().items()},
        "head_classes": result.classes.tolist(),
        "provenance": json.dumps(provenance, sort_keys=True),
    }


def save_extractor(path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
    """Write one fine-tuned extractor atomically, with reproducible bytes."""
    save_torch(path, checkpoint)
