"""The diffusion schedule against independent computations, and its samplers' statistics."""

from __future__ import annotations

import math

import pytest
import torch

from zerodiff.diffusion import DiffusionSchedule

T, BETA_MIN, BETA_MAX = 4, 0.1, 20.0


def reference_betas() -> list[float]:
    """Per-step betas of the VP SDE, written out with the math module."""
    eps = 1e-3
    times = [eps + (1 - eps) * k / T for k in range(T + 1)]
    alpha_bar = [math.exp(-0.5 * s * s * (BETA_MAX - BETA_MIN) - s * BETA_MIN) for s in times]
    return [1 - alpha_bar[k] / alpha_bar[k - 1] for k in range(1, T + 1)]


@pytest.fixture
def schedule() -> DiffusionSchedule:
    return DiffusionSchedule.create(T, BETA_MIN, BETA_MAX)


def assert_close(actual: torch.Tensor, expected: list[float]) -> None:
    assert actual.shape == (len(expected),)
    torch.testing.assert_close(actual.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=1e-7)


def test_schedule_betas_match_reference(schedule):
    betas = reference_betas()
    assert_close(schedule.betas, betas)
    assert_close(schedule.prior_betas, [1e-8] + betas)
    # Pinned values, so that a change of formula shows up even if the reference changes with it.
    assert schedule.betas[0].item() == pytest.approx(0.4783, abs=1e-4)
    assert schedule.betas[-1].item() == pytest.approx(0.9874, abs=1e-4)


def test_schedule_prior_arrays_match_reference(schedule):
    prior = [1e-8] + reference_betas()
    sqrt_alphas = [math.sqrt(1 - b) for b in prior]
    means = []
    product = 1.0
    for value in sqrt_alphas:
        product *= value
        means.append(product)
    assert_close(schedule.sqrt_alphas, sqrt_alphas)
    assert_close(schedule.marginal_mean, means)
    assert_close(schedule.marginal_std, [math.sqrt(1 - m * m) for m in means])


def test_schedule_posterior_arrays_match_reference(schedule):
    betas = reference_betas()
    alphas = [1 - b for b in betas]
    cumprod = [math.prod(alphas[: k + 1]) for k in range(T)]
    previous = [1.0] + cumprod[:-1]
    assert_close(schedule.alphas_cumprod, cumprod)
    assert_close(schedule.alphas_cumprod_prev, previous)
    assert_close(schedule.posterior_variance, [betas[k] * (1 - previous[k]) / (1 - cumprod[k]) for k in range(T)])
    assert_close(schedule.posterior_mean_coef1, [betas[k] * math.sqrt(previous[k]) / (1 - cumprod[k]) for k in range(T)])
    assert_close(
        schedule.posterior_mean_coef2, [(1 - previous[k]) * math.sqrt(alphas[k]) / (1 - cumprod[k]) for k in range(T)]
    )


@pytest.mark.parametrize("step", range(T))
def test_forward_pairs_have_marginal_statistics(schedule, step):
    rows, dims = 20000, 3
    x0 = torch.tensor([[0.8, -0.3, 0.1]]).expand(rows, dims)
    t = torch.full((rows,), step, dtype=torch.int64)
    generator = torch.Generator().manual_seed(step)
    x_t, x_next = schedule.q_sample_pairs(x0, t, generator)
    means = reference_marginal_means()
    for sample, k in ((x_t, step), (x_next, step + 1)):
        expected_mean = means[k] * x0[0]
        expected_var = 1 - means[k] ** 2
        torch.testing.assert_close(sample.mean(0), expected_mean, atol=0.03, rtol=0)
        torch.testing.assert_close(sample.var(0), torch.full((dims,), expected_var), atol=0.03 + 0.03 * expected_var, rtol=0)


def reference_marginal_means() -> list[float]:
    prior = [1e-8] + reference_betas()
    return [math.prod(math.sqrt(1 - b) for b in prior[: k + 1]) for k in range(T + 1)]


@pytest.mark.parametrize("step", range(1, T))
def test_posterior_mean_is_bayes_posterior(schedule, step):
    betas = reference_betas()
    beta = betas[step]
    alpha_bar_prev = math.prod(1 - b for b in betas[:step])
    x0 = torch.tensor([[0.5, -1.0]])
    x_next = torch.tensor([[0.2, 0.7]])
    # Gaussian product: N(x_next; sqrt(1 - beta) x_t, beta) N(x_t; sqrt(alpha_bar_prev) x0, 1 - alpha_bar_prev).
    precision = (1 - beta) / beta + 1 / (1 - alpha_bar_prev)
    expected = (math.sqrt(1 - beta) / beta * x_next + math.sqrt(alpha_bar_prev) / (1 - alpha_bar_prev) * x0) / precision
    t = torch.tensor([step])
    torch.testing.assert_close(schedule.posterior_mean(x0, x_next, t), expected, rtol=1e-5, atol=1e-6)
    assert schedule.posterior_variance[step].item() == pytest.approx(1 / precision, rel=1e-5)


def test_posterior_step_zero_returns_estimate(schedule):
    x0 = torch.rand(5, 4)
    x_next = torch.randn(5, 4)
    t = torch.zeros(5, dtype=torch.int64)
    sample = schedule.sample_posterior(x0, x_next, t, torch.Generator().manual_seed(0))
    torch.testing.assert_close(sample, x0, rtol=1e-5, atol=1e-6)


def test_posterior_sample_has_posterior_variance(schedule):
    rows = 20000
    x0 = torch.zeros(rows, 2)
    x_next = torch.ones(rows, 2)
    t = torch.full((rows,), 2, dtype=torch.int64)
    sample = schedule.sample_posterior(x0, x_next, t, torch.Generator().manual_seed(1))
    variance = schedule.posterior_variance[2].item()
    torch.testing.assert_close(sample.var(0), torch.full((2,), variance), atol=0.05 * variance, rtol=0)


def test_schedule_rejects_invalid_betas():
    with pytest.raises(ValueError, match="beta_min < beta_max"):
        DiffusionSchedule.create(4, 20.0, 0.1)
