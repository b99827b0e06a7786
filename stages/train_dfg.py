"""Train the diffusion-based feature generator (DFG) with the trained DRG frozen."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from stages._common import PARAMS_OPTION, SET_OPTION, run, stage_command, stage_config
from zerodiff.atomic import sha256_file
from zerodiff.device import resolve_device
from zerodiff.dfg import DFGConfig, check_drg_matches, save_dfg, train_dfg
from zerodiff.drg import load_drg
from zerodiff.errors import UserError
from zerodiff.training import load_training_data

log = logging.getLogger("zerodiff.train_dfg")


@stage_command
def main(
    store: Path = typer.Option(..., "--store", help="Feature store (HDF5)."),
    manifest: Path = typer.Option(..., "--manifest", help="Subset manifest (Parquet) made for this store."),
    out: Path = typer.Option(..., "--out", help="Where to write the trained DFG (.pt)."),
    drg: Path = typer.Option(None, "--drg", help="Trained DRG (.pt) from train-drg; not needed when ablation.drg is false."),
    checkpoint_dir: Path = typer.Option(None, "--checkpoint-dir", help="Folder for the resumable training state; omit to disable resuming."),
    plots_dir: Path = typer.Option(None, "--plots-dir", help="Folder for diagnostics.tsv (one row per epoch); omit to skip it."),
    params: Path = PARAMS_OPTION,
    overrides: list[str] = SET_OPTION,
) -> None:
    """Train the DFG (G, VAE encoder, critics D_adv, D_diff, D_rep, feedback decoder) and write its checkpoint."""
    config = stage_config(DFGConfig, params, "train_dfg", overrides)
    device = resolve_device(config.device)
    log.info("train-dfg: loading %s and %s", store, manifest)
    data = load_training_data(
        store,
        manifest,
        scaler_fit=config.scaler_fit,
        normalize=config.normalize_attributes,
        need_sc=config.uses_drg,
        stage="train-dfg",
        device=device,
    )
    trained_drg, drg_sha256 = None, None
    if config.uses_drg:
        if drg is None:
            raise UserError("train-dfg: --drg is required unless ablation.drg is false (the f-VAEGAN baseline)")
        trained_drg = load_drg(drg, device)
        check_drg_matches(trained_drg, drg, data, config)
        drg_sha256 = sha256_file(drg)
        log.info("train-dfg: using DRG %s", drg)
    trainer, _ = train_dfg(
        config,
        data,
        trained_drg,
        device=device,
        drg_sha256=drg_sha256,
        checkpoint_dir=checkpoint_dir,
        diagnostics_path=None if plots_dir is None else plots_dir / "diagnostics.tsv",
    )
    save_dfg(out, trainer, drg_sha256)
    log.info("train-dfg: wrote %s", out)


if __name__ == "__main__":
    run(main)
