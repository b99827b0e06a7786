"""The diffusion-based feature generator (DFG), trained second with the DRG frozen.

G(z, a, r0, v_{t+1}, t) -> ṽ0 is built on f-VAEGAN: a VAE encoder E(v0, a)
provides z for a reconstruction term, three WGAN-GP critics judge the fakes and a
semantic feedback decoder Dec(v) -> â adds an attribute reconstruction term.

Critics (each optional, see :class:`DFGAblation`):

* D_adv(v0, a), the predefined-semantics view (ZeroDiff Eq. 1-3);
* D_diff(v_t, v_{t+1}, a, r0, t), the diffusion view (Eq. 9-11), whose fake
  element is the posterior draw ṽ_t ~ q(v_t | v_{t+1}, ṽ0);
* D_rep(v0, r0), the contrastive-representation view (Eq. 13, 19-20).

The critics' objective is gamma_adv times the sum of their WGAN-GP losses plus
lambda_mu times the mutual-learning loss between their per-sample Wasserstein
estimates (Eq. 14, see :func:`zerodiff.losses.mutual_learning_loss`). The
generator's objective is the VAE loss, gamma_adv times the adversarial terms and
the feedback decoder's attribute error on the fakes.

Representations of fake samples: the VAE branch reconstructs a real sample and
uses its real r0. The adversarial fakes use, with ``representation_input: real``
(default), the batch's real r0; ``generated`` draws r̃0 from the frozen DRG for the
sample's class, which is what synthesis feeds G. In either mode the DFG checks
that the DRG matches its store, subset and preprocessing, so synthesis can pair them.
NOTE: which of the two the released code does was not verified. On the digits
store, ``real`` reached higher unseen accuracy in a single comparison.

The f-VAEGAN baseline is the switch set ``ablation: {drg: false, d_diff: false,
d_rep: false, mutual: false}`` with ``inputs: {r0: false, v_t: false, t: false}``:
G(z, a), the VAE, D_adv and the feedback decoder. It needs neither a DRG nor SC
representations.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from zerodiff.config import build_config, config_to_dict
from zerodiff.diffusion import DiffusionSchedule
from zerodiff.drg import TrainedDRG
from zerodiff.errors import UserError
from zerodiff.losses import (
    AdaptivePenaltyWeight,
    CriticScores,
    MutualDistance,
    MutualWeighting,
    attribute_reconstruction_loss,
    critic_loss,
    generator_adversarial_loss,
    mutual_learning_loss,
    mutual_step_weight,
    score_critic,
    vae_loss,
)
from zerodiff.nets import ConditionalMLP, SemanticDecoder, VAEEncoder
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
    scalers_equal,
    steps_per_epoch,
)

log = logging.getLogger("zerodiff.dfg")

CHECKPOINT_KIND = "dfg"
CHECKPOINT_VERSION = 1
Sampler = Literal["one_step", "progressive"]


@dataclass(frozen=True)
class DFGAblation:
    """Components of ZeroDiff's Table 3: the DRG, the three critics, the mutual loss, plus the feedback decoder."""

    drg: bool = True
    d_adv: bool = True
    d_diff: bool = True
    d_rep: bool = True
    mutual: bool = True
    decoder: bool = True


@dataclass(frozen=True)
class GeneratorInputs:
    """Inputs of G (ZeroDiff's Table 4): class semantics a, representation r0, noised feature v_t, step t."""

    a: bool = True
    r0: bool = True
    v_t: bool = True
    t: bool = True


