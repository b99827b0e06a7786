"""Losses against hand computations on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zerodiff.losses import (
    AdaptivePenaltyWeight,
    gradient_penalty,
    mutual_learning_loss,
    mutual_step_weight,
    score_critic,
    vae_loss,
)
from zerodiff.nets import ConditionalMLP


class LinearCritic(torch.nn.Module):
    """D(x, r) = w_x . x + w_r . r + b, whose input gradient is (w_x, w_r) everywhere."""

    input_names = ("x", "r")

    def __init__(self) -> None:
        super().__init__()
        self.w_x = torch.nn.Parameter(torch.tensor([0.5, -1.0]))
        self.w_r = torch.nn.Parameter(torch.tensor([2.0]))
        self.b = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, inputs):
        return (inputs["x"] @ self.w_x + inputs["r"] @ self.w_r + self.b).unsqueeze(1)


def test_gradient_penalty_of_linear_critic():
    critic = LinearCritic()
    x = torch.randn(4, 2, requires_grad=True)
    r = torch.randn(4, 1)
    penalty = gradient_penalty(critic({"x": x, "r": r}).squeeze(1), [x])
    # ||w_x|| = sqrt(0.25 + 1), the same for every row.
    assert penalty.item() == pytest.approx((math.sqrt(1.25) - 1) ** 2, rel=1e-6)


def test_gradient_penalty_over_two_inputs():
    critic = LinearCritic()
    x = torch.randn(3, 2, requires_grad=True)
    r = torch.randn(3, 1, requires_grad=True)
    penalty = gradient_penalty(critic({"x": x, "r": r}).squeeze(1), [x, r])
    assert penalty.item() == pytest.approx((math.sqrt(1.25 + 4.0) - 1) ** 2, rel=1e-6)


def test_gradient_penalty_of_quadratic_critic():
    x = torch.tensor([[1.0, 2.0], [0.0, 0.5]], requires_grad=True)
    scores = (x**2).sum(dim=1)  # gradient 2x
    expected = ((2 * math.sqrt(5.0) - 1) ** 2 + (2 * 0.5 - 1) ** 2) / 2
    assert gradient_penalty(scores, [x]).item() == pytest.approx(expected, rel=1e-6)


def test_gradient_penalty_is_differentiable_in_critic_weights():
    critic = LinearCritic()
    x = torch.randn(2, 2, requires_grad=True)
    penalty = gradient_penalty(critic({"x": x, "r": torch.zeros(2, 1)}).squeeze(1), [x])
    penalty.backward()
    norm = math.sqrt(1.25)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    expected = 2 * (norm - 1) * torch.tensor([0.5, -1.0]) / norm
    torch.testing.assert_close(critic.w_x.grad, expected)


def test_score_critic_matches_separate_passes():
    torch.manual_seed(0)
    critic = ConditionalMLP({"x": 3, "a": 2}, 8, 1)
    real = {"x": torch.rand(5, 3), "a": torch.rand(5, 2)}
    fake = {"x": torch.rand(5, 3), "a": real["a"]}
    alpha = torch.rand(5, 1)
    scores = score_critic(critic, real, fake, ["x"], alpha)
    torch.testing.assert_close(scores.real, critic(real).squeeze(1))
    torch.testing.assert_close(scores.fake, critic(fake).squeeze(1))
    mixed = (alpha * real["x"] + (1 - alpha) * fake["x"]).requires_grad_(True)
    expected_penalty = gradient_penalty(critic({"x": mixed, "a": real["a"]}).squeeze(1), [mixed])
    torch.testing.assert_close(scores.penalty, expected_penalty)
    torch.testing.assert_close(scores.wasserstein, scores.real - scores.fake)


# Hand-made Wasserstein estimates for two samples at steps t = (0, 2).
W = {"adv": torch.tensor([1.0, 2.0]), "diff": torch.tensor([0.0, 4.0]), "rep": torch.tensor([3.0, 1.0])}
STEP_WEIGHT = torch.tensor([0.5, 0.25])


def test_mutual_loss_l1_by_hand():
    # Row 0: |1-0|*0.5 + |1-3| + |0-3|*0.5 = 0.5 + 2 + 1.5 = 4.0
    # Row 1: |2-4|*0.25 + |2-1| + |4-1|*0.25 = 0.5 + 1 + 0.75 = 2.25
    loss = mutual_learning_loss(W, STEP_WEIGHT, "l1")
    assert loss.item() == pytest.approx((4.0 + 2.25) / 2)


def test_mutual_loss_squared_by_hand():
    # Each pair contributes 2 (x - y)^2 in value.
    row0 = 2 * (1 * 0.5 + 4 + 9 * 0.5)
    row1 = 2 * (4 * 0.25 + 1 + 9 * 0.25)
    loss = mutual_learning_loss(W, STEP_WEIGHT, "squared")
    assert loss.item() == pytest.approx((row0 + row1) / 2)


def test_mutual_loss_squared_gradient_uses_stop_gradient():
    x = torch.tensor([1.0], requires_grad=True)
    y = torch.tensor([3.0], requires_grad=True)
    mutual_learning_loss({"adv": x, "rep": y}, torch.ones(1), "squared").backward()
    # (x - sg(y))^2 + (sg(x) - y)^2: d/dx = 2 (x - y), d/dy = -2 (x - y).
    assert x.grad.item() == pytest.approx(-4.0)
    assert y.grad.item() == pytest.approx(4.0)


def test_mutual_loss_needs_two_critics():
    assert mutual_learning_loss({"adv": torch.ones(3)}, torch.ones(3), "l1").item() == 0.0


@pytest.mark.parametrize(
    ("weighting", "expected"),
    [("mean", [0.9**1.5, 0.4**1.5]), ("kappa", [0.1**1.5, 0.6**1.5])],
)
def test_mutual_step_weight(weighting, expected):
    marginal_mean = torch.tensor([0.9, 0.7, 0.4])
    weight = mutual_step_weight(marginal_mean, torch.tensor([0, 2]), weighting, 1.5)
    torch.testing.assert_close(weight, torch.tensor(expected))


def test_vae_loss_by_hand():
    reconstruction = torch.tensor([[0.25, 0.5]])
    target = torch.tensor([[0.0, 1.0]])
    mu = torch.tensor([[1.0]])
    logvar = torch.tensor([[0.0]])
    bce = -math.log(0.75) - math.log(0.5)
    kl = 0.5 * (1.0 + 1.0 - 1.0 - 0.0)  # 0.5 (mu^2 + var - 1 - logvar)
    assert vae_loss(reconstruction, target, mu, logvar).item() == pytest.approx(bce + kl, rel=1e-6)
    assert F.binary_cross_entropy(reconstruction, target, reduction="sum").item() == pytest.approx(bce, rel=1e-6)


def test_adaptive_penalty_weight_rules():
    weight = AdaptivePenaltyWeight(10.0, enabled=True)
    weight.update(1.2)
    assert weight.value == pytest.approx(11.0)
    weight.update(0.5)
    assert weight.value == pytest.approx(10.0)
    weight.update(1.02)
    assert weight.value == pytest.approx(10.0)
    fixed = AdaptivePenaltyWeight(10.0, enabled=False)
    fixed.update(5.0)
    assert fixed.value == 10.0
