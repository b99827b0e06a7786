"""Shrunk DRG and DFG runs: checkpoints, diagnostics, determinism, resume and rejected inputs."""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

import pytest
import torch
from conftest import make_store
from typer.testing import CliRunner

from zerodiff import dfg as dfg_module
from zerodiff.atomic import sha256_file
from zerodiff.dfg import DFGAblation, DFGConfig, GeneratorInputs, check_drg_matches, load_dfg, save_dfg, train_dfg
from zerodiff.drg import DRGConfig, load_drg, save_drg, train_drg
from zerodiff.errors import UserError
from zerodiff.store import write_store
from zerodiff.subset import SubsetManifest, sample_subset, write_manifest
from zerodiff.training import DiffusionConfig, load_training_data

CPU = torch.device("cpu")
SMALL = {"hidden": 16, "latent_size": 4, "time_embedding": 4, "epochs": 2, "batch_size": 16, "critic_iter": 2, "device": "cpu"}
DRG_SMALL = DRGConfig(**SMALL)
DFG_SMALL = DFGConfig(**SMALL, representation_embedding=4, decoder_hidden=8)


def write_inputs(folder: Path, seed: int = 0, d_sc: int | None = 4) -> tuple[Path, Path]:
    store = make_store(num_classes=5, unseen=(3, 4), per_class=24, d_ce=6, d_sc=d_sc, num_attributes=3, seed=seed)
    store_path, manifest_path = folder / "store.h5", folder / "subset.parquet"
    write_store(store_path, store)
    indices = sample_subset(store.labels, store.splits["trainval"], 1.0, 0)
    manifest = SubsetManifest(indices, store.labels[indices], 1.0, 0, "sampled", sha256_file(store_path))
    write_manifest(manifest_path, manifest)
    return store_path, manifest_path


def load(store_path: Path, manifest_path: Path, need_sc: bool = True):
    return load_training_data(
        store_path, manifest_path, scaler_fit="subset", normalize=True, need_sc=need_sc, stage="test", device=CPU
    )


def run_both(folder: Path, inputs: tuple[Path, Path], drg_config=DRG_SMALL, dfg_config=DFG_SMALL) -> tuple[Path, Path]:
    """Train DRG then DFG into ``folder`` and return the two checkpoint paths."""
    data = load(*inputs)
    drg_trainer, _ = train_drg(drg_config, data, device=CPU, diagnostics_path=folder / "plots_drg" / "diagnostics.tsv")
    drg_path = folder / "drg.pt"
    save_drg(drg_path, drg_trainer)
    drg = load_drg(drg_path)
    check_drg_matches(drg, drg_path, data, dfg_config)
    drg_hash = sha256_file(drg_path)
    dfg_trainer, _ = train_dfg(
        dfg_config, data, drg, device=CPU, drg_sha256=drg_hash, diagnostics_path=folder / "plots_dfg" / "diagnostics.tsv"
    )
    dfg_path = folder / "dfg.pt"
    save_dfg(dfg_path, dfg_trainer, drg_hash)
    return drg_path, dfg_path


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("trained")
    inputs = write_inputs(folder)
    drg_path, dfg_path = run_both(folder, inputs)
    return {"folder": folder, "store": inputs[0], "manifest": inputs[1], "drg": drg_path, "dfg": dfg_path}


def test_run_writes_checkpoints_and_diagnostics(trained):
    drg = load_drg(trained["drg"])
    dfg = load_dfg(trained["dfg"])
    assert drg.dims == {"features_ce": 6, "features_sc": 4, "attributes": 3, "classes": 5}
    assert dfg.store_sha256 == sha256_file(trained["store"])
    assert dfg.drg_sha256 == sha256_file(trained["drg"])
    assert (dfg.ratio, dfg.seed, dfg.protocol) == (1.0, 0, "standard")
    assert dfg.attributes.shape == (5, 3)
    assert dfg.scaler_sc is not None and dfg.has_decoder
    assert dfg.decoder_embedding(dfg.scaler_ce.transform(make_store(per_class=24).features_ce[:4])).shape == (4, 3 + 8)

    drg_rows = read_tsv(trained["folder"] / "plots_drg" / "diagnostics.tsv")
    dfg_rows = read_tsv(trained["folder"] / "plots_dfg" / "diagnostics.tsv")
    assert [row["epoch"] for row in dfg_rows] == ["1", "2"]
    assert {"delta_adv", "delta_diff", "wasserstein_adv"} <= set(drg_rows[0])
    expected = {"delta_adv", "delta_diff", "delta_rep", "wasserstein_rep", "mutual_loss", "penalty_weight", "vae_loss", "feedback_loss"}
    assert expected <= set(dfg_rows[0])