@dataclass(frozen=True)
class DFGConfig(AdversarialConfig):
    """DFG options on top of :class:`AdversarialConfig`.

    ``representation_embedding`` is the width of the r0 embedding in G and the
    critics; ``decoder_hidden`` the feedback decoder's hidden width, trained with
    ``decoder_lr``. ``gamma_adv`` scales the critics' WGAN-GP losses and the
    generator's adversarial terms; ``vae_weight`` and ``feedback_weight`` weight
    the generator's VAE and attribute terms. ``mutual_weight`` (lambda_mu) and
    ``mutual_gamma`` set the mutual loss, ``mutual_distance`` its distance
    (``squared``, released code, or ``l1``, paper) and ``mutual_weighting`` its
    step factor (``mean``: m_t^gamma, released code; ``kappa``: (1 - m_t)^gamma,
    the paper's formula). ``adaptive_penalty`` turns on TF-VAEGAN's
    gradient-penalty weight adaptation. ``encoded_noise`` makes the adversarial
    fakes use the encoder's z instead of z ~ N(0, I).
    """

    epochs: int = 60
    representation_embedding: int = 16
    decoder_hidden: int = 64
    decoder_lr: float = 1e-4
    gamma_adv: float = 10.0
    vae_weight: float = 1.0
    feedback_weight: float = 1.0
    mutual_weight: float = 5.0
    mutual_gamma: float = 1.5
    mutual_distance: MutualDistance = "squared"
    mutual_weighting: MutualWeighting = "mean"
    adaptive_penalty: bool = True
    encoded_noise: bool = False
    representation_input: Literal["real", "generated"] = "real"
    ablation: DFGAblation = field(default_factory=DFGAblation)
    inputs: GeneratorInputs = field(default_factory=GeneratorInputs)

    def __post_init__(self) -> None:
        super().__post_init__()
        ablation, inputs = self.ablation, self.inputs
        if not ablation.drg and (inputs.r0 or ablation.d_rep):
            raise UserError(
                "ablation.drg: false removes the representations, so it also needs ablation.d_rep: false "
                f"and inputs.r0: false (got d_rep={ablation.d_rep}, r0={inputs.r0})"
            )
        if ablation.mutual and len(self.critic_names) < 2:
            raise UserError(
                f"ablation.mutual: true needs at least two critics, but only {list(self.critic_names) or 'none'} "
                "are on; set ablation.mutual: false"
            )
        if min(self.representation_embedding, self.decoder_hidden) < 1:
            raise UserError("representation_embedding and decoder_hidden must be positive integers")

    @property
    def critic_names(self) -> tuple[str, ...]:
        """Active critics among ``adv``, ``diff`` and ``rep``."""
        switches = {"adv": self.ablation.d_adv, "diff": self.ablation.d_diff, "rep": self.ablation.d_rep}
        return tuple(name for name, on in switches.items() if on)

    @property
    def uses_drg(self) -> bool:
        return self.ablation.drg


class DFGNetworks(nn.Module):
    """G, the VAE encoder, the active critics and the feedback decoder; absent parts are None."""

    def __init__(self, config: DFGConfig, feature_dim: int, representation_dim: int | None, attribute_dim: int) -> None:
        super().__init__()
        inputs, ablation = config.inputs, config.ablation
        hidden, time_dim = config.hidden, config.time_embedding
        representation = (representation_dim, config.representation_embedding) if config.uses_drg else None

        generator_raw = {"z": config.latent_size}
        if inputs.a:
            generator_raw["a"] = attribute_dim
        if inputs.v_t:
            generator_raw["x_noisy"] = feature_dim
        self.generator = ConditionalMLP(
            generator_raw,
            hidden,
            feature_dim,
            time_dim=time_dim if inputs.t else 0,
            representation_dims=representation if inputs.r0 else None,
            sigmoid=True,
        )
        self.encoder = VAEEncoder(feature_dim, attribute_dim, hidden, config.latent_size)
        self.critic_adv = ConditionalMLP({"x": feature_dim, "a": attribute_dim}, hidden, 1) if ablation.d_adv else None
        self.critic_diff = (
            ConditionalMLP(
                {"x_t": feature_dim, "x_next": feature_dim, "a": attribute_dim},
                hidden,
                1,
                time_dim=time_dim,
                representation_dims=representation,
            )
            if ablation.d_diff
            else None
        )
        self.critic_rep = ConditionalMLP({"x": feature_dim}, hidden, 1, representation_dims=representation) if ablation.d_rep else None
        self.decoder = SemanticDecoder(feature_dim, config.decoder_hidden, attribute_dim) if ablation.decoder else None

    def critics(self) -> dict[str, nn.Module]:
        """Active critics by name (``adv``, ``diff``, ``rep``)."""
        named = {"adv": self.critic_adv, "diff": self.critic_diff, "rep": self.critic_rep}
        return {name: critic for name, critic in named.items() if critic is not None}


