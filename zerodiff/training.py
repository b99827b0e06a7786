"""Machinery shared by the DRG and DFG training stages.

* :class:`AdversarialConfig`: the options both generators share.
* :func:`load_training_data`: the subset's samples, preprocessed and resident on the device.
* :class:`AdversarialTrainer` and :func:`fit`: the epoch loop with critic and
  generator steps, per-step non-finite checks, per-epoch diagnostics and
  resumable checkpoints.
* :class:`DiagnosticsLog`: the per-epoch TSV that DVC shows as plots.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from zerodiff.atomic import atomic_output, save_torch
from zerodiff.config import config_to_dict
from zerodiff.device import DeviceChoice
from zerodiff.errors import UserError
from zerodiff.preprocess import FeatureScaler, normalize_attributes
from zerodiff.store import FeatureStore, apply_protocol, read_store
from zerodiff.subset import SubsetManifest, read_manifest

log = logging.getLogger("zerodiff.training")

ScalerFit = Literal["subset", "trainval"]
RESUME_FILE = "state.pt"
# Options that do not change the trajectory of the epochs already trained, so a
# resumable checkpoint stays valid when only they change.
RESUME_NEUTRAL_OPTIONS = ("epochs", "checkpoint_every")
DIAGNOSTIC_CHUNK = 8192  # rows per critic pass when scoring whole splits


@dataclass(frozen=True)
class DiffusionConfig:
    """The forward chain: ``num_steps`` (T) steps with betas from ``beta_min`` to ``beta_max``."""

    num_steps: int = 4
    beta_min: float = 0.1
    beta_max: float = 20.0


@dataclass(frozen=True)
class AdversarialConfig:
    """Options shared by the DRG and the DFG.

    ``hidden`` is the width of every generator and critic; ``latent_size`` the
    size of z; ``time_embedding`` the width of the step embedding. Adam uses
    ``lr``, ``adam_beta1`` and ``adam_beta2``. ``penalty_weight`` is the initial
    WGAN-GP weight. An epoch has ceil(n / batch_size) generator steps, each after
    ``critic_iter`` critic steps on fresh random batches. ``scaler_fit`` chooses
    the samples the feature scalers are fitted on: ``subset`` (the generator's
    training data) or ``trainval`` (the released code). ``checkpoint_every``
    epochs a resumable state is saved.
    """

    hidden: int = 256
    latent_size: int = 8
    time_embedding: int = 8
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    epochs: int = 30
    batch_size: int = 64
    critic_iter: int = 5
    lr: float = 5e-4
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999
    penalty_weight: float = 10.0
    scaler_fit: ScalerFit = "subset"
    normalize_attributes: bool = True
    seed: int = 9182
    device: DeviceChoice = "auto"
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        positive = {
            "hidden": self.hidden,
            "latent_size": self.latent_size,
            "time_embedding": self.time_embedding,
            "diffusion.num_steps": self.diffusion.num_steps,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "critic_iter": self.critic_iter,
            "checkpoint_every": self.checkpoint_every,
        }
        for name, value in positive.items():
            if value < 1:
                raise UserError(f"invalid {name} {value}; expected a positive integer")
        if not 0 < self.diffusion.beta_min < self.diffusion.beta_max:
            raise UserError(
                f"invalid diffusion betas beta_min={self.diffusion.beta_min}, beta_max={self.diffusion.beta_max}; "
                "expected 0 < beta_min < beta_max"
            )
        if not self.lr > 0 or not self.penalty_weight >= 0:
            raise UserError(f"invalid lr {self.lr} or penalty_weight {self.penalty_weight}; expected lr > 0 and penalty_weight >= 0")


@dataclass
class TrainingData:
    """The subset's samples, preprocessed, on the training device, plus held-out test_seen samples.

    ``attributes`` contains the preprocessed semantics of every class [C, A]; rows
    are looked up by label. ``held_out_*`` are the test_seen samples, used only
    for the critic-gap diagnostics, never for a gradient.
    """

    features_ce: torch.Tensor
    features_sc: torch.Tensor | None
    labels: torch.Tensor
    attributes: torch.Tensor
    held_out_ce: torch.Tensor
    held_out_sc: torch.Tensor | None
    held_out_labels: torch.Tensor
    scaler_ce: FeatureScaler
    scaler_sc: FeatureScaler | None
    store: FeatureStore
    manifest: SubsetManifest

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def dims(self) -> dict[str, int | None]:
        """Dimensions read from the feature store."""
        return {
            "features_ce": int(self.features_ce.shape[1]),
            "features_sc": None if self.features_sc is None else int(self.features_sc.shape[1]),
            "attributes": int(self.attributes.shape[1]),
            "classes": int(self.attributes.shape[0]),
        }

    def provenance(self) -> dict[str, Any]:
        """Store hash and subset identity recorded in every checkpoint."""
        return {
            "store_sha256": self.manifest.store_sha256,
            "ratio": float(self.manifest.ratio),
            "seed": int(self.manifest.seed),
            "protocol": self.manifest.protocol,
        }


def missing_sc_message(store_path: os.PathLike | str, stage: str) -> str:
    return (
        f"{store_path}: the feature store has no /features/sc (supervised-contrastive representations), "
        f"which {stage} needs. Run the extract stage to compute them, or import the authors' con_paco.mat "
        "with the xlsa17 importer. The f-VAEGAN baseline runs without them: set train_dfg ablation.drg, "
        "ablation.d_rep and inputs.r0 to false."
    )


def load_training_data(
    store_path: os.PathLike | str,
    manifest_path: os.PathLike | str,
    *,
    scaler_fit: ScalerFit,
    normalize: bool,
    need_sc: bool,
    stage: str,
    device: torch.device,
) -> TrainingData:
    """Read the store and the subset manifest, fit the preprocessing and move the data to ``device``.

    Only the manifest's samples are training data. The CE and SC scalers are
    fitted on them (``scaler_fit: subset``) or on all trainval samples of the
    manifest's protocol (``trainval``). Raises :class:`UserError` when the
    manifest belongs to another store, lists samples outside trainval, or the
    store lacks SC representations that ``need_sc`` requires.
    """
    manifest = read_manifest(manifest_path, store_path)
    store = apply_protocol(read_store(store_path), manifest.protocol)
    if need_sc and store.features_sc is None:
        raise UserError(missing_sc_message(store_path, stage))
    trainval = store.splits["trainval"]
    outside = np.setdiff1d(manifest.indices, trainval)
    if outside.size:
        raise UserError(
            f"{manifest_path}: {outside.size} sample(s) are not in trainval of protocol {manifest.protocol!r} "
            f"(indices {', '.join(map(str, outside[:5].tolist()))}); re-run the subset stage"
        )
    if not np.array_equal(store.labels[manifest.indices], manifest.labels):
        raise UserError(f"{manifest_path}: the label column disagrees with {store_path} /labels; re-run the subset stage")

    fit_rows = manifest.indices if scaler_fit == "subset" else trainval
    scaler_ce = FeatureScaler.fit(store.features_ce[fit_rows])
    scaler_sc = FeatureScaler.fit(store.features_sc[fit_rows]) if store.features_sc is not None else None
    attributes = normalize_attributes(store.attributes) if normalize else store.attributes.astype(np.float32)
    held_out = store.splits["test_seen"]

    def features(scaler: FeatureScaler | None, matrix: np.ndarray | None, rows: np.ndarray) -> torch.Tensor | None:
        if scaler is None or matrix is None:
            return None
        return torch.from_numpy(scaler.transform(matrix[rows])).to(device)

    return TrainingData(
        features_ce=features(scaler_ce, store.features_ce, manifest.indices),
        features_sc=features(scaler_sc, store.features_sc, manifest.indices),
        labels=torch.from_numpy(manifest.labels.copy()).to(device),
        attributes=torch.from_numpy(np.ascontiguousarray(attributes)).to(device),
        held_out_ce=features(scaler_ce, store.features_ce, held_out),
        held_out_sc=features(scaler_sc, store.features_sc, held_out),
        held_out_labels=torch.from_numpy(store.labels[held_out].copy()).to(device),
        scaler_ce=scaler_ce,
        scaler_sc=scaler_sc,
        store=store,
        manifest=manifest,
    )


def scaler_to_state(scaler: FeatureScaler | None) -> dict[str, Any] | None:
    """Return the scaler as torch tensors, loadable with ``torch.load(weights_only=True)``."""
    if scaler is None:
        return None
    state = scaler.to_dict()
    return {
        "data_min": torch.from_numpy(np.asarray(state["data_min"], dtype=np.float64)),
        "data_range": torch.from_numpy(np.asarray(state["data_range"], dtype=np.float64)),
        "global_max": float(state["global_max"]),
    }


def scaler_from_state(state: Mapping[str, Any] | None) -> FeatureScaler | None:
    if state is None:
        return None
    return FeatureScaler.from_dict(
        {"data_min": state["data_min"].numpy(), "data_range": state["data_range"].numpy(), "global_max": state["global_max"]}
    )


def scalers_equal(first: FeatureScaler | None, second: FeatureScaler | None) -> bool:
    if first is None or second is None:
        return first is second
    return (
        np.array_equal(first.data_min, second.data_min)
        and np.array_equal(first.data_range, second.data_range)
        and first.global_max == second.global_max
    )


def sample_batch_indices(num_samples: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Draw min(batch_size, num_samples) distinct sample indices on the generator's device."""
    return torch.randperm(num_samples, generator=generator, device=generator.device)[:batch_size]