def test_repeated_run_is_bit_identical(trained, tmp_path):
    drg_path, dfg_path = run_both(tmp_path, (trained["store"], trained["manifest"]))
    for name, path in (("drg", drg_path), ("dfg", dfg_path)):
        first = torch.load(trained[name], weights_only=True)["state_dict"]
        second = torch.load(path, weights_only=True)["state_dict"]
        assert first.keys() == second.keys()
        for key in first:
            assert torch.equal(first[key], second[key]), f"{name} {key} differs"
    for plots in ("plots_drg", "plots_dfg"):
        assert (tmp_path / plots / "diagnostics.tsv").read_bytes() == (trained["folder"] / plots / "diagnostics.tsv").read_bytes()


def test_resume_continues_from_saved_epoch(tmp_path, caplog):
    inputs = write_inputs(tmp_path)
    data = load(*inputs)
    three = dataclasses.replace(DRG_SMALL, epochs=3, checkpoint_every=1)
    reference, _ = train_drg(three, data, device=CPU)

    checkpoints = tmp_path / "checkpoints"
    train_drg(dataclasses.replace(three, epochs=2), data, device=CPU, checkpoint_dir=checkpoints)
    assert (checkpoints / "state.pt").is_file()
    with caplog.at_level(logging.INFO, logger="zerodiff.training"):
        resumed, diagnostics = train_drg(three, data, device=CPU, checkpoint_dir=checkpoints)
    assert "resumed from epoch 2 of 3" in caplog.text
    assert [row["epoch"] for row in diagnostics.rows] == [1.0, 2.0, 3.0]
    for key, value in reference.networks.state_dict().items():
        assert torch.equal(value, resumed.networks.state_dict()[key]), key


def test_resume_of_finished_run_rewrites_diagnostics(tmp_path):
    inputs = write_inputs(tmp_path)
    data = load(*inputs)
    two = dataclasses.replace(DRG_SMALL, epochs=2, checkpoint_every=1)
    checkpoints, plots = tmp_path / "checkpoints", tmp_path / "plots" / "diagnostics.tsv"
    train_drg(two, data, device=CPU, checkpoint_dir=checkpoints, diagnostics_path=plots)
    first = plots.read_bytes()
    plots.unlink()
    train_drg(two, data, device=CPU, checkpoint_dir=checkpoints, diagnostics_path=plots)
    assert plots.read_bytes() == first


def test_resume_ignores_state_of_other_settings(tmp_path, caplog):
    inputs = write_inputs(tmp_path)
    data = load(*inputs)
    checkpoints = tmp_path / "checkpoints"
    train_drg(dataclasses.replace(DRG_SMALL, epochs=1), data, device=CPU, checkpoint_dir=checkpoints)
    with caplog.at_level(logging.INFO, logger="zerodiff.training"):
        train_drg(dataclasses.replace(DRG_SMALL, epochs=1, lr=1e-3), data, device=CPU, checkpoint_dir=checkpoints)
    assert "resumed" not in caplog.text
    assert "other settings" in caplog.text


def test_dfg_rejects_drg_of_other_store(trained, tmp_path):
    other = write_inputs(tmp_path, seed=1)
    data = load(*other)
    with pytest.raises(UserError, match="another feature store"):
        check_drg_matches(load_drg(trained["drg"]), trained["drg"], data, DFG_SMALL)


def test_dfg_rejects_drg_of_other_dimensions(trained):
    drg = load_drg(trained["drg"])
    drg.dims = {**drg.dims, "features_sc": 99}
    data = load(trained["store"], trained["manifest"])
    with pytest.raises(UserError, match="features_sc of size 99"):
        check_drg_matches(drg, trained["drg"], data, DFG_SMALL)


def test_dfg_rejects_drg_with_other_preprocessing(trained):
    data = load_training_data(
        trained["store"], trained["manifest"], scaler_fit="subset", normalize=False, need_sc=True, stage="test", device=CPU
    )
    with pytest.raises(UserError, match="preprocessing differs"):
        check_drg_matches(load_drg(trained["drg"]), trained["drg"], data, DFG_SMALL)