class DFGTrainer(AdversarialTrainer):
    """Critic and generator steps of the DFG on data resident on the training device."""

    stage = "train-dfg"

    def __init__(self, config: DFGConfig, data: TrainingData, drg: TrainedDRG | None, device: torch.device) -> None:
        self.config = config
        self.data = data
        self.drg = drg
        dims = data.dims
        torch.manual_seed(config.seed)
        self.networks = DFGNetworks(config, dims["features_ce"], dims["features_sc"], dims["attributes"]).to(device)
        self.schedule = DiffusionSchedule.create(
            config.diffusion.num_steps, config.diffusion.beta_min, config.diffusion.beta_max, device
        )
        adam = (config.lr, config.adam_beta1, config.adam_beta2)
        generator_parameters = list(self.networks.generator.parameters()) + list(self.networks.encoder.parameters())
        self.optimizers = {"generator": make_adam(generator_parameters, *adam)}
        critic_parameters = [p for critic in self.networks.critics().values() for p in critic.parameters()]
        if critic_parameters:
            self.optimizers["critics"] = make_adam(critic_parameters, *adam)
        if self.networks.decoder is not None:
            self.optimizers["decoder"] = make_adam(
                self.networks.decoder.parameters(), config.decoder_lr, config.adam_beta1, config.adam_beta2
            )
        self.penalty_weight = AdaptivePenaltyWeight(config.penalty_weight, config.adaptive_penalty)
        self.penalty_sum = torch.zeros((), device=device)
        self.penalty_count = 0
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(config.seed)

    # Inputs of the networks.

    def _batch(self) -> dict[str, torch.Tensor]:
        data = self.data
        indices = sample_batch_indices(data.num_samples, self.config.batch_size, self.rng)
        v0 = data.features_ce[indices]
        batch = {"v0": v0, "a": data.attributes[data.labels[indices]]}
        if data.features_sc is not None and self.config.uses_drg:
            batch["r0"] = data.features_sc[indices]
        batch["t"] = self.schedule.sample_steps(v0.shape[0], self.rng)
        batch["v_t"], batch["v_next"] = self.schedule.q_sample_pairs(v0, batch["t"], self.rng)
        return batch

    def _fake_representations(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if not self.config.uses_drg:
            return None
        if self.config.representation_input == "real" or self.drg is None:
            return batch["r0"]
        return self.drg.sample(batch["a"], self.rng)

    def _generate(self, z: torch.Tensor, batch: dict[str, torch.Tensor], representations: torch.Tensor | None) -> torch.Tensor:
        inputs = {"z": z, "a": batch["a"], "x_noisy": batch["v_next"], "t": batch["t"]}
        if representations is not None:
            inputs["r"] = representations
        return self.networks.generator(inputs)

    def _latent(self, rows: int) -> torch.Tensor:
        return torch.randn(rows, self.config.latent_size, generator=self.rng, device=self.data.features_ce.device)

    def _critic_inputs(
        self, name: str, batch: dict[str, torch.Tensor], v0: torch.Tensor, v_t: torch.Tensor | None, r: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        if name == "adv":
            return {"x": v0, "a": batch["a"]}
        if name == "diff":
            inputs = {"x_t": v_t, "x_next": batch["v_next"], "a": batch["a"], "t": batch["t"]}
        else:
            inputs = {"x": v0}
        if r is not None:
            inputs["r"] = r
        return inputs

    # Training steps.

    def critic_step(self) -> dict[str, torch.Tensor]:
        config, networks = self.config, self.networks
        batch = self._batch()
        r_real = batch.get("r0")
        with torch.no_grad():
            r_fake = self._fake_representations(batch)
            v0_fake = self._generate(self._latent(batch["v0"].shape[0]), batch, r_fake)
            v_t_fake = self.schedule.sample_posterior(v0_fake, batch["v_next"], batch["t"], self.rng) if networks.critic_diff else None
        alpha = torch.rand(v0_fake.shape[0], 1, generator=self.rng, device=v0_fake.device)
        # r is part of the judged sample only when fakes carry generated representations.
        r_mixed = ["r"] if r_fake is not None and r_fake is not r_real else []

        scores: dict[str, CriticScores] = {}
        terms: dict[str, torch.Tensor] = {}
        loss = v0_fake.new_zeros(())
        for name, critic in networks.critics().items():
            real = self._critic_inputs(name, batch, batch["v0"], batch["v_t"], r_real)
            fake = self._critic_inputs(name, batch, v0_fake, v_t_fake, r_fake)
            mixed = ["x_t"] if name == "diff" else ["x"]
            if name != "adv":
                mixed += r_mixed
            scores[name] = score_critic(critic, real, fake, mixed, alpha)
            term = critic_loss(scores[name], self.penalty_weight.value)
            loss = loss + config.gamma_adv * term
            terms[f"critic_{name}_loss"] = term
            terms[f"wasserstein_{name}"] = scores[name].wasserstein.mean()
            terms[f"penalty_{name}"] = scores[name].penalty
        if scores:
            self.penalty_sum = self.penalty_sum + torch.stack([s.penalty.detach() for s in scores.values()]).mean()
            self.penalty_count += 1
        if config.ablation.mutual:
            weight = mutual_step_weight(self.schedule.marginal_mean, batch["t"], config.mutual_weighting, config.mutual_gamma)
            mutual = mutual_learning_loss({n: s.wasserstein for n, s in scores.items()}, weight, config.mutual_distance)
            loss = loss + config.mutual_weight * mutual
            terms["mutual_loss"] = mutual
        if networks.decoder is not None:
            decoder_loss = attribute_reconstruction_loss(networks.decoder(batch["v0"])[0], batch["a"])
            loss = loss + decoder_loss
            terms["decoder_loss"] = decoder_loss

        for name in ("critics", "decoder"):
            if name in self.optimizers:
                self.optimizers[name].zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            for name in ("critics", "decoder"):
                if name in self.optimizers:
                    self.optimizers[name].step()
        return terms

    def generator_step(self) -> dict[str, torch.Tensor]:
        config, networks = self.config, self.networks
        batch = self._batch()
        rows = batch["v0"].shape[0]
        with frozen(*networks.critics().values(), networks.decoder):
            with torch.no_grad():
                r_fake = self._fake_representations(batch)

            # Step 1: the VAE branch reconstructs the batch from the encoder's z (f-VAEGAN).
            mu, logvar = networks.encoder(batch["v0"], batch["a"])
            z_encoded = mu + (0.5 * logvar).exp() * self._latent(rows)
            z_prior = z_encoded if config.encoded_noise else self._latent(rows)

            # Step 2: one G pass over [reconstruction rows; adversarial rows], exact for an MLP.
            doubled = {key: torch.cat([value, value]) for key, value in batch.items()}
            representations = None
            if r_fake is not None:
                representations = torch.cat([batch["r0"], r_fake])
            outputs = self._generate(torch.cat([z_encoded, z_prior]), doubled, representations)
            reconstruction, v0_fake = outputs.split(rows)
            vae = vae_loss(reconstruction, batch["v0"], mu, logvar)
            loss = config.vae_weight * vae
            terms = {"vae_loss": vae}

            # Step 3: adversarial terms on the fakes, ṽ_t drawn from the posterior given v_{t+1}.
            v_t_fake = self.schedule.sample_posterior(v0_fake, batch["v_next"], batch["t"], self.rng) if networks.critic_diff else None
            adversarial = v0_fake.new_zeros(())
            for name, critic in networks.critics().items():
                scores = critic(self._critic_inputs(name, batch, v0_fake, v_t_fake, r_fake)).squeeze(1)
                term = generator_adversarial_loss(scores)
                terms[f"generator_{name}_loss"] = term
                adversarial = adversarial + term
            loss = loss + config.gamma_adv * adversarial

            # Step 4: the frozen feedback decoder's attribute error on the fakes.
            if networks.decoder is not None:
                feedback = attribute_reconstruction_loss(networks.decoder(v0_fake)[0], batch["a"])
                loss = loss + config.feedback_weight * feedback
                terms["feedback_loss"] = feedback

            optimizer = self.optimizers["generator"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        terms["generator_loss"] = loss

        if self.penalty_count:
            self.penalty_weight.update(float(self.penalty_sum) / self.penalty_count)
        self.penalty_sum = torch.zeros_like(self.penalty_sum)
        self.penalty_count = 0
        return terms

    def epoch_diagnostics(self, epoch: int) -> dict[str, float]:
        """Critic gaps between the training subset and held-out test_seen samples, and the penalty weight."""
        data = self.data
        row = {"penalty_weight": float(self.penalty_weight.value)}
        if data.held_out_ce.shape[0] == 0:
            return row
        noise = torch.Generator(device=data.features_ce.device)
        noise.manual_seed(self.config.seed + epoch)
        views = []
        for v0, labels, r0 in (
            (data.features_ce, data.labels, data.features_sc),
            (data.held_out_ce, data.held_out_labels, data.held_out_sc),
        ):
            t = self.schedule.sample_steps(v0.shape[0], noise)
            v_t, v_next = self.schedule.q_sample_pairs(v0, t, noise)
            views.append({"v0": v0, "a": data.attributes[labels], "t": t, "v_t": v_t, "v_next": v_next, "r0": r0})
        for name, critic in self.networks.critics().items():
            train, held_out = (self._critic_inputs(name, view, view["v0"], view["v_t"], view["r0"]) for view in views)
            row[f"delta_{name}"] = critic_gap(critic, train, held_out)
        return row

    def extra_state(self) -> dict[str, Any]:
        return {"penalty_weight": float(self.penalty_weight.value)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.penalty_weight.value = float(state["penalty_weight"])


def check_drg_matches(drg: TrainedDRG, drg_path: os.PathLike | str, data: TrainingData, config: DFGConfig) -> None:
    """Raise :class:`UserError` unless the DRG was trained on this store, subset and preprocessing."""
    provenance = data.provenance()
    if drg.store_sha256 != provenance["store_sha256"]:
        raise UserError(
            f"{drg_path} was trained on another feature store (SHA-256 {drg.store_sha256}, this store has "
            f"{provenance['store_sha256']}); re-run train-drg on this store"
        )
    dims = data.dims
    for key in ("features_sc", "attributes"):
        if drg.dims[key] != dims[key]:
            raise UserError(f"{drg_path}: the DRG was built for {key} of size {drg.dims[key]}, the feature store has {dims[key]}; re-run train-drg")
    for key in ("ratio", "seed", "protocol"):
        if getattr(drg, key) != provenance[key]:
            raise UserError(
                f"{drg_path}: the DRG was trained on the subset with {key} {getattr(drg, key)!r}, this subset has "
                f"{provenance[key]!r}; re-run train-drg on the same subset manifest"
            )
    if not scalers_equal(drg.scaler_sc, data.scaler_sc) or not torch.equal(drg.attributes.cpu(), data.attributes.cpu()):
        raise UserError(
            f"{drg_path}: the DRG's preprocessing differs from this run's (train_drg scaler_fit={drg.config.scaler_fit!r}, "
            f"normalize_attributes={drg.config.normalize_attributes}; train_dfg has {config.scaler_fit!r}, "
            f"{config.normalize_attributes}); use the same values in both sections"
        )


def train_dfg(
    config: DFGConfig,
    data: TrainingData,
    drg: TrainedDRG | None,
    *,
    device: torch.device,
    drg_sha256: str | None = None,
    checkpoint_dir: Path | None = None,
    diagnostics_path: Path | None = None,
) -> tuple[DFGTrainer, DiagnosticsLog]:
    """Train the DFG on ``data`` with the frozen ``drg`` and return the trainer and the diagnostics.

    ``drg_sha256``, the DRG file's hash, is part of the resumable checkpoint's
    fingerprint, so a new DRG restarts the DFG from scratch.
    """
    if config.uses_drg and config.representation_input == "generated" and drg is None:
        raise UserError("train-dfg needs a DRG checkpoint (--drg) unless ablation.drg is false or representation_input is 'real'")
    trainer = DFGTrainer(config, data, drg, device)
    diagnostics = DiagnosticsLog(diagnostics_path)
    provenance = {**data.provenance(), "drg_sha256": drg_sha256}
    checkpoint = ResumableCheckpoint(checkpoint_dir, config, provenance)
    steps = steps_per_epoch(data.num_samples, config.batch_size)
    log.info(
        "train-dfg: %d samples, %d generator steps per epoch, %d epochs, critics %s on %s",
        data.num_samples, steps, config.epochs, ", ".join(config.critic_names) or "none", device,
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


def save_dfg(path: os.PathLike | str, trainer: DFGTrainer, drg_sha256: str | None) -> None:
    """Write ``models/dfg.pt``: state dict, configuration, dimensions, preprocessing and provenance."""
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
            "scaler_sc": scaler_to_state(data.scaler_sc) if trainer.config.uses_drg else None,
            "attributes": data.attributes.cpu(),
            "drg_sha256": drg_sha256,
            "penalty_weight": float(trainer.penalty_weight.value),
            **data.provenance(),
        },
    )


@dataclass
class TrainedDFG:
    """A trained DFG loaded from ``models/dfg.pt``; features are in the preprocessed space."""

    config: DFGConfig
    networks: DFGNetworks
    store_sha256: str
    ratio: float
    seed: int
    protocol: str
    dims: dict[str, Any]
    scaler_ce: FeatureScaler
    scaler_sc: FeatureScaler | None
    attributes: np.ndarray
    drg_sha256: str | None
    schedule: DiffusionSchedule
    device: torch.device

    @property
    def has_decoder(self) -> bool:
        return self.networks.decoder is not None

    def decoder_embedding(self, features_ce: np.ndarray) -> np.ndarray:
        """Map [n, D_ce] preprocessed CE features to [n, A + H_dec]: the decoder's output, then its hidden layer.

        These are the extra dimensions of the VS and VCS feature spaces. Raises
        :class:`UserError` when the decoder is ablated.
        """
        if self.networks.decoder is None:
            raise UserError("this DFG was trained with ablation.decoder: false, so it has no semantic decoder; use feature space V, C or VC")
        features = np.asarray(features_ce, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dims["features_ce"]:
            raise UserError(f"decoder_embedding expects [n, {self.dims['features_ce']}] features, got shape {features.shape}")
        with torch.no_grad():
            attributes, hidden = self.networks.decoder(torch.from_numpy(features).to(self.device))
            return torch.cat([attributes, hidden], dim=1).cpu().numpy()

    def generate(
        self,
        attributes: torch.Tensor,
        representations: torch.Tensor | None,
        sampler: Sampler,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Generate ṽ0 [B, D_ce] for class semantics ``attributes`` [B, A] and representations r̃0 [B, D_sc].

        ``one_step``: ṽ0 = G(z, a, r̃0, v_T, T-1) with v_T ~ N(0, I).
        ``progressive``: from v_T ~ N(0, I), for t = T-1..0, ṽ0 = G(z, a, r̃0, v_{t+1}, t)
        with a fresh z, then v_t ~ q(v_t | v_{t+1}, ṽ0); the t = 0 draw is the
        posterior mean, which equals ṽ0.
        """
        rows = attributes.shape[0]
        device = attributes.device
        steps = self.config.diffusion.num_steps
        with torch.no_grad():
            v_next = torch.randn(rows, self.dims["features_ce"], generator=generator, device=device)
            step_order = [steps - 1] if sampler == "one_step" else list(range(steps - 1, -1, -1))
            for step in step_order:
                t = torch.full((rows,), step, dtype=torch.int64, device=device)
                z = torch.randn(rows, self.config.latent_size, generator=generator, device=device)
                inputs = {"z": z, "a": attributes, "x_noisy": v_next, "t": t}
                if representations is not None:
                    inputs["r"] = representations
                v0 = self.networks.generator(inputs)
                if sampler == "progressive":
                    v_next = self.schedule.sample_posterior(v0, v_next, t, generator)
            return v0 if sampler == "one_step" else v_next


def load_dfg(path: os.PathLike | str, device: torch.device | str = "cpu") -> TrainedDFG:
    """Load a DFG checkpoint; raise :class:`UserError` when it is missing or invalid."""
    device = torch.device(device)
    payload = load_model_payload(path, CHECKPOINT_KIND, device)
    try:
        config = build_config(DFGConfig, payload["config"], f"{path}: config")
        dims = dict(payload["dims"])
        networks = DFGNetworks(config, dims["features_ce"], dims["features_sc"], dims["attributes"]).to(device)
        networks.load_state_dict(payload["state_dict"])
        trained = TrainedDFG(
            config=config,
            networks=networks.eval(),
            store_sha256=str(payload["store_sha256"]),
            ratio=float(payload["ratio"]),
            seed=int(payload["seed"]),
            protocol=str(payload["protocol"]),
            dims=dims,
            scaler_ce=scaler_from_state(payload["scaler_ce"]),
            scaler_sc=scaler_from_state(payload["scaler_sc"]),
            attributes=payload["attributes"].cpu().numpy(),
            drg_sha256=payload["drg_sha256"],
            schedule=DiffusionSchedule.create(
                config.diffusion.num_steps, config.diffusion.beta_min, config.diffusion.beta_max, device
            ),
            device=device,
        )
    except (KeyError, RuntimeError, TypeError) as error:
        raise UserError(f"{path}: invalid DFG checkpoint ({type(error).__name__}: {error}); re-run train-dfg") from None
    for parameter in trained.networks.parameters():
        parameter.requires_grad_(False)
    return trained
