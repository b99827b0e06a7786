"""The generator benchmark's functions at toy sizes: data, FLOP count and one timed iteration."""

from __future__ import annotations

import pytest
import torch

from bench.bench_generators import (
    BenchSizes,
    build_trainer,
    count_flops,
    flops_per_iteration,
    main,
    measure_matmul,
    synthetic_training_data,
    time_iterations,
)

CPU = torch.device("cpu")
TOY = BenchSizes(
    features_ce=6,
    features_sc=4,
    attributes=3,
    seen_classes=3,
    unseen_classes=2,
    samples=40,
    hidden=5,
    latent_size=2,
    time_embedding=2,
    batch_size=4,
    critic_iter=2,
)


@pytest.fixture(scope="module")
def toy_data():
    return synthetic_training_data(TOY, CPU, seed=0)


def test_synthetic_data_shapes_and_ranges(toy_data):
    assert toy_data.features_ce.shape == (40, 6)
    assert toy_data.features_sc.shape == (40, 4)
    assert toy_data.attributes.shape == (5, 3)
    assert set(toy_data.labels.tolist()) == {0, 1, 2}
    assert float(toy_data.features_ce.min()) >= 0.0
    assert float(toy_data.features_ce.max()) <= 1.0
    torch.testing.assert_close(toy_data.attributes.norm(dim=1), torch.ones(5))
    assert toy_data.dims == {"features_ce": 6, "features_sc": 4, "attributes": 3, "classes": 5}


def test_drg_flops_by_hand(toy_data):
    trainer = build_trainer("drg", TOY, toy_data, CPU)
    # Forward FLOPs per row, 2*k*n per linear layer:
    #   generator: time MLP 2->2->2 (8 + 8), hidden (2 + 3 + 4 + 2) -> 5 (110), output 5 -> 4 (40): 166
    #   critic_adv: hidden (4 + 3) -> 5 (70), output 5 -> 1 (10): 80; penalty path the same 80
    #   critic_diff: time MLP 16, hidden (4 + 4 + 3 + 2) -> 5 (130), output 10: 156; penalty path 140
    # Critic step at batch 4: generator 4*166, each critic 3 x (12 rows) forward + backward,
    # and 3 x (4 rows) penalty gradient + double backward.
    critic_step = 4 * 166 + 3 * 12 * 80 + 3 * 4 * 80 + 3 * 12 * 156 + 3 * 4 * 140
    # Generator step: the generator forward + backward, frozen critics forward + input gradients.
    generator_step = 3 * 4 * 166 + 2 * 4 * 80 + 2 * 4 * 156
    assert critic_step == 11800
    assert flops_per_iteration(count_flops(trainer), TOY.critic_iter) == 2 * critic_step + generator_step


def test_dfg_flops_cover_every_network(toy_data):
    trainer = build_trainer("dfg", TOY, toy_data, CPU)
    terms = count_flops(trainer)
    counted = {term.network for term in terms}
    trained = {name for name, module in trainer.networks.named_children() if module is not None}
    assert trained == {"generator", "encoder", "critic_adv", "critic_diff", "critic_rep", "decoder"}
    assert counted == trained
    # The generator step runs G on the reconstruction and the adversarial rows together.
    generator_terms = [term for term in terms if term.step == "generator" and term.network == "generator"]
    assert [term.rows for term in generator_terms] == [2 * TOY.batch_size]


@pytest.mark.parametrize("kind", ["drg", "dfg"])
def test_one_timed_iteration_trains(toy_data, kind):
    trainer = build_trainer(kind, TOY, toy_data, CPU)
    before = [parameter.detach().clone() for parameter in trainer.networks.generator.parameters()]
    seconds = time_iterations(trainer, warmup=0, iterations=1, device=CPU)
    assert len(seconds) == 1
    assert seconds[0] > 0
    after = list(trainer.networks.generator.parameters())
    assert any(not torch.equal(old, new) for old, new in zip(before, after))


def test_matmul_throughput_is_positive():
    assert measure_matmul((8, 8, 8), CPU, repeats=1) > 0


def test_main_prints_every_figure(capsys):
    results = main(["--iterations", "1", "--warmup", "0", "--matmul-repeats", "1"], sizes=TOY, matmul_shapes=[(8, 8, 8)])
    output = capsys.readouterr().out
    assert set(results) == {"drg", "dfg"}
    for text in (
        "seconds per generator iteration",
        "critic samples per second",
        "training samples per second",
        "model FLOPs per generator iteration",
        "of the best measured matmul throughput",
        "peak resident set size",
        "released code: 4.87 s",
        "released code: 2.53 s",
    ):
        assert text in output
