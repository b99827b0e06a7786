"""The diffusion-based representation generator (DRG), trained first.

R(z, a, r_noisy, t) -> r̃0 generates supervised-contrastive representations.
Two WGAN-GP critics train it: D'_adv(r0, a) sees clean representations and
D'_diff(r_t, r_{t+1}, a, t) sees denoising pairs, whose fake element is the
posterior draw r̃_t ~ q(r_t | r_{t+1}, r̃0). There is no mutual loss.

Reference-code quirk, kept as ``generator_input``: the released code feeds R the
less-noised r_t instead of r_{t+1} (its authors note that the "correct" input
trained worse). ``r_t`` (default) reproduces it; ``r_t_plus_1`` feeds r_{t+1}.
Either way the fake pair is built from r_{t+1}, and synthesis calls
R(z, a, N(0, I), T-1).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from zerodiff.config import build_config, config_to_dict
from zerodiff.diffusion import DiffusionSchedule
from zerodiff.errors import UserError
from zerodiff.losses import critic_loss, generator_adversarial_loss, score_critic
from zerodiff.nets import ConditionalMLP
from zerodiff.preprocess import FeatureScaler
from zerodiff.training import (
    AdversarialConfig,
    AdversarialTrainer,
    DiagnosticsLog,
    ResumableCheckpoint,
    TrainingData,
    critic_gap,
    fit,
    frozen,
    load_model_payload,
    make_adam,
    sample_batch_indices,
    save_model,
    scaler_from_state,
    scaler_to_state,
    steps_per_epoch,
)

log = logging.getLogger("zerodiff.drg")

CHECKPOINT_KIND = "drg"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class DRGConfig(AdversarialConfig):
    """DRG options: the shared ones of :class:`AdversarialConfig` plus the generator's noisy input."""

    generator_input: Literal["r_t", "r_t_plus_1"] = "r_t"


class DRGNetworks(nn.Module):
    """R and its two critics, sized from the data: ``representation_dim`` (D_sc) and ``attribute_dim`` (A)."""

    def __init__(self, config: DRGConfig, representation_dim: int, attribute_dim: int) -> None:
        super().__init__()
        hidden, time_dim = config.hidden, config.time_embedding
        self.generator = ConditionalMLP(
            {"z": config.latent_size, "a": attribute_dim, "x_noisy": representation_dim},
            hidden,
            representation_dim,
            time_dim=time_dim,
            sigmoid=True,
        )
        self.critic_adv = ConditionalMLP({"x": representation_dim, "a": attribute_dim}, hidden, 1)
        self.critic_diff = ConditionalMLP(
            {"x_t": representation_dim, "x_next": representation_dim, "a": attribute_dim}, hidden, 1, time_dim=time_dim
        )

    def critics(self) -> list[nn.Module]:
        return [self.critic_adv, self.critic_diff]


