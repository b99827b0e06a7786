"""Networks: embeddings, input switches and batch independence."""

from __future__ import annotations

import math

import pytest
import torch

from zerodiff.dfg import DFGAblation, DFGConfig, DFGNetworks, GeneratorInputs
from zerodiff.errors import UserError
from zerodiff.nets import ConditionalMLP, SemanticDecoder, count_parameters, sinusoidal_embedding

D_CE, D_SC, A = 6, 4, 3


def test_sinusoidal_embedding_values():
    embedding = sinusoidal_embedding(torch.tensor([0, 3]), 4)
    # Frequencies for dim 4: 10000^0 = 1 and 10000^(-1/2) = 0.01.
    expected = torch.tensor([[0.0, 0.0, 1.0, 1.0], [math.sin(3), math.sin(0.03), math.cos(3), math.cos(0.03)]])
    torch.testing.assert_close(embedding, expected)


def test_conditional_mlp_is_batch_independent():
    torch.manual_seed(0)
    net = ConditionalMLP({"x": 5}, 16, 2, time_dim=4, representation_dims=(3, 4))
    inputs = {"x": torch.rand(6, 5), "t": torch.tensor([0, 1, 2, 3, 0, 1]), "r": torch.rand(6, 3)}
    together = net(inputs)
    separate = torch.cat([net({k: v[i : i + 1] for k, v in inputs.items()}) for i in range(6)])
    torch.testing.assert_close(together, separate)


def test_conditional_mlp_sigmoid_range():
    net = ConditionalMLP({"x": 3}, 8, 4, sigmoid=True)
    out = net({"x": torch.randn(10, 3) * 100})
    assert bool(((out >= 0) & (out <= 1)).all())


def test_semantic_decoder_shapes():
    decoder = SemanticDecoder(D_CE, 7, A)
    attributes, hidden = decoder(torch.rand(2, D_CE))
    assert attributes.shape == (2, A)
    assert hidden.shape == (2, 7)


def networks(**changes) -> DFGNetworks:
    ablation = {key: changes.pop(key) for key in list(changes) if key in DFGAblation.__dataclass_fields__}
    inputs = {key[len("input_") :]: changes.pop(key) for key in list(changes) if key.startswith("input_")}
    config = DFGConfig(hidden=8, ablation=DFGAblation(**ablation), inputs=GeneratorInputs(**inputs), **changes)
    return DFGNetworks(config, D_CE, D_SC, A)


@pytest.mark.parametrize(("switch", "attribute"), [("d_adv", "critic_adv"), ("d_diff", "critic_diff"), ("d_rep", "critic_rep"), ("decoder", "decoder")])
def test_ablation_switch_removes_module(switch, attribute):
    full = networks()
    # Three critics need the mutual loss off once two of them are gone; one removed keeps it valid.
    ablated = networks(**{switch: False})
    assert getattr(full, attribute) is not None
    assert getattr(ablated, attribute) is None
    assert count_parameters(ablated) < count_parameters(full)


def test_input_switches_remove_generator_parameters():
    full = networks().generator
    assert full.time_embedding is not None and full.representation_embedding is not None
    assert networks(input_t=False).generator.time_embedding is None
    assert networks(input_r0=False).generator.representation_embedding is None
    width = full.hidden.in_features
    assert networks(input_a=False).generator.hidden.in_features == width - A
    assert networks(input_v_t=False).generator.hidden.in_features == width - D_CE
    assert set(networks(input_a=False, input_v_t=False).generator.input_names) == {"z", "t", "r"}


def test_drg_ablation_removes_representation_everywhere():
    baseline = networks(drg=False, d_rep=False, input_r0=False)
    assert baseline.critic_rep is None
    assert baseline.critic_diff.representation_embedding is None
    assert baseline.generator.representation_embedding is None


def test_drg_ablation_requires_consistent_switches():
    with pytest.raises(UserError, match="ablation.drg: false"):
        DFGConfig(ablation=DFGAblation(drg=False))


def test_mutual_loss_requires_two_critics():
    with pytest.raises(UserError, match="at least two critics"):
        DFGConfig(ablation=DFGAblation(d_diff=False, d_rep=False))
