"""The diffusion schedule shared by the DRG and the DFG, and its two samplers.

The forward chain is the variance-preserving SDE discretised into ``T`` steps, as
in Denoising Diffusion GAN (Xiao et al., 2022). One naming system is used
throughout, with k the step index:

* ``s_k = eps + (1 - eps) * k / T`` for k = 0..T, with ``eps = 1e-3``;
* ``var(s) = 1 - exp(-0.5 s^2 (beta_max - beta_min) - s beta_min)``;
* ``alpha_bar_k = 1 - var(s_k)`` and ``beta_k = 1 - alpha_bar_k / alpha_bar_{k-1}``
  for k = 1..T.

Two families of arrays are derived from ``beta_k``:

* the *prior* arrays (length T + 1) prepend ``beta_0 = 1e-8``:
  ``sqrt_alphas = sqrt(1 - beta_k)``, the marginal mean coefficient
  ``marginal_mean[k] = prod_{j <= k} sqrt_alphas[j]`` (m_k) and the marginal standard
  deviation ``marginal_std[k] = sqrt(1 - m_k^2)`` (sigma_bar_k);
* the *posterior* arrays (length T) use ``beta_1..beta_T``: ``alphas = 1 - beta``,
  ``alphas_cumprod``, ``alphas_cumprod_prev`` (1 prepended), the posterior variance
  ``beta (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)`` and the posterior mean
  coefficients ``c1 = beta sqrt(alphas_cumprod_prev) / (1 - alphas_cumprod)`` and
  ``c2 = (1 - alphas_cumprod_prev) sqrt(alphas) / (1 - alphas_cumprod)``.

A training pair is drawn at a step t in {0..T-1}; posterior index t is the step
from x_{t+1} back to x_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SCHEDULE_EPS = 1e-3  # start of the continuous time grid, avoids var(0) = 0
PRIOR_BETA_0 = 1e-8  # beta prepended to the prior arrays
POSTERIOR_LOG_VARIANCE_FLOOR = 1e-20  # variance floor before taking the log


def vp_variance(s: np.ndarray, beta_min: float, beta_max: float) -> np.ndarray:
    """Return the marginal variance of the VP SDE at continuous times ``s`` in [0, 1].

    >>> float(vp_variance(np.array([0.0]), 0.1, 20.0)[0])
    0.0
    """
    return 1.0 - np.exp(-0.5 * s**2 * (beta_max - beta_min) - s * beta_min)


@dataclass(frozen=True)
class DiffusionSchedule:
    """The prior and posterior arrays of a T-step schedule, as float32 tensors.

    Build it with :meth:`create`. Every array is computed in float64 and stored
    as float32 on ``device``.
    """

    num_steps: int
    beta_min: float
    beta_max: float
    # Prior arrays, length T + 1.
    prior_betas: torch.Tensor
    sqrt_alphas: torch.Tensor
    marginal_mean: torch.Tensor
    marginal_std: torch.Tensor
    # Posterior arrays, length T.
    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_log_variance: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor

    @classmethod
    def create(
        cls, num_steps: int, beta_min: float, beta_max: float, device: torch.device | str = "cpu"
    ) -> DiffusionSchedule:
        """Compute the schedule for ``num_steps`` steps (T) between ``beta_min`` and ``beta_max``."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be at least 1, got {num_steps}")
        if not 0 < beta_min < beta_max:
            raise ValueError(f"expected 0 < beta_min < beta_max, got {beta_min} and {beta_max}")

        # Step 1: the time grid and the per-step betas of the VP SDE.
        grid = SCHEDULE_EPS + (1.0 - SCHEDULE_EPS) * np.arange(num_steps + 1, dtype=np.float64) / num_steps
        alpha_bar = 1.0 - vp_variance(grid, beta_min, beta_max)
        betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]

        # Step 2: prior arrays, q(x_k | x_0) = N(m_k x_0, sigma_bar_k^2 I).
        prior_betas = np.concatenate([[PRIOR_BETA_0], betas])
        sqrt_alphas = np.sqrt(1.0 - prior_betas)
        marginal_mean = np.cumprod(sqrt_alphas)
        marginal_std = np.sqrt(1.0 - marginal_mean**2)

        # Step 3: posterior arrays, q(x_t | x_{t+1}, x_0) = N(c1 x_0 + c2 x_{t+1}, variance).
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        posterior_log_variance = np.log(np.maximum(posterior_variance, POSTERIOR_LOG_VARIANCE_FLOOR))
        coef1 = betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        coef2 = (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - alphas_cumprod)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.tensor(array, dtype=torch.float32, device=device)

        return cls(
            num_steps=num_steps,
            beta_min=beta_min,
            beta_max=beta_max,
            prior_betas=tensor(prior_betas),
            sqrt_alphas=tensor(sqrt_alphas),
            marginal_mean=tensor(marginal_mean),
            marginal_std=tensor(marginal_std),
            betas=tensor(betas),
            alphas=tensor(alphas),
            alphas_cumprod=tensor(alphas_cumprod),
            alphas_cumprod_prev=tensor(alphas_cumprod_prev),
            posterior_variance=tensor(posterior_variance),
            posterior_log_variance=tensor(posterior_log_variance),
            posterior_mean_coef1=tensor(coef1),
            posterior_mean_coef2=tensor(coef2),
        )

    def sample_steps(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw training steps t uniformly from {0, ..., T-1}; returns int64 [batch_size]."""
        device = self.betas.device
        return torch.randint(0, self.num_steps, (batch_size,), generator=generator, device=device)

    def q_sample(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """Return x_t = m_t x0 + sigma_bar_t noise, a draw from q(x_t | x_0) with noise ~ N(0, I)."""
        return _per_row(self.marginal_mean, t) * x0 + _per_row(self.marginal_std, t) * noise

    def q_sample_pairs(
        self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the forward pair (x_t, x_{t+1}) for clean samples ``x0`` [B, D] at steps ``t`` [B].

        x_t = m_t x0 + sigma_bar_t eps and x_{t+1} = sqrt(1 - beta_{t+1}) x_t + sqrt(beta_{t+1}) eps',
        with eps and eps' independent standard normal draws.
        """
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, t, noise)
        step_noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_next = _per_row(self.sqrt_alphas, t + 1) * x_t + _per_row(self.prior_betas, t + 1).sqrt() * step_noise
        return x_t, x_next

    def posterior_mean(self, x0: torch.Tensor, x_next: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Return the mean c1_t x0 + c2_t x_{t+1} of q(x_t | x_{t+1}, x_0)."""
        return _per_row(self.posterior_mean_coef1, t) * x0 + _per_row(self.posterior_mean_coef2, t) * x_next

    def sample_posterior(
        self, x0: torch.Tensor, x_next: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_{t+1}, x_0) given a clean estimate ``x0``; rows with t = 0 get the mean.

        x_t = c1_t x0 + c2_t x_{t+1} + [t > 0] exp(0.5 log posterior_variance_t) eps.
        """
        mean = self.posterior_mean(x0, x_next, t)
        noise = torch.randn(x_next.shape, generator=generator, device=x_next.device, dtype=x_next.dtype)
        nonzero = (t > 0).to(x_next.dtype).unsqueeze(1)
        return mean + nonzero * (0.5 * _per_row(self.posterior_log_variance, t)).exp() * noise


def _per_row(array: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Gather ``array[t]`` as a [B, 1] column that broadcasts over feature dimensions."""
    return array.index_select(0, t).unsqueeze(1)