class DRGTrainer(AdversarialTrainer):
    """Critic and generator steps of the DRG on data resident on the training device."""

    stage = "train-drg"

    def __init__(self, config: DRGConfig, data: TrainingData, device: torch.device) -> None:
        assert data.features_sc is not None
        self.config = config
        self.data = data
        torch.manual_seed(config.seed)
        self.networks = DRGNetworks(config, data.features_sc.shape[1], data.attributes.shape[1]).to(device)
        self.schedule = DiffusionSchedule.create(
            config.diffusion.num_steps, config.diffusion.beta_min, config.diffusion.beta_max, device
        )
        adam = (config.lr, config.adam_beta1, config.adam_beta2)
        critic_parameters = [p for critic in self.networks.critics() for p in critic.parameters()]
        self.optimizers = {
            "generator": make_adam(self.networks.generator.parameters(), *adam),
            "critics": make_adam(critic_parameters, *adam),
        }
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(config.seed)

    def _batch(self) -> dict[str, torch.Tensor]:
        indices = sample_batch_indices(self.data.num_samples, self.config.batch_size, self.rng)
        r0 = self.data.features_sc[indices]
        a = self.data.attributes[self.data.labels[indices]]
        t = self.schedule.sample_steps(r0.shape[0], self.rng)
        r_t, r_next = self.schedule.q_sample_pairs(r0, t, self.rng)
        return {"r0": r0, "a": a, "t": t, "r_t": r_t, "r_next": r_next}

    def _fake(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (r̃0, r̃_t): R's clean estimate and its posterior draw given r_{t+1}."""
        noisy = batch["r_t"] if self.config.generator_input == "r_t" else batch["r_next"]
        z = torch.randn(noisy.shape[0], self.config.latent_size, generator=self.rng, device=noisy.device)
        r0_fake = self.networks.generator({"z": z, "a": batch["a"], "x_noisy": noisy, "t": batch["t"]})
        r_t_fake = self.schedule.sample_posterior(r0_fake, batch["r_next"], batch["t"], self.rng)
        return r0_fake, r_t_fake

    def critic_step(self) -> dict[str, torch.Tensor]:
        batch = self._batch()
        with torch.no_grad():
            r0_fake, r_t_fake = self._fake(batch)
        alpha = torch.rand(r0_fake.shape[0], 1, generator=self.rng, device=r0_fake.device)
        conditions = {"a": batch["a"], "t": batch["t"], "x_next": batch["r_next"]}
        adv = score_critic(self.networks.critic_adv, {"x": batch["r0"], **conditions}, {"x": r0_fake, **conditions}, ["x"], alpha)
        diff = score_critic(
            self.networks.critic_diff, {"x_t": batch["r_t"], **conditions}, {"x_t": r_t_fake, **conditions}, ["x_t"], alpha
        )
        loss_adv = critic_loss(adv, self.config.penalty_weight)
        loss_diff = critic_loss(diff, self.config.penalty_weight)
        optimizer = self.optimizers["critics"]
        optimizer.zero_grad(set_to_none=True)
        (loss_adv + loss_diff).backward()
        optimizer.step()
        return {
            "critic_adv_loss": loss_adv,
            "critic_diff_loss": loss_diff,
            "wasserstein_adv": adv.wasserstein.mean(),
            "wasserstein_diff": diff.wasserstein.mean(),
            "penalty_adv": adv.penalty,
            "penalty_diff": diff.penalty,
        }

    def generator_step(self) -> dict[str, torch.Tensor]:
        batch = self._batch()
        with frozen(*self.networks.critics()):
            r0_fake, r_t_fake = self._fake(batch)
            conditions = {"a": batch["a"], "t": batch["t"], "x_next": batch["r_next"]}
            adv = generator_adversarial_loss(self.networks.critic_adv({"x": r0_fake, **conditions}).squeeze(1))
            diff = generator_adversarial_loss(self.networks.critic_diff({"x_t": r_t_fake, **conditions}).squeeze(1))
            loss = adv + diff
            optimizer = self.optimizers["generator"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return {"generator_adv_loss": adv, "generator_diff_loss": diff, "generator_loss": loss}

    def epoch_diagnostics(self, epoch: int) -> dict[str, float]:
        """Critic gaps between the training subset and held-out test_seen samples."""
        data = self.data
        if data.held_out_sc is None or data.held_out_sc.shape[0] == 0:
            return {}
        train = {"x": data.features_sc, "a": data.attributes[data.labels]}
        held_out = {"x": data.held_out_sc, "a": data.attributes[data.held_out_labels]}
        gaps = {"delta_adv": critic_gap(self.networks.critic_adv, train, held_out)}
        noise = torch.Generator(device=data.features_sc.device)
        noise.manual_seed(self.config.seed + epoch)
        gaps["delta_diff"] = critic_gap(
            self.networks.critic_diff,
            _diffusion_view(self.schedule, train, noise),
            _diffusion_view(self.schedule, held_out, noise),
        )
        return gaps


def _diffusion_view(schedule: DiffusionSchedule, clean: dict[str, torch.Tensor], noise: torch.Generator) -> dict[str, torch.Tensor]:
    """Noise clean inputs ``x`` into (x_t, x_next) pairs at random steps, keeping the other inputs."""
    x0 = clean["x"]
    t = schedule.sample_steps(x0.shape[0], noise)
    x_t, x_next = schedule.q_sample_pairs(x0, t, noise)
    return {**{k: v for k, v in clean.items() if k != "x"}, "x_t": x_t, "x_next": x_next, "t": t}


@dataclass
class TrainedDRG:
    """A trained DRG loaded from ``models/drg.pt``: R, its configuration and preprocessing."""

    config: DRGConfig
    networks: DRGNetworks
    store_sha256: str
    ratio: float
    seed: int
    protocol: str
    dims: dict[str, Any]
    scaler_sc: FeatureScaler
    attributes: torch.Tensor
    schedule: DiffusionSchedule

    @property
    def device(self) -> torch.device:
        return self.attributes.device

    def sample(self, attributes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Generate r̃0 = R(z, a, N(0, I), T-1) for each row of ``attributes`` [B, A]; returns [B, D_sc]."""
        rows = attributes.shape[0]
        device = attributes.device
        with torch.no_grad():
            z = torch.randn(rows, self.config.latent_size, generator=generator, device=device)
            noisy = torch.randn(rows, self.dims["features_sc"], generator=generator, device=device)
            t = torch.full((rows,), self.config.diffusion.num_steps - 1, dtype=torch.int64, device=device)
            return self.networks.generator({"z": z, "a": attributes, "x_noisy": noisy, "t": t})


def train_drg(
    config: DRGConfig,
    data: TrainingData,
    *,
    device: torch.device,
    checkpoint_dir: Path | None = None,
    diagnostics_path: Path | None = None,
) -> tuple[DRGTrainer, DiagnosticsLog]:
    """Train the DRG on ``data`` and return the trainer (its networks) and the diagnostics."""
    if data.features_sc is None:
        raise UserError("train-drg needs SC representations, and the training data has none")
    trainer = DRGTrainer(config, data, device)
    diagnostics = DiagnosticsLog(diagnostics_path)
    checkpoint = ResumableCheckpoint(checkpoint_dir, config, data.provenance())
    steps = steps_per_epoch(data.num_samples, config.batch_size)
    log.info(
        "train-drg: %d samples, %d generator steps per epoch, %d epochs on %s",
        data.num_samples, steps, config.epochs, device,
    )
    fit(
        trainer,
        epochs=config.epochs,
        steps_per_epoch=steps,
        critic_iter=config.critic_iter,
        checkpoint=checkpoint,
        checkpoint_every=config.checkpoint_every,
        diagnostics=diagnostics,
        device=device,
    )
    return trainer, diagnostics


def save_drg(path: os.PathLike | str, trainer: DRGTrainer) -> None:
    """Write ``models/drg.pt``: state dict, configuration, dimensions, preprocessing and provenance."""
    data = trainer.data
    save_model(
        path,
        {
            "kind": CHECKPOINT_KIND,
            "version": CHECKPOINT_VERSION,
            "config": config_to_dict(trainer.config),
            "dims": data.dims,
            "state_dict": trainer.networks.state_dict(),
            "scaler_ce": scaler_to_state(data.scaler_ce),
            "scaler_sc": scaler_to_state(data.scaler_sc),
            "attributes": data.attributes.cpu(),
            **data.provenance(),
        },
    )


def load_drg(path: os.PathLike | str, device: torch.device | str = "cpu") -> TrainedDRG:
    """Load a DRG checkpoint; raise :class:`UserError` when it is missing or invalid."""
    payload = load_model_payload(path, CHECKPOINT_KIND, device)
    try:
        config = build_config(DRGConfig, payload["config"], f"{path}: config")
        dims = dict(payload["dims"])
        networks = DRGNetworks(config, dims["features_sc"], dims["attributes"]).to(device)
        networks.load_state_dict(payload["state_dict"])
        attributes = payload["attributes"].to(device)
        trained = TrainedDRG(
            config=config,
            networks=networks.eval(),
            store_sha256=str(payload["store_sha256"]),
            ratio=float(payload["ratio"]),
            seed=int(payload["seed"]),
            protocol=str(payload["protocol"]),
            dims=dims,
            scaler_sc=scaler_from_state(payload["scaler_sc"]),
            attributes=attributes,
            schedule=DiffusionSchedule.create(
                config.diffusion.num_steps, config.diffusion.beta_min, config.diffusion.beta_max, device
            ),
        )
    except (KeyError, RuntimeError, TypeError) as error:
        raise UserError(f"{path}: invalid DRG checkpoint ({type(error).__name__}: {error}); re-run train-drg") from None
    for parameter in trained.networks.parameters():
        parameter.requires_grad_(False)
    return trained
