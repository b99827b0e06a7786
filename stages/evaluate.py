"""Evaluate synthetic features with a linear softmax classifier: ZSL top-1 and GZSL U, S, H."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from stages._common import PARAMS_OPTION, SET_OPTION, run, stage_command, stage_config
from zerodiff.atomic import atomic_output, sha256_file
from zerodiff.device import resolve_device, seed_everything
from zerodiff.errors import UserError
from zerodiff.evaluation import (
    EvaluateConfig,
    EvaluationInputs,
    build_class_table,
    build_confusion_table,
    build_metrics,
    build_space_table,
    evaluate,
    method_from_switches,
)
from zerodiff.store import apply_protocol, read_store
from zerodiff.subset import read_manifest
from zerodiff.synthetic import read_synthetic

log = logging.getLogger("zerodiff.evaluate")

CLASS_TABLE_NAME = "eval_classes.csv"
SPACE_TABLE_NAME = "eval_spaces.csv"
CONFUSION_NAMES = {"zsl": "confusion_zsl.csv", "gzsl": "confusion_gzsl.csv"}
EPOCH_CURVE_NAME = "classifier_epochs.csv"


@stage_command
def main(
    store: Path = typer.Option(..., "--store", help="Feature store (HDF5)."),
    manifest: Path = typer.Option(..., "--manifest", help="Subset manifest (Parquet) the DFG was trained on."),
    synthetic: Path = typer.Option(..., "--synthetic", help="Synthetic features written by the synthesize stage (HDF5)."),
    dfg: Path = typer.Option(..., "--dfg", help="Trained DFG checkpoint; provides the feature scalers and the semantic decoder."),
    metrics: Path = typer.Option(..., "--metrics", help="Where to write the metrics JSON (ZSL top-1, GZSL U, S, H in percent)."),
    tables_dir: Path = typer.Option(
        ..., "--tables-dir", help=f"Folder for the per-class table ({CLASS_TABLE_NAME}) and the per-space table ({SPACE_TABLE_NAME})."
    ),
    plots_dir: Path = typer.Option(
        ...,
        "--plots-dir",
        help=f"Folder for the confusion data ({', '.join(CONFUSION_NAMES.values())}) and the per-epoch test curve ({EPOCH_CURVE_NAME}).",
    ),
    params: Path = PARAMS_OPTION,
    overrides: list[str] = SET_OPTION,
) -> dict[str, Any]:
    """Train the final ZSL and GZSL classifiers on synthetic features and write the metrics."""
    from zerodiff.dfg import load_dfg  # imported here so the library and its tests do not need the DFG module

    config: EvaluateConfig = stage_config(EvaluateConfig, params, "evaluate", overrides)
    device = resolve_device(config.device)
    seed_everything(config.seed)

    log.info("reading %s, %s, %s and %s", store, manifest, synthetic, dfg)
    subset = read_manifest(manifest, store)
    features = apply_protocol(read_store(store), subset.protocol)
    model = load_dfg(dfg, device)
    inputs = EvaluationInputs(
        store=features,
        manifest=subset,
        synthetic=read_synthetic(synthetic),
        model=model,
        store_path=str(store),
        manifest_path=str(manifest),
        synthetic_path=str(synthetic),
        model_path=str(dfg),
        model_sha256=sha256_file(dfg),
    )
    method = config.method or method_from_switches(model)
    if not method:
        raise UserError(f"{dfg} records no ablation switches to name the method by; set evaluate.method in {params}")

    result = evaluate(inputs, config, device)

    document = build_metrics(
        result,
        features.class_names,
        dataset=features.dataset,
        method=method,
        ratio=subset.ratio,
        protocol=subset.protocol,
        report_test_selected=config.report_test_selected,
    )
    log.info("writing %s, tables to %s and plots to %s", metrics, tables_dir, plots_dir)
    with atomic_output(metrics) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
    _write_csv(build_class_table(result, features.class_names), tables_dir / CLASS_TABLE_NAME)
    _write_csv(build_space_table(result, report_test_selected=config.report_test_selected), tables_dir / SPACE_TABLE_NAME)
    for task, name in CONFUSION_NAMES.items():
        _write_csv(build_confusion_table(result, features.class_names, task), plots_dir / name)
    _write_csv(result.headline.epochs, plots_dir / EPOCH_CURVE_NAME)
    return document


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_output(path) as tmp:
        table.to_csv(tmp, index=False)


if __name__ == "__main__":
    run(main)
