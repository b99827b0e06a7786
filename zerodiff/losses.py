"""Losses of the DRG and the DFG: WGAN-GP terms, mutual learning, VAE and feedback terms.

Critics score real and fake samples in one concatenated forward pass and the
interpolated samples in a second one (:func:`score_critic`); the scores then
serve the Wasserstein estimate, the gradient penalty, the mutual-learning loss
and the diagnostics without further passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

MutualDistance = Literal["squared", "l1"]
MutualWeighting = Literal["mean", "kappa"]

DIFFUSION_CRITIC = "diff"


@dataclass
class CriticScores:
    """A critic's scores on one batch: ``real`` and ``fake`` [B], and the raw gradient penalty."""

    real: torch.Tensor
    fake: torch.Tensor
    penalty: torch.Tensor

    @property
    def wasserstein(self) -> torch.Tensor:
        """Per-sample Wasserstein estimate critic(real) - critic(fake), [B]."""
        return self.real - self.fake


def gradient_penalty(scores: torch.Tensor, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Return mean over rows of (||d scores / d inputs||_2 - 1)^2 (WGAN-GP, Gulrajani et al. 2017).

    ``scores`` [B] come from a critic evaluated on ``inputs`` (each [B, ...] and
    requiring grad); the gradient norm is taken per row over all inputs together.
    The graph is kept so that the penalty can be minimised.
    """
    gradients = torch.autograd.grad(scores.sum(), list(inputs), create_graph=True)
    norms = torch.cat([gradient.flatten(1) for gradient in gradients], dim=1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()


def score_critic(
    critic: nn.Module,
    real: Mapping[str, torch.Tensor],
    fake: Mapping[str, torch.Tensor],
    interpolated: Sequence[str],
    alpha: torch.Tensor,
) -> CriticScores:
    """Score real and fake samples in one forward pass of ``critic`` and interpolated samples in another.

    ``real`` and ``fake`` map the critic's input names to [B, ...] tensors. The
    inputs named in ``interpolated`` are mixed as alpha real + (1 - alpha) fake
    with one ``alpha`` [B, 1] per row, and the penalty is taken with respect to
    them; the other inputs are conditions and keep their real values there.
    Batching real and fake rows is exact because the critics contain no
    batch-dependent layer. The interpolated rows get their own pass because the
    penalty's gradient and double backward then run on B rows; in a joint pass
    they would run on all 3B rows, two thirds of them zero gradients.
    """
    batch = alpha.shape[0]
    joint = {name: torch.cat([real[name], fake[name]]) for name in critic.input_names}
    real_scores, fake_scores = critic(joint).squeeze(1).split(batch)
    mixed = {name: (alpha * real[name] + (1.0 - alpha) * fake[name]).requires_grad_(True) for name in interpolated}
    mixed_scores = critic({**real, **mixed}).squeeze(1)
    penalty = gradient_penalty(mixed_scores, [mixed[name] for name in interpolated])
    return CriticScores(real=real_scores, fake=fake_scores, penalty=penalty)


def critic_loss(scores: CriticScores, penalty_weight: float) -> torch.Tensor:
    """Return the WGAN-GP critic loss E[D(fake)] - E[D(real)] + penalty_weight * GP."""
    return scores.fake.mean() - scores.real.mean() + penalty_weight * scores.penalty


def generator_adversarial_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Return the WGAN generator loss -E[D(fake)]."""
    return -fake_scores.mean()


def mutual_step_weight(marginal_mean: torch.Tensor, t: torch.Tensor, weighting: MutualWeighting, gamma: float) -> torch.Tensor:
    """Return the per-sample weight of the pairs that involve the diffusion critic, [B].

    ``mean`` (released code): m_t^gamma, which shrinks as t grows.
    ``kappa`` (formula of the paper's Eq. 14): kappa_t^gamma with kappa_t = 1 - m_t, which grows with t.
    """
    mean = marginal_mean.index_select(0, t)
    base = mean if weighting == "mean" else 1.0 - mean
    return base.clamp(min=0.0) ** gamma


def mutual_learning_loss(
    wasserstein: Mapping[str, torch.Tensor], step_weight: torch.Tensor, distance: MutualDistance
) -> torch.Tensor:
    """Return the mutual-learning loss between per-sample Wasserstein estimates (Eq. 14).

    ``wasserstein`` maps critic names (``adv``, ``diff``, ``rep``) to [B] estimates.
    Every pair contributes a distance; pairs that involve ``diff`` are multiplied
    by ``step_weight`` [B]. ``l1`` (paper) is |x - y|; ``squared`` (released code)
    is (x - sg(y))^2 + (sg(x) - y)^2 with sg a stop-gradient, so each side is
    pulled towards a fixed copy of the other. The result is the mean over the
    batch of the weighted sum over pairs; with fewer than two critics it is 0.
    """
    names = sorted(wasserstein)
    total = None
    for first, second in combinations(names, 2):
        x, y = wasserstein[first], wasserstein[second]
        if distance == "l1":
            pair = (x - y).abs()
        else:
            pair = (x - y.detach()) ** 2 + (x.detach() - y) ** 2
        if DIFFUSION_CRITIC in (first, second):
            pair = step_weight * pair
        total = pair if total is None else total + pair
    if total is None:
        return step_weight.new_zeros(())
    return total.mean()


def vae_loss(reconstruction: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Return the f-VAEGAN VAE loss: per-sample summed binary cross-entropy plus KL, averaged over the batch.

    KL(N(mu, exp(logvar)) || N(0, I)) = -0.5 sum(1 + logvar - mu^2 - exp(logvar)).
    ``target`` must lie in [0, 1] (min-max scaled training features).
    """
    reconstruction_term = F.binary_cross_entropy(reconstruction, target, reduction="none").sum(dim=1)
    kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
    return (reconstruction_term + kl).mean()


def attribute_reconstruction_loss(predicted: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Return the feedback decoder's loss: squared error summed over attributes, averaged over the batch."""
    return (predicted - attributes).pow(2).sum(dim=1).mean()


class AdaptivePenaltyWeight:
    """The gradient-penalty weight adapted as in TF-VAEGAN's released code.

    After each generator step, :meth:`update` receives the raw penalty
    E[(||grad|| - 1)^2] averaged over the critic steps since the last update (the
    released code divides the weighted sum by gamma_adv and the current weight,
    which gives the same number). Above ``upper`` the weight is multiplied by
    ``factor``; below ``lower`` it is divided by it.
    """

    def __init__(self, initial: float, enabled: bool, upper: float = 1.05, lower: float = 1.001, factor: float = 1.1) -> None:
        self.value = initial
        self.enabled = enabled
        self.upper = upper
        self.lower = lower
        self.factor = factor

    def update(self, mean_penalty: float) -> None:
        if not self.enabled:
            return
        if mean_penalty > self.upper:
            self.value *= self.factor
        elif mean_penalty < self.lower:
            self.value /= self.factor