def test_non_finite_loss_stops_training(trained, monkeypatch, tmp_path):
    data = load(trained["store"], trained["manifest"])
    monkeypatch.setattr(dfg_module, "vae_loss", lambda *args: torch.tensor(float("nan")))
    diagnostics = tmp_path / "diagnostics.tsv"
    with pytest.raises(UserError, match=r"'vae_loss' is nan at epoch 1, generator step 1"):
        train_dfg(DFG_SMALL, data, load_drg(trained["drg"]), device=CPU, diagnostics_path=diagnostics)
    assert not diagnostics.exists()


def test_store_without_sc_is_rejected_with_advice(tmp_path):
    inputs = write_inputs(tmp_path, d_sc=None)
    with pytest.raises(UserError, match="con_paco.mat") as error:
        load(*inputs)
    assert "extract" in str(error.value)
    assert "ablation.drg" in str(error.value)


def test_fvaegan_baseline_runs_without_sc(tmp_path):
    inputs = write_inputs(tmp_path, d_sc=None)
    data = load(*inputs, need_sc=False)
    config = dataclasses.replace(
        DFG_SMALL,
        ablation=DFGAblation(drg=False, d_diff=False, d_rep=False, mutual=False),
        inputs=GeneratorInputs(r0=False, v_t=False, t=False),
        epochs=1,
    )
    trainer, diagnostics = train_dfg(config, data, None, device=CPU)
    assert set(trainer.networks.critics()) == {"adv"}
    assert trainer.networks.generator.input_names == ("z", "a")
    row = diagnostics.rows[0]
    assert "mutual_loss" not in row
    assert "critic_diff_loss" not in row
    assert "delta_rep" not in row
    assert {"vae_loss", "critic_adv_loss", "feedback_loss", "delta_adv"} <= set(row)


@pytest.mark.parametrize(
    ("ablation", "absent"),
    [
        ({"d_adv": False}, "critic_adv_loss"),
        ({"d_diff": False}, "critic_diff_loss"),
        ({"d_rep": False}, "critic_rep_loss"),
        ({"mutual": False}, "mutual_loss"),
        ({"decoder": False}, "feedback_loss"),
    ],
)
def test_ablation_switch_removes_loss_term(trained, ablation, absent):
    data = load(trained["store"], trained["manifest"])
    config = dataclasses.replace(DFG_SMALL, ablation=DFGAblation(**ablation), epochs=1)
    trainer = dfg_module.DFGTrainer(config, data, load_drg(trained["drg"]), CPU)
    terms = {**trainer.critic_step(), **trainer.generator_step()}
    assert absent not in terms
    assert "vae_loss" in terms


def test_drg_generator_input_option(trained):
    data = load(trained["store"], trained["manifest"])
    config = dataclasses.replace(DRG_SMALL, generator_input="r_t_plus_1", epochs=1, diffusion=DiffusionConfig(num_steps=2))
    trainer, diagnostics = train_drg(config, data, device=CPU)
    assert diagnostics.rows[0]["epoch"] == 1.0


def test_train_dfg_stage_rejects_missing_drg(trained, tmp_path):
    import typer

    from stages import train_dfg as stage

    app = typer.Typer()
    app.command()(stage.main)
    params = tmp_path / "params.yaml"
    params.write_text("train_dfg:\n  epochs: 1\n  hidden: 8\n  device: cpu\n")
    out = tmp_path / "dfg.pt"
    result = CliRunner().invoke(
        app, ["--store", str(trained["store"]), "--manifest", str(trained["manifest"]), "--out", str(out), "--params", str(params)]
    )
    assert result.exit_code == 1
    assert "--drg is required" in result.output
    assert not out.exists()


def test_load_dfg_rejects_missing_and_foreign_files(trained, tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dfg(tmp_path / "missing.pt")
    with pytest.raises(UserError, match="expected a DFG checkpoint"):
        load_dfg(trained["drg"])


def test_generated_representation_mode_trains(trained):
    data = load(trained["store"], trained["manifest"])
    config = dataclasses.replace(DFG_SMALL, representation_input="generated", epochs=1)
    trainer, diagnostics = train_dfg(config, data, load_drg(trained["drg"]), device=CPU)
    assert {"critic_rep_loss", "mutual_loss", "delta_rep"} <= set(diagnostics.rows[0])
    with pytest.raises(UserError, match="needs a DRG checkpoint"):
        train_dfg(config, data, None, device=CPU)
