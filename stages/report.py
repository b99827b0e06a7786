"""Tabulate T1, U, S and H against the training-data ratio, one block per method, from many runs."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from stages._common import run, stage_command
from zerodiff.atomic import atomic_output
from zerodiff.report import build_ratio_table, format_markdown, load_results, plot_ratio_table

log = logging.getLogger("zerodiff.report")

TABLE_STEM = "results_by_ratio"


@stage_command
def main(
    results: list[Path] = typer.Argument(
        ...,
        help="eval.json files written by zerodiff evaluate, or files holding the output of dvc exp show --json "
        "(each file is recognised by its content).",
    ),
    out_dir: Path = typer.Option(
        Path("reports"), "--out-dir", help=f"Folder for {TABLE_STEM}.md, {TABLE_STEM}.csv and {TABLE_STEM}.png."
    ),
) -> None:
    """Gather evaluation results into a table of accuracy by ratio (Markdown, CSV) and a plot (PNG)."""
    log.info("reading %d results file(s)", len(results))
    runs = load_results(results)
    table = build_ratio_table(runs)
    log.info("writing %d row(s) from %d run(s) to %s", len(table), len(runs), out_dir)
    with atomic_output(out_dir / f"{TABLE_STEM}.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_output(out_dir / f"{TABLE_STEM}.md") as tmp:
        tmp.write_text(format_markdown(table))
    plot_ratio_table(table, out_dir / f"{TABLE_STEM}.png")


if __name__ == "__main__":
    run(main)
