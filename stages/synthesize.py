"""Generate synthetic features for the unseen classes with the trained DRG and DFG."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from stages._common import PARAMS_OPTION, SET_OPTION, run, stage_command, stage_config
from zerodiff.atomic import sha256_file
from zerodiff.device import resolve_device
from zerodiff.dfg import load_dfg
from zerodiff.drg import load_drg
from zerodiff.errors import UserError
from zerodiff.store import read_store
from zerodiff.subset import read_manifest
from zerodiff.synthesis import SynthesisConfig, check_models_agree, synthesize
from zerodiff.synthetic import write_synthetic

log = logging.getLogger("zerodiff.synthesize")


@stage_command
def main(
    store: Path = typer.Option(..., "--store", help="Feature store (HDF5) the generators were trained on."),
    manifest: Path = typer.Option(..., "--manifest", help="Subset manifest (Parquet) the generators were trained on."),
    dfg: Path = typer.Option(..., "--dfg", help="Trained DFG (.pt) from train-dfg."),
    out: Path = typer.Option(..., "--out", help="Where to write the synthetic features (HDF5)."),
    drg: Path = typer.Option(None, "--drg", help="Trained DRG (.pt) from train-drg; not needed when the DFG ablates it."),
    params: Path = PARAMS_OPTION,
    overrides: list[str] = SET_OPTION,
) -> None:
    """Generate N synthetic features per unseen class (N scales with the subset ratio)."""
    config = stage_config(SynthesisConfig, params, "synthesize", overrides)
    device = resolve_device(config.device)
    subset = read_manifest(manifest, store)
    feature_store = read_store(store)
    trained_dfg = load_dfg(dfg, device)
    for key in ("ratio", "seed", "protocol"):
        if getattr(trained_dfg, key) != getattr(subset, key):
            raise UserError(
                f"{dfg} was trained on the subset with {key} {getattr(trained_dfg, key)!r}, but {manifest} has "
                f"{getattr(subset, key)!r}; pass the manifest it was trained on or re-run train-dfg"
            )
    trained_drg, drg_sha256 = None, None
    if drg is not None and trained_dfg.config.uses_drg:
        trained_drg, drg_sha256 = load_drg(drg, device), sha256_file(drg)
    check_models_agree(subset.store_sha256, trained_drg, drg_sha256, trained_dfg, str(dfg))
    log.info("synthesize: generating with %s%s", dfg, "" if trained_drg is None else f" and {drg}")
    synthetic = synthesize(feature_store, subset.protocol, subset.ratio, trained_drg, trained_dfg, config, device)
    synthetic.attrs.update(
        {
            "store_sha256": subset.store_sha256,
            "dfg_sha256": sha256_file(dfg),
            "drg_sha256": drg_sha256 or "",
            "ratio": subset.ratio,
            "protocol": subset.protocol,
        }
    )
    write_synthetic(out, synthetic)
    log.info("synthesize: wrote %d samples of %d classes to %s", synthetic.labels.size, len(set(synthetic.labels.tolist())), out)


if __name__ == "__main__":
    run(main)
