"""Parameters of the extract stage (the ``extract`` section of ``params.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Architecture = Literal["auto", "small_resnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentations; extraction never uses them.

    Image arrays get a zero padding of ``shift`` pixels followed by a random
    crop back to the original size. Image files get a random resized crop with
    an area fraction in [``crop_scale_min``, 1] and a horizontal flip with
    probability ``flip_probability``.
    """

    shift: int = 1
    crop_scale_min: float = 0.35
    flip_probability: float = 0.5


@dataclass(frozen=True)
class ExtractorConfig:
    """Initial weights and fine-tuning of one extractor (F_ce or F_sc).

    ``init: checkpoint`` loads ``checkpoint`` (a local file). ``init: random``
    starts from random weights and must be chosen explicitly.
    ``checkpoint_prefix`` is the wrapper prefix stripped from the checkpoint's
    keys; ``auto`` picks the first of ``module.encoder_q.``, ``encoder_q.``,
    ``module.`` that starts any key, else no prefix. Keys under
    ``drop_prefixes`` (after stripping) are the checkpoint's own heads, such as
    an ImageNet classifier or a PaCo projection head, and are ignored.
    """

    init: Literal["checkpoint", "random"] = "checkpoint"
    checkpoint: str | None = None
    checkpoint_prefix: str = "auto"
    drop_prefixes: tuple[str, ...] = ("fc.",)
    epochs: int = 10
    batch_size: int = 64
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    temperature: float = 0.1
    projection_dim: int = 128


@dataclass(frozen=True)
class ExtractConfig:
    """The whole ``extract`` section.

    ``architecture: auto`` uses ``small_resnet`` for image arrays and
    ``resnet101`` for image files. ``feature_dim`` is the output width of
    ``small_resnet``, while torchvision ResNets have their own (2048 for ResNet-101).
    Image files are resized to ``resize_size`` and centre-cropped to
    ``image_size``. ``finetune_on: subset`` fine-tunes on exactly the samples
    that the subset stage selects with ``subset_ratio`` and ``subset_seed``.
    ``seen_test_fraction`` and ``split_seed`` split the seen classes of a
    folder-per-class tree into trainval and test_seen.
    """

    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    architecture: Architecture = "auto"
    feature_dim: int = 64
    image_size: int = 224
    resize_size: int = 256
    finetune_on: Literal["trainval", "subset"] = "trainval"
    subset_ratio: float = 1.0
    subset_seed: int = 0
    skip_unreadable: bool = False
    seen_test_fraction: float = 0.2
    split_seed: int = 0
    extract_batch_size: int = 256
    num_workers: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    ce: ExtractorConfig = field(default_factory=ExtractorConfig)
    sc: ExtractorConfig = field(default_factory=ExtractorConfig)


def check_config(config: ExtractConfig, where: str = "params.yaml: extract") -> None:
    """Reject parameter values that the types allow but the stage cannot use."""
    from zerodiff.errors import UserError
    from zerodiff.subset import check_ratio

    problems = []
    if config.feature_dim < 2:
        problems.append(f"feature_dim must be at least 2, got {config.feature_dim}")
    if config.image_size < 1 or config.resize_size < config.image_size:
        problems.append(f"need 1 <= image_size <= resize_size, got image_size {config.image_size}, resize_size {config.resize_size}")
    if not 0.0 <= config.seen_test_fraction < 1.0:
        problems.append(f"seen_test_fraction must be in [0, 1), got {config.seen_test_fraction}")
    if config.extract_batch_size < 1 or config.num_workers < 0:
        problems.append(f"need extract_batch_size >= 1 and num_workers >= 0, got {config.extract_batch_size} and {config.num_workers}")
    if config.augment.shift < 0 or not 0.0 < config.augment.crop_scale_min <= 1.0 or not 0.0 <= config.augment.flip_probability <= 1.0:
        problems.append(
            f"augment needs shift >= 0, crop_scale_min in (0, 1] and flip_probability in [0, 1], got {config.augment}"
        )
    for name, extractor in (("ce", config.ce), ("sc", config.sc)):
        if extractor.init == "checkpoint" and not extractor.checkpoint:
            problems.append(f"{name}.checkpoint is not set; give a local checkpoint file or set {name}.init: random")
        if extractor.epochs < 0 or extractor.batch_size < 2:
            problems.append(f"{name} needs epochs >= 0 and batch_size >= 2, got {extractor.epochs} and {extractor.batch_size}")
        if extractor.lr <= 0 or extractor.temperature <= 0 or extractor.projection_dim < 1:
            problems.append(
                f"{name} needs lr > 0, temperature > 0 and projection_dim >= 1, "
                f"got {extractor.lr}, {extractor.temperature} and {extractor.projection_dim}"
            )
    if problems:
        raise UserError(f"{where}: " + "; ".join(problems))
    if config.finetune_on == "subset":
        check_ratio(config.subset_ratio)
