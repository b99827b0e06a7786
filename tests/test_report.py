"""The ratio table built from hand-made eval.json files and dvc exp show output."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from zerodiff.errors import UserError
from zerodiff.report import build_ratio_table, format_markdown, load_results, results_from_exp_show

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def eval_document(method: str, ratio: float, t1: float, u: float, s: float, h: float, **extra) -> dict:
    document = {
        "zsl": {"top1": t1},
        "gzsl": {"u": u, "s": s, "h": h},
        "space": "V",
        "dataset": "digits",
        "method": method,
        "ratio": ratio,
        "protocol": "standard",
    }
    document.update(extra)
    return document


def write_json(path: Path, document) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def run_files(tmp_path: Path) -> list[Path]:
    documents = [
        eval_document("ZeroDiff", 0.1, 40.0, 30.0, 80.0, 43.6),
        eval_document("ZeroDiff", 1.0, 60.0, 50.0, 90.0, 64.3),
        eval_document("f-VAEGAN", 1.0, 50.0, 40.0, 88.0, 55.0),
        eval_document("ZeroDiff", 0.3, 52.0, 45.0, 85.0, 58.8),
        eval_document("ZeroDiff", 0.1, 44.0, 34.0, 82.0, 48.0),  # a second seed at 10%
        eval_document("f-VAEGAN", 0.1, 35.0, 20.0, 85.0, 32.4),
    ]
    return [write_json(tmp_path / f"run{i}.json", document) for i, document in enumerate(documents)]


def test_table_rows_and_order(run_files):
    table = build_ratio_table(load_results(run_files))
    assert table["method"].tolist() == ["ZeroDiff", "ZeroDiff", "ZeroDiff", "f-VAEGAN", "f-VAEGAN"]
    assert table["ratio"].tolist() == [1.0, 0.3, 0.1, 1.0, 0.1]
    assert table["runs"].tolist() == [1, 1, 2, 1, 1]


def test_repeated_runs_are_averaged(run_files):
    table = build_ratio_table(load_results(run_files))
    row = table[(table["method"] == "ZeroDiff") & (table["ratio"] == 0.1)].iloc[0]
    assert row["T1"] == pytest.approx(42.0)
    assert row["U"] == pytest.approx(32.0)
    assert row["H"] == pytest.approx((43.6 + 48.0) / 2)
    assert row["T1_std"] == pytest.approx(statistics.stdev([40.0, 44.0]))
    single = table[(table["method"] == "ZeroDiff") & (table["ratio"] == 1.0)].iloc[0]
    assert single["T1"] == 60.0
    assert pd.isna(single["T1_std"])


def test_markdown_has_one_block_per_method(run_files):
    text = format_markdown(build_ratio_table(load_results(run_files)))
    assert "## ZeroDiff on digits (feature space V, standard protocol)" in text
    assert "## f-VAEGAN on digits (feature space V, standard protocol)" in text
    assert "| 100% | 60.00 | 50.00 | 90.00 | 64.30 | 1 |" in text
    assert "| 10% | 42.00 ± 2.83 | 32.00 ± 2.83 | 81.00 ± 1.41 | 45.80 ± 3.11 | 2 |" in text
    zerodiff_block = text.index("## ZeroDiff")
    assert text.index("| 100% | 60.00", zerodiff_block) < text.index("| 30%", zerodiff_block) < text.index("| 10% | 42.00", zerodiff_block)


def test_spaces_and_protocols_get_own_blocks(tmp_path):
    files = [
        write_json(tmp_path / "a.json", eval_document("ZeroDiff", 1.0, 60.0, 50.0, 90.0, 64.3)),
        write_json(tmp_path / "b.json", eval_document("ZeroDiff", 1.0, 70.0, 55.0, 91.0, 68.6, space="VCS")),
        write_json(tmp_path / "c.json", eval_document("ZeroDiff", 1.0, 65.0, 52.0, 92.0, 66.4, protocol="validation")),
    ]
    table = build_ratio_table(load_results(files))
    assert len(table) == 3
    assert table["runs"].tolist() == [1, 1, 1]
    assert set(zip(table["space"], table["protocol"])) == {("V", "standard"), ("VCS", "standard"), ("V", "validation")}


EXP_SHOW = [
    {
        "rev": "workspace",
        "name": None,
        "data": {
            "rev": "workspace",
            "metrics": {"metrics/eval.json": {"data": eval_document("ZeroDiff", 0.3, 52.0, 45.0, 85.0, 58.8)}},
            "params": {"params.yaml": {"data": {"subset": {"ratio": 0.3}}}},
        },
        "error": None,
        "experiments": None,
    },
    {
        "rev": "eeb594a2b73f934e98aff29a52907723f537f0a5",
        "name": "main",
        "data": {
            "rev": "eeb594a2b73f934e98aff29a52907723f537f0a5",
            "metrics": {"metrics/eval.json": {"data": eval_document("ZeroDiff", 1.0, 60.0, 50.0, 90.0, 64.3)}},
        },
        "error": None,
        "experiments": [
            {
                "revs": [
                    {
                        "rev": "f54b6faf9b4b26edaed0e9a5a4f120742ee3b624",
                        "name": "blunt-boar",
                        "data": {
                            "rev": "f54b6faf9b4b26edaed0e9a5a4f120742ee3b624",
                            "metrics": {"metrics/eval.json": {"data": eval_document("ZeroDiff", 0.3, 52.0, 45.0, 85.0, 58.8)}},
                        },
                        "experiments": None,
                    },
                    {
                        "rev": "0000000000000000000000000000000000000001",
                        "name": "broken-run",
                        "data": {"metrics": {"metrics/eval.json": {"error": {"type": "FileNotFoundError", "msg": "missing"}}}},
                        "experiments": None,
                    },
                ],
                "name": "blunt-boar",
            }
        ],
    },
]


def test_exp_show_results_and_duplicates(tmp_path):
    results = results_from_exp_show(EXP_SHOW, "exp.json")
    assert [(item.ratio, item.t1) for item in results] == [(0.3, 52.0), (1.0, 60.0), (0.3, 52.0)]
    assert "blunt-boar" in results[2].source
    unique = load_results([write_json(tmp_path / "exp.json", EXP_SHOW)])
    assert sorted(item.ratio for item in unique) == [0.3, 1.0]


def test_exp_show_and_eval_files_mix(tmp_path, run_files):
    exp_file = write_json(tmp_path / "exp.json", EXP_SHOW)
    table = build_ratio_table(load_results([exp_file, *run_files]))
    zerodiff = table[table["method"] == "ZeroDiff"]
    # The exp show results repeat run1 (100%) and run3 (30%) exactly, so they are counted once.
    assert zerodiff["runs"].tolist() == [1, 1, 2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"zsl": {"top1": 1.0}, "gzsl": {"u": 1.0, "s": 1.0, "h": 1.0}, "ratio": 1.0}, "missing key 'method'"),
        ({"zsl": {"top1": 1.0}, "gzsl": {"u": 1.0, "s": 1.0}, "method": "m", "ratio": 1.0}, r"gzsl\.h"),
        ({"zsl": {"top1": "high"}, "gzsl": {"u": 1.0, "s": 1.0, "h": 1.0}, "method": "m", "ratio": 1.0}, r"zsl\.top1"),
        ({"zsl": {"top1": 1.0}, "gzsl": {"u": 1.0, "s": 1.0, "h": 1.0}, "method": "m", "ratio": "all"}, "ratio must be a number"),
        ([{"rev": "workspace", "data": {"metrics": {}}}], "no metrics file"),
        ("text", "expected an eval.json object"),
    ],
)
def test_bad_results_files_raise(tmp_path, content, message):
    path = write_json(tmp_path / "bad.json", content)
    with pytest.raises(UserError, match=message) as raised:
        load_results([path])
    assert "bad.json" in str(raised.value)


def test_no_results_raise():
    with pytest.raises(UserError, match="no results"):
        build_ratio_table([])


def invoke_report(*arguments: str):
    from stages.report import main

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(main)
    return CliRunner().invoke(app, list(arguments))


def test_report_stage_writes_outputs(tmp_path, run_files):
    out_dir = tmp_path / "reports"
    outcome = invoke_report(*map(str, run_files), "--out-dir", str(out_dir))
    assert outcome.exit_code == 0, outcome.output
    table = pd.read_csv(out_dir / "results_by_ratio.csv")
    assert len(table) == 5
    assert "## f-VAEGAN on digits" in (out_dir / "results_by_ratio.md").read_text()
    assert (out_dir / "results_by_ratio.png").read_bytes().startswith(PNG_SIGNATURE)


def test_report_stage_bad_input_writes_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out_dir = tmp_path / "reports"
    outcome = invoke_report(str(bad), "--out-dir", str(out_dir))
    assert outcome.exit_code == 1
    assert "not valid JSON" in outcome.output
    assert not out_dir.exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_real_dvc_exp_show_output(tmp_path):
    """Read what this DVC version prints for a baseline and one experiment."""
    dvc = [sys.executable, "-m", "dvc"]
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text("subset:\n  ratio: 1.0\n")
    (repo / "write_eval.py").write_text(
        textwrap.dedent(
            """
            import json, yaml
            ratio = yaml.safe_load(open("params.yaml"))["subset"]["ratio"]
            document = {"zsl": {"top1": 100 * ratio}, "gzsl": {"u": 10.0, "s": 20.0, "h": 13.3},
                        "method": "ZeroDiff", "ratio": ratio, "dataset": "digits", "space": "V", "protocol": "standard"}
            json.dump(document, open("eval.json", "w"))
            """
        )
    )

    def call(*command: str) -> str:
        return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout

    call("git", "init", "-q")
    call("git", "config", "user.email", "test@example.com")
    call("git", "config", "user.name", "test")
    call(*dvc, "init", "-q")
    call(*dvc, "stage", "add", "-q", "-n", "evaluate", "-p", "subset.ratio", "-d", "write_eval.py", "-M", "eval.json",
         sys.executable, "write_eval.py")
    call(*dvc, "repro", "-q")
    call("git", "add", "-A")
    call("git", "commit", "-q", "-m", "baseline")
    call(*dvc, "exp", "run", "-q", "-S", "subset.ratio=0.3")
    exp_file = tmp_path / "exp.json"
    exp_file.write_text(call(*dvc, "exp", "show", "--json"))

    table = build_ratio_table(load_results([exp_file]))
    assert table["ratio"].tolist() == [1.0, 0.3]
    assert table["T1"].tolist() == pytest.approx([100.0, 30.0])
