"""Train the diffusion-based representation generator (DRG) on the subset's SC representations."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from stages._common import PARAMS_OPTION, SET_OPTION, run, stage_command, stage_config
from zerodiff.device import resolve_device
from zerodiff.drg import DRGConfig, save_drg, train_drg
from zerodiff.training import load_training_data

log = logging.getLogger("zerodiff.train_drg")


@stage_command
def main(
    store: Path = typer.Option(..., "--store", help="Feature store (HDF5) with /features/sc."),
    manifest: Path = typer.Option(..., "--manifest", help="Subset manifest (Parquet) made for this store."),
    out: Path = typer.Option(..., "--out", help="Where to write the trained DRG (.pt)."),
    checkpoint_dir: Path = typer.Option(None, "--checkpoint-dir", help="Folder for the resumable training state; omit to disable resuming."),
    plots_dir: Path = typer.Option(None, "--plots-dir", help="Folder for diagnostics.tsv (one row per epoch); omit to skip it."),
    params: Path = PARAMS_OPTION,
    overrides: list[str] = SET_OPTION,
) -> None:
    """Train the DRG (R and its critics D'_adv, D'_diff) and write its checkpoint."""
    config = stage_config(DRGConfig, params, "train_drg", overrides)
    device = resolve_device(config.device)
    log.info("train-drg: loading %s and %s", store, manifest)
    data = load_training_data(
        store,
        manifest,
        scaler_fit=config.scaler_fit,
        normalize=config.normalize_attributes,
        need_sc=True,
        stage="train-drg",
        device=device,
    )
    trainer, _ = train_drg(
        config,
        data,
        device=device,
        checkpoint_dir=checkpoint_dir,
        diagnostics_path=None if plots_dir is None else plots_dir / "diagnostics.tsv",
    )
    save_drg(out, trainer)
    log.info("train-drg: wrote %s", out)


if __name__ == "__main__":
    run(main)