def make_adam(parameters: Any, lr: float, beta1: float, beta2: float) -> torch.optim.Adam:
    """Build Adam with the fused kernel, one pass over each parameter instead of one per operation.

    At hidden width 4096 the foreach kernels took about as long as the critic's
    matmuls on a 2-core CPU. The fused update is the same formula, evaluated in
    another order, so parameters differ from the foreach path in the last bits.
    """
    return torch.optim.Adam(parameters, lr=lr, betas=(beta1, beta2), fused=True)


@contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Turn off parameter gradients of ``modules`` for the block (they still pass gradients to inputs)."""
    parameters = [p for module in modules if module is not None for p in module.parameters()]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)


def check_finite(terms: Mapping[str, torch.Tensor], stage: str, epoch: int, step: int, phase: str) -> None:
    """Raise :class:`UserError` naming the first non-finite loss term, with one device sync."""
    values = torch.stack([value.detach().reshape(()).float() for value in terms.values()])
    if bool(torch.isfinite(values).all()):
        return
    for (name, _), value in zip(terms.items(), values.tolist()):
        if not math.isfinite(value):
            raise UserError(
                f"{stage}: loss term {name!r} is {value} at epoch {epoch}, generator step {step} ({phase}); "
                "training stopped and no model was written. Lower lr or check the input features."
            )


class DiagnosticsLog:
    """Per-epoch rows written as a TSV (one column per quantity), rewritten atomically after each epoch."""

    def __init__(self, path: Path | None, rows: list[dict[str, float]] | None = None) -> None:
        self.path = path
        self.rows = list(rows or [])

    def append(self, row: Mapping[str, float]) -> None:
        bad = [name for name, value in row.items() if not math.isfinite(float(value))]
        if bad:
            raise UserError(f"diagnostics for epoch {row.get('epoch')} are not finite: {', '.join(bad)}; nothing was written")
        self.rows.append(dict(row))
        self.write()

    def write(self) -> None:
        if self.path is None or not self.rows:
            return
        columns = list(self.rows[0])
        with atomic_output(self.path) as tmp:
            with open(tmp, "w", newline="") as handle:
                writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
                writer.writerow(columns)
                for row in self.rows:
                    writer.writerow([_format_number(row[name]) for name in columns])


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


class ResumableCheckpoint:
    """A periodically saved training state in ``directory/state.pt``.

    The state is resumed only when its fingerprint (the configuration, less
    :data:`RESUME_NEUTRAL_OPTIONS`, the store hash and the subset identity)
    matches the current run's; otherwise it is ignored and overwritten.
    """

    def __init__(self, directory: Path | None, config: Any, provenance: Mapping[str, Any]) -> None:
        self.path = None if directory is None else Path(directory) / RESUME_FILE
        settings = {key: value for key, value in config_to_dict(config).items() if key not in RESUME_NEUTRAL_OPTIONS}
        self.fingerprint = {"config": settings, **provenance}

    def load(self, device: torch.device) -> dict[str, Any] | None:
        if self.path is None or not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location=device, weights_only=True)
        except Exception as error:  # a corrupt or foreign file only means no resume
            log.warning("ignoring unreadable resumable checkpoint %s: %s", self.path, error)
            return None
        if state.get("fingerprint") != self.fingerprint:
            log.info("ignoring resumable checkpoint %s: it was made with other settings or data", self.path)
            return None
        return state

    def save(self, state: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        save_torch(self.path, {"fingerprint": self.fingerprint, **state})


class AdversarialTrainer:
    """Base class of the DRG and DFG trainers; subclasses define the steps.

    ``networks`` contains every trained module, ``optimizers`` their Adam
    optimisers and ``rng`` the generator that drives every random draw of
    training, so that saving its state makes a resumed run continue exactly.
    """

    stage: str
    networks: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    rng: torch.Generator

    def critic_step(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def generator_step(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def epoch_diagnostics(self, epoch: int) -> dict[str, float]:
        """Return quantities measured once per epoch (critic gaps, penalty weight)."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass


