"""Synthesis: generated features for the unseen (and optionally seen) classes.

For each target class and each of its N samples, the DRG draws r̃0 = R(z, a,
N(0, I), T-1) and the DFG turns it into ṽ0 with the ``one_step`` or
``progressive`` sampler (:meth:`zerodiff.dfg.TrainedDFG.generate`). Without a
DRG (``ablation.drg: false``, the f-VAEGAN baseline) G takes no representation
and the output has no ``/features/sc``, so only feature spaces without r apply.

Samples per class, N, scale with the subset ratio to keep GZSL classes
balanced: ``per_class`` maps ratios to counts and an exact match wins (within
1e-9); any other ratio gets round(per_class_default * ratio), at least 1.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from zerodiff.device import DeviceChoice
from zerodiff.dfg import Sampler, TrainedDFG
from zerodiff.drg import TrainedDRG
from zerodiff.errors import UserError
from zerodiff.store import FeatureStore, apply_protocol
from zerodiff.synthetic import SyntheticFeatures
from zerodiff.training import scalers_equal

log = logging.getLogger("zerodiff.synthesis")

RATIO_TOLERANCE = 1e-9


def _default_per_class() -> dict[float, int]:
    return {1.0: 200, 0.3: 60, 0.1: 20}


@dataclass(frozen=True)
class SynthesisConfig:
    """Options of the synthesize stage.

    ``sampler`` is ``one_step`` (ṽ0 = G(z, a, r̃0, v_T, T-1)) or ``progressive``
    (walk t = T-1..0 through the posterior). ``per_class`` and
    ``per_class_default`` set N per class (see the module docstring).
    ``include_seen`` also generates the seen classes. ``batch_size`` is the
    number of rows generated per forward pass; it does not change the output.
    """

    sampler: Sampler = "one_step"
    per_class: dict[float, int] = field(default_factory=_default_per_class)
    per_class_default: int = 200
    include_seen: bool = False
    seed: int = 9182
    batch_size: int = 4096
    device: DeviceChoice = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.per_class, dict):
            raise UserError(f"synthesize.per_class: expected a mapping of ratio to count, got {self.per_class!r}")
        for ratio, count in self.per_class.items():
            valid_ratio = isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and 0 < ratio <= 1
            valid_count = isinstance(count, int) and not isinstance(count, bool) and count >= 1
            if not (valid_ratio and valid_count):
                raise UserError(
                    f"synthesize.per_class: invalid entry {ratio!r}: {count!r}; expected a ratio in (0, 1] "
                    "mapped to a positive integer, for example {1.0: 200, 0.3: 60, 0.1: 20}"
                )
        if self.per_class_default < 1 or self.batch_size < 1:
            raise UserError(
                f"synthesize: per_class_default ({self.per_class_default}) and batch_size ({self.batch_size}) must be positive"
            )


def samples_per_class(ratio: float, per_class: dict[float, int], per_class_default: int) -> int:
    """Return N for a subset ``ratio``: an exact ``per_class`` entry, else round(per_class_default * ratio).

    >>> samples_per_class(0.3, {1.0: 200, 0.3: 60}, 200)
    60
    >>> samples_per_class(0.5, {1.0: 200, 0.3: 60}, 200)
    100
    """
    for key, count in per_class.items():
        if math.isclose(float(key), ratio, rel_tol=0.0, abs_tol=RATIO_TOLERANCE):
            return int(count)
    return max(1, math.floor(per_class_default * ratio + 0.5))


def check_models_agree(
    store_sha256: str, drg: TrainedDRG | None, drg_sha256: str | None, dfg: TrainedDFG, where: str
) -> None:
    """Raise :class:`UserError` unless the DFG was trained on this store with exactly this DRG."""
    if dfg.store_sha256 != store_sha256:
        raise UserError(
            f"{where}: the DFG was trained on another feature store (SHA-256 {dfg.store_sha256}, this store has "
            f"{store_sha256}); re-run train-dfg"
        )
    if not dfg.config.uses_drg:
        return
    if drg is None:
        raise UserError(f"{where}: this DFG uses a DRG (ablation.drg is true), so --drg is required")
    if drg.store_sha256 != store_sha256:
        raise UserError(f"{where}: the DRG was trained on another feature store (SHA-256 {drg.store_sha256}); re-run train-drg")
    if dfg.drg_sha256 is not None and dfg.drg_sha256 != drg_sha256:
        raise UserError(
            f"{where}: the DFG was trained with the DRG of SHA-256 {dfg.drg_sha256}, but the given DRG has "
            f"{drg_sha256}; re-run train-dfg with this DRG or pass the DRG it was trained with"
        )
    if drg.dims["features_sc"] != dfg.dims["features_sc"] or drg.dims["attributes"] != dfg.dims["attributes"]:
        raise UserError(f"{where}: the DRG dimensions {drg.dims} do not match the DFG's {dfg.dims}")
    if not scalers_equal(drg.scaler_sc, dfg.scaler_sc):
        raise UserError(f"{where}: the DRG and the DFG were fitted with different SC preprocessing; re-run train-dfg")


def synthesize(
    store: FeatureStore,
    protocol: str,
    ratio: float,
    drg: TrainedDRG | None,
    dfg: TrainedDFG,
    config: SynthesisConfig,
    device: torch.device,
) -> SyntheticFeatures:
    """Generate N samples for every target class, in class order, deterministically for ``config.seed``.

    Target classes are the unseen classes of ``protocol`` (plus the seen ones with
    ``include_seen``). Returns features in the DFG's preprocessed space with
    global class ids; attrs record the sampler, N and the seed.
    """
    split_store = apply_protocol(store, protocol)
    classes = split_store.unseen_classes
    if config.include_seen:
        classes = np.union1d(classes, split_store.seen_classes)
    count = samples_per_class(ratio, config.per_class, config.per_class_default)
    log.info("synthesize: %d classes x %d samples, sampler %s", classes.size, count, config.sampler)

    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    attributes = torch.from_numpy(dfg.attributes).to(device)
    takes_representation = dfg.networks.generator.representation_embedding is not None
    features_ce, features_sc = [], []
    for class_id in classes.tolist():
        for start in range(0, count, config.batch_size):
            rows = min(config.batch_size, count - start)
            class_attributes = attributes[class_id].expand(rows, -1)
            representations = drg.sample(class_attributes, generator) if drg is not None and dfg.config.uses_drg else None
            features = dfg.generate(
                class_attributes, representations if takes_representation else None, config.sampler, generator
            )
            features_ce.append(features.cpu().numpy())
            if representations is not None:
                features_sc.append(representations.cpu().numpy())
    attrs: dict[str, Any] = {"sampler": config.sampler, "per_class": count, "seed": config.seed, "include_seen": config.include_seen}
    return SyntheticFeatures(
        features_ce=np.concatenate(features_ce).astype(np.float32),
        labels=np.repeat(classes.astype(np.int64), count),
        features_sc=np.concatenate(features_sc).astype(np.float32) if features_sc else None,
        attrs=attrs,
    )
