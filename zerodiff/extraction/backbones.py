"""Feature backbones and checkpoint loading.

Real images use a torchvision ResNet (ResNet-101 by default, 2048-d pooled
output) with its classifier replaced by the identity. Small single-channel
images such as the 8x8 digits use :class:`SmallResNet`, built from
torchvision's ``BasicBlock``. Initial weights come from local checkpoint files:
a torchvision state dict, or a wrapped checkpoint such as PaCo's, whose keys
carry a prefix like ``module.encoder_q.`` and include a projection head.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import models
from torchvision.models.resnet import BasicBlock, conv1x1

from zerodiff.atomic import sha256_file
from zerodiff.errors import UserError

log = logging.getLogger("zerodiff.extraction")

TORCHVISION_RESNETS = {
    "resnet18": models.resnet18,
    "resnet34": models.resnet34,
    "resnet50": models.resnet50,
    "resnet101": models.resnet101,
    "resnet152": models.resnet152,
}
AUTO_PREFIXES = ("module.encoder_q.", "encoder_q.", "module.")
_MAX_LISTED_KEYS = 10


class SmallResNet(nn.Module):
    """A three-block ResNet for small images, such as 8x8 single-channel digits.

    A 3x3 stem convolution to ``feature_dim // 2`` channels, one ``BasicBlock``
    at full resolution, one that halves the resolution and widens to
    ``feature_dim``, a third ``BasicBlock``, then global average pooling.
    Input [B, in_channels, H, W], output [B, feature_dim] (non-negative, as
    pooled ResNet features are).
    """

    def __init__(self, in_channels: int, feature_dim: int) -> None:
        super().__init__()
        stem_width = max(feature_dim // 2, 1)
        self.out_features = feature_dim
        self.conv1 = nn.Conv2d(in_channels, stem_width, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(stem_width, stem_width)
        downsample = nn.Sequential(conv1x1(stem_width, feature_dim, stride=2), nn.BatchNorm2d(feature_dim))
        self.layer2 = BasicBlock(stem_width, feature_dim, stride=2, downsample=downsample)
        self.layer3 = BasicBlock(feature_dim, feature_dim)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.relu(self.bn1(self.conv1(images)))
        hidden = self.layer3(self.layer2(self.layer1(hidden)))
        return torch.flatten(self.avgpool(hidden), 1)


def build_backbone(architecture: str, in_channels: int, feature_dim: int) -> tuple[nn.Module, int]:
    """Return a randomly initialised backbone and its output width.

    ``feature_dim`` applies to ``small_resnet`` only. Torchvision ResNets need
    ``in_channels == 3``.
    """
    if architecture == "small_resnet":
        return SmallResNet(in_channels, feature_dim), feature_dim
    if architecture not in TORCHVISION_RESNETS:
        raise UserError(f"unknown architecture {architecture!r}; expected small_resnet or one of {', '.join(TORCHVISION_RESNETS)}")
    if in_channels != 3:
        raise UserError(f"{architecture} expects 3-channel input, got {in_channels}")
    network = TORCHVISION_RESNETS[architecture](weights=None)
    out_features = network.fc.in_features
    network.fc = nn.Identity()
    return network, out_features


def read_checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint's tensors safely (``weights_only``) and unwrap ``state_dict`` or ``model``."""
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise UserError(f"{path}: not a readable torch checkpoint of tensors ({type(error).__name__}: {str(error)[:200]})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(raw, Mapping) and isinstance(raw.get(wrapper), Mapping):
            raw = raw[wrapper]
            break
    if not isinstance(raw, Mapping):
        raise UserError(f"{path}: expected a state dict (a mapping of parameter names to tensors), got {type(raw).__name__}")
    return {str(key): value for key, value in raw.items() if isinstance(value, torch.Tensor)}


def load_backbone_checkpoint(
    network: nn.Module, path: Path, prefix: str = "auto", drop_prefixes: tuple[str, ...] = ("fc.",)
) -> dict[str, Any]:
    """Load a checkpoint into ``network`` and return provenance for the feature store.

    Keys outside ``prefix`` (for PaCo: the momentum encoder, the queue, the
    classifier) are ignored and counted. After the prefix is stripped, keys
    under ``drop_prefixes`` (the checkpoint's classifier or projection head)
    are dropped. Every other key must match the network exactly: missing
    keys, unexpected keys and shape mismatches raise :class:`UserError` naming
    them. Only BatchNorm ``num_batches_tracked`` counters may be absent.
    """
    path = Path(path)
    state = read_checkpoint_state(path)
    if prefix == "auto":
        prefix = next((candidate for candidate in AUTO_PREFIXES if any(key.startswith(candidate) for key in state)), "")
    selected = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    ignored = len(state) - len(selected)
    dropped = sorted(key for key in selected if key.startswith(tuple(drop_prefixes)))
    for key in dropped:
        del selected[key]

    expected = network.state_dict()
    missing = sorted(key for key in expected if key not in selected and not key.endswith("num_batches_tracked"))
    unexpected = sorted(key for key in selected if key not in expected)
    mismatched = sorted(
        f"{key} (checkpoint {tuple(value.shape)}, network {tuple(expected[key].shape)})"
        for key, value in selected.items()
        if key in expected and value.shape != expected[key].shape
    )
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
        if keys:
            listed = ", ".join(keys[:_MAX_LISTED_KEYS]) + (f", ... ({len(keys)} in all)" if len(keys) > _MAX_LISTED_KEYS else "")
            problems.append(f"{label}: {listed}")
    if problems:
        raise UserError(
            f"{path} does not fit a {type(network).__name__} backbone after stripping prefix {prefix!r} and dropping "
            f"{', '.join(drop_prefixes) or 'nothing'}: " + "; ".join(problems)
            + ". Check the architecture parameter, checkpoint_prefix and drop_prefixes."
        )
    network.load_state_dict(selected, strict=False)
    log.info("loaded %s: %d tensors under prefix %r, %d head tensors dropped, %d tensors outside the prefix ignored",
             path, len(selected), prefix, len(dropped), ignored)
    return {
        "checkpoint": str(path),
        "checkpoint_sha256": sha256_file(path),
        "checkpoint_prefix": prefix,
        "checkpoint_dropped_keys": len(dropped),
        "checkpoint_ignored_keys": ignored,
    }
