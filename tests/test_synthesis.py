"""Synthesis: shapes, labels, determinism, both samplers and the model checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_drg_dfg import run_both, write_inputs
from typer.testing import CliRunner

from zerodiff.atomic import sha256_file
from zerodiff.dfg import load_dfg
from zerodiff.drg import load_drg
from zerodiff.errors import UserError
from zerodiff.store import read_store
from zerodiff.synthesis import SynthesisConfig, check_models_agree, samples_per_class, synthesize
from zerodiff.synthetic import read_synthetic

CPU = torch.device("cpu")
CONFIG = SynthesisConfig(per_class={1.0: 7, 0.3: 3}, per_class_default=10, batch_size=5, device="cpu")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthesis")
    store_path, manifest_path = write_inputs(folder)
    drg_path, dfg_path = run_both(folder, (store_path, manifest_path))
    return {"folder": folder, "store": store_path, "manifest": manifest_path, "drg": drg_path, "dfg": dfg_path}


def generate(models, config=CONFIG):
    return synthesize(read_store(models["store"]), "standard", 1.0, load_drg(models["drg"]), load_dfg(models["dfg"]), config, CPU)


@pytest.mark.parametrize("sampler", ["one_step", "progressive"])
def test_synthesis_shapes_and_labels(models, sampler):
    synthetic = generate(models, dataclasses.replace(CONFIG, sampler=sampler))
    assert synthetic.features_ce.shape == (14, 6)
    assert synthetic.features_sc.shape == (14, 4)
    np.testing.assert_array_equal(synthetic.labels, [3] * 7 + [4] * 7)
    assert np.isfinite(synthetic.features_ce).all()
    # The generators end in a sigmoid.
    assert synthetic.features_ce.min() >= 0
    assert synthetic.features_ce.max() <= 1
    assert synthetic.attrs["sampler"] == sampler
    assert synthetic.attrs["per_class"] == 7


@pytest.mark.parametrize("sampler", ["one_step", "progressive"])
def test_synthesis_is_deterministic_for_a_seed(models, sampler):
    config = dataclasses.replace(CONFIG, sampler=sampler)
    first, second = generate(models, config), generate(models, config)
    np.testing.assert_array_equal(first.features_ce, second.features_ce)
    np.testing.assert_array_equal(first.features_sc, second.features_sc)
    other = generate(models, dataclasses.replace(config, seed=1))
    assert not np.array_equal(first.features_ce, other.features_ce)


def test_samplers_differ(models):
    one_step = generate(models, dataclasses.replace(CONFIG, sampler="one_step"))
    progressive = generate(models, dataclasses.replace(CONFIG, sampler="progressive"))
    assert not np.array_equal(one_step.features_ce, progressive.features_ce)


def test_include_seen_adds_seen_classes(models):
    synthetic = generate(models, dataclasses.replace(CONFIG, include_seen=True))
    assert sorted(set(synthetic.labels.tolist())) == [0, 1, 2, 3, 4]


def test_samples_per_class_rule():
    table = {1.0: 200, 0.3: 60, 0.1: 20}
    assert samples_per_class(1.0, table, 200) == 200
    assert samples_per_class(0.1, table, 200) == 20
    assert samples_per_class(0.5, table, 200) == 100
    assert samples_per_class(0.001, table, 200) == 1


def test_invalid_per_class_is_rejected():
    with pytest.raises(UserError, match="per_class"):
        SynthesisConfig(per_class={1.5: 10})
    with pytest.raises(UserError, match="per_class"):
        SynthesisConfig(per_class={1.0: 0})


def test_check_models_rejects_other_drg(models, tmp_path):
    dfg = load_dfg(models["dfg"])
    drg = load_drg(models["drg"])
    store_hash = sha256_file(models["store"])
    check_models_agree(store_hash, drg, sha256_file(models["drg"]), dfg, "test")
    with pytest.raises(UserError, match="trained with the DRG"):
        check_models_agree(store_hash, drg, "0" * 64, dfg, "test")
    with pytest.raises(UserError, match="another feature store"):
        check_models_agree("f" * 64, drg, sha256_file(models["drg"]), dfg, "test")
    with pytest.raises(UserError, match="--drg is required"):
        check_models_agree(store_hash, None, None, dfg, "test")


def test_synthesize_stage_writes_file(models, tmp_path):
    import typer

    from stages import synthesize as stage

    app = typer.Typer()
    app.command()(stage.main)
    params = tmp_path / "params.yaml"
    params.write_text("synthesize:\n  per_class: {1.0: 5}\n  device: cpu\n")
    out = tmp_path / "synthetic.h5"
    arguments = ["--store", str(models["store"]), "--manifest", str(models["manifest"]), "--drg", str(models["drg"])]
    result = CliRunner().invoke(app, arguments + ["--dfg", str(models["dfg"]), "--out", str(out), "--params", str(params)])
    assert result.exit_code == 0, result.output
    synthetic = read_synthetic(out)
    assert synthetic.features_ce.shape == (10, 6)
    assert synthetic.attrs["dfg_sha256"] == sha256_file(models["dfg"])
    assert synthetic.attrs["drg_sha256"] == sha256_file(models["drg"])
    assert synthetic.attrs["store_sha256"] == sha256_file(models["store"])
    assert synthetic.attrs["sampler"] == "one_step"
