"""Gather evaluation results across runs into one table of accuracy against the training-data ratio.

The table has the shape of ZeroDiff's limited-data comparison: for each method
one block of rows, one row per subset ratio, and the columns T1 (ZSL per-class
mean top-1), U, S and H (GZSL), all in percent. Blocks are also split by
dataset, feature space and protocol, so that only comparable runs share one.
Several runs of one (block, ratio), such as different seeds, are averaged and
their count and sample standard deviation reported.

Results come from ``eval.json`` files written by the evaluate stage, or from
the JSON that ``dvc exp show --json`` prints, which carries every experiment's
metrics files. Method and ratio are read from the results themselves.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from zerodiff.atomic import atomic_output
from zerodiff.errors import UserError

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("T1", "U", "S", "H")
BLOCK_COLUMNS = ("dataset", "method", "space", "protocol")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class RunResult:
    """Headline figures of one evaluation (percent), with what identifies its block and row."""

    source: str
    dataset: str
    method: str
    space: str
    protocol: str
    ratio: float
    t1: float
    u: float
    s: float
    h: float


def result_from_metrics(document: Mapping[str, Any], source: str) -> RunResult:
    """Read one ``eval.json`` document; raise :class:`UserError` naming ``source`` and the missing key."""
    values: dict[str, Any] = {}
    for section, key, name in (("zsl", "top1", "t1"), ("gzsl", "u", "u"), ("gzsl", "s", "s"), ("gzsl", "h", "h")):
        value = document.get(section, {}).get(key) if isinstance(document.get(section), Mapping) else None
        if not _is_number(value):
            raise UserError(f"{source}: missing or non-numeric {section}.{key} ({value!r}); is this a file written by zerodiff evaluate?")
        values[name] = float(value)
    for key in ("method", "ratio"):
        if key not in document:
            raise UserError(f"{source}: missing key {key!r}; re-run zerodiff evaluate to record it")
    if not _is_number(document["ratio"]):
        raise UserError(f"{source}: ratio must be a number, got {document['ratio']!r}")
    return RunResult(
        source=source,
        dataset=str(document.get("dataset", UNKNOWN)),
        method=str(document["method"]),
        space=str(document.get("space", UNKNOWN)),
        protocol=str(document.get("protocol", UNKNOWN)),
        ratio=float(document["ratio"]),
        **values,
    )


def results_from_exp_show(entries: list[Any], source: str) -> list[RunResult]:
    """Read every evaluation result in the output of ``dvc exp show --json``.

    Each commit, the workspace and each experiment contribute the metrics files
    that have ZSL and GZSL keys; files DVC could not read are skipped.
    """
    results = []
    for label, metrics_files in _exp_show_metrics(entries):
        for path, item in metrics_files.items():
            data = item.get("data") if isinstance(item, Mapping) else None
            if isinstance(data, Mapping) and "zsl" in data and "gzsl" in data:
                results.append(result_from_metrics(data, f"{source} [{label}] {path}"))
    return results


def _exp_show_metrics(entries: Iterable[Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        data = entry.get("data")
        if isinstance(data, Mapping):
            label = entry.get("name") or str(data.get("rev") or entry.get("rev"))[:12]
            yield label, data.get("metrics") or {}
        for experiment in entry.get("experiments") or []:
            yield from _exp_show_metrics(experiment.get("revs") or [])


def load_results(paths: Iterable[str | os.PathLike]) -> list[RunResult]:
    """Read results from ``eval.json`` files and saved ``dvc exp show --json`` outputs, recognised by content.

    Results identical in every figure and label are kept once, because
    ``dvc exp show`` lists the workspace beside the experiment it came from.
    """
    results: list[RunResult] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise UserError(f"results file not found: {path}")
        try:
            document = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: not valid JSON ({error})") from None
        if isinstance(document, list):
            found = results_from_exp_show(document, str(path))
            if not found:
                raise UserError(f"{path}: this dvc exp show output has no metrics file with zsl and gzsl keys")
            results.extend(found)
        elif isinstance(document, Mapping):
            results.append(result_from_metrics(document, str(path)))
        else:
            raise UserError(f"{path}: expected an eval.json object or a dvc exp show --json list")

    unique: dict[tuple, RunResult] = {}
    for result in results:
        unique.setdefault(astuple(result)[1:], result)
    if len(unique) < len(results):
        log.info("dropped %d duplicate result(s)", len(results) - len(unique))
    return list(unique.values())


def build_ratio_table(results: list[RunResult]) -> pd.DataFrame:
    """Return one row per (dataset, method, space, protocol, ratio): mean figures, run count and spread.

    Columns: the block columns, ``ratio``, ``runs``, ``T1``, ``U``, ``S``, ``H`` and
    ``T1_std`` ... ``H_std`` (sample standard deviation, empty for a single run).
    Rows are sorted by block, then by ratio from largest to smallest.
    """
    if not results:
        raise UserError("no results to report; pass eval.json files or a saved dvc exp show --json output")
    frame = pd.DataFrame(
        [
            {**{column: getattr(item, column) for column in BLOCK_COLUMNS}, "ratio": item.ratio,
             "T1": item.t1, "U": item.u, "S": item.s, "H": item.h}
            for item in results
        ]
    )
    keys = [*BLOCK_COLUMNS, "ratio"]
    grouped = frame.groupby(keys, sort=False)[list(METRIC_COLUMNS)]
    means = grouped.mean()
    spread = grouped.std(ddof=1).add_suffix("_std")
    table = means.join(spread).join(grouped.size().rename("runs")).reset_index()
    table = table.sort_values([*BLOCK_COLUMNS, "ratio"], ascending=[True] * len(BLOCK_COLUMNS) + [False], kind="stable")
    columns = [*keys, "runs", *METRIC_COLUMNS, *(f"{name}_std" for name in METRIC_COLUMNS)]
    return table[columns].reset_index(drop=True)


def format_markdown(table: pd.DataFrame) -> str:
    """Render the ratio table as Markdown: one section and one table per block."""
    lines = [
        "# Accuracy by training-data ratio",
        "",
        "Percent, final classifier epoch. T1: ZSL per-class mean top-1. U, S: GZSL per-class mean top-1 on unseen "
        "and seen classes. H: their harmonic mean. Several runs of one ratio are shown as mean ± sample "
        "standard deviation.",
    ]
    for block, rows in table.groupby(list(BLOCK_COLUMNS), sort=False):
        dataset, method, space, protocol = block
        lines += ["", f"## {method} on {dataset} (feature space {space}, {protocol} protocol)", ""]
        lines += ["| ratio | T1 | U | S | H | runs |", "|---:|---:|---:|---:|---:|---:|"]
        for _, row in rows.iterrows():
            cells = [_format_ratio(row["ratio"])]
            cells += [_format_figure(row[name], row[f"{name}_std"]) for name in METRIC_COLUMNS]
            cells.append(str(int(row["runs"])))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_ratio_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a PNG with one panel per metric (T1, U, S, H) against the ratio, one line per block."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, len(METRIC_COLUMNS), figsize=(4 * len(METRIC_COLUMNS), 3.6), sharex=True)
    for block, rows in table.groupby(list(BLOCK_COLUMNS), sort=False):
        dataset, method, space, protocol = block
        rows = rows.sort_values("ratio")
        for axis, name in zip(axes, METRIC_COLUMNS):
            axis.plot(rows["ratio"], rows[name], marker="o", label=f"{method}, {dataset} ({space}, {protocol})")
    for axis, name in zip(axes, METRIC_COLUMNS):
        axis.set_title(name)
        axis.set_xlabel("training-data ratio")
        axis.set_ylabel("accuracy (%)")
        axis.set_xticks(sorted(table["ratio"].unique()))
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    figure.tight_layout()
    try:
        with atomic_output(path) as tmp:
            figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    finally:
        pyplot.close(figure)


def _format_ratio(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def _format_figure(mean: float, std: float) -> str:
    if std is None or math.isnan(std):
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