def fit(
    trainer: AdversarialTrainer,
    *,
    epochs: int,
    steps_per_epoch: int,
    critic_iter: int,
    checkpoint: ResumableCheckpoint,
    checkpoint_every: int,
    diagnostics: DiagnosticsLog,
    device: torch.device,
) -> int:
    """Train for ``epochs`` epochs, resuming from ``checkpoint`` when it matches; return the epochs run now.

    Each row of ``diagnostics`` contains the epoch, the mean of every loss term
    over the epoch's steps and the trainer's :meth:`epoch_diagnostics`.
    """
    start = 0
    state = checkpoint.load(device)
    if state is not None and state["epoch"] <= epochs:
        trainer.networks.load_state_dict(state["networks"])
        for name, optimizer in trainer.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        trainer.rng.set_state(state["rng"].cpu())
        trainer.load_extra_state(state["extra"])
        diagnostics.rows = list(state["diagnostics"])
        # Rewrite the rows at once: DVC deletes its outputs before a run, and a finished
        # checkpoint leaves no epoch to train that would write them.
        diagnostics.write()
        start = int(state["epoch"])
        log.info("%s: resumed from epoch %d of %d (%s)", trainer.stage, start, epochs, checkpoint.path)

    progress = tqdm(range(start, epochs), desc=trainer.stage, unit="epoch", disable=None, initial=start, total=epochs)
    for epoch in progress:
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        for step in range(steps_per_epoch):
            for terms in generator_iteration(trainer, critic_iter, epoch + 1, step + 1):
                _accumulate(sums, counts, terms)
        row: dict[str, float] = {"epoch": float(epoch + 1)}
        means = torch.stack([sums[name] / counts[name] for name in sums]).tolist() if sums else []
        row.update(dict(zip(sums, means)))
        row.update(trainer.epoch_diagnostics(epoch + 1))
        diagnostics.append(row)
        if (epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs:
            # One log line per checkpoint, because the progress bar is hidden when stderr is not a terminal.
            wasserstein = ", ".join(f"{name} {value:.4g}" for name, value in row.items() if name.startswith("wasserstein_"))
            log.info("%s: epoch %d of %d (%s)", trainer.stage, epoch + 1, epochs, wasserstein)
            checkpoint.save(
                {
                    "epoch": epoch + 1,
                    "networks": trainer.networks.state_dict(),
                    "optimizers": {name: optimizer.state_dict() for name, optimizer in trainer.optimizers.items()},
                    "rng": trainer.rng.get_state(),
                    "extra": trainer.extra_state(),
                    "diagnostics": diagnostics.rows,
                }
            )
    return epochs - start


def generator_iteration(trainer: AdversarialTrainer, critic_iter: int, epoch: int, step: int) -> list[dict[str, torch.Tensor]]:
    """Run ``critic_iter`` critic steps, then one generator step; return every step's loss terms.

    Each step's terms are checked with :func:`check_finite`; ``epoch`` and
    ``step`` (1-based) only name the failing step in the error.
    """
    all_terms = []
    for _ in range(critic_iter):
        terms = trainer.critic_step()
        check_finite(terms, trainer.stage, epoch, step, "critic step")
        all_terms.append(terms)
    terms = trainer.generator_step()
    check_finite(terms, trainer.stage, epoch, step, "generator step")
    all_terms.append(terms)
    return all_terms


def _accumulate(sums: dict[str, torch.Tensor], counts: dict[str, int], terms: Mapping[str, torch.Tensor]) -> None:
    for name, value in terms.items():
        value = value.detach().reshape(())
        sums[name] = value if name not in sums else sums[name] + value
        counts[name] = counts.get(name, 0) + 1


def steps_per_epoch(num_samples: int, batch_size: int) -> int:
    """Generator steps per epoch: ceil(num_samples / batch_size)."""
    return max(1, math.ceil(num_samples / batch_size))


def critic_gap(critic: nn.Module, train: Mapping[str, torch.Tensor], held_out: Mapping[str, torch.Tensor]) -> float:
    """Return mean critic(train) - mean critic(held_out) without gradients (Eq. 4 and 16 of ZeroDiff)."""
    with torch.no_grad():
        return _mean_score(critic, train) - _mean_score(critic, held_out)


def _mean_score(critic: nn.Module, inputs: Mapping[str, torch.Tensor]) -> float:
    rows = next(iter(inputs.values())).shape[0]
    total = torch.zeros((), dtype=torch.float64, device=next(iter(inputs.values())).device)
    for start in range(0, rows, DIAGNOSTIC_CHUNK):
        chunk = {name: value[start : start + DIAGNOSTIC_CHUNK] for name, value in inputs.items()}
        total += critic(chunk).double().sum()
    return float(total) / max(rows, 1)


def save_model(path: os.PathLike | str, payload: Mapping[str, Any]) -> None:
    """Write a final model checkpoint atomically."""
    save_torch(path, dict(payload))


def load_model_payload(path: os.PathLike | str, kind: str, device: torch.device | str) -> dict[str, Any]:
    """Read a model checkpoint written by :func:`save_model`; raise :class:`UserError` if missing or not a ``kind`` model."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{kind.upper()} checkpoint not found: {path}; run the train-{kind} stage first")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged or foreign file
        raise UserError(f"{path}: not a readable {kind.upper()} checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise UserError(f"{path}: expected a {kind.upper()} checkpoint, found kind {found!r}; pass the file written by train-{kind}")
    return payload
