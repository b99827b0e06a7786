"""The zerodiff console script and the CI entry point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from stages.cli import STAGE_MODULES, build_app

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_stage():
    result = CliRunner().invoke(build_app(), ["--help"])
    assert result.exit_code == 0, result.output
    for name in STAGE_MODULES:
        assert name in result.output


def test_single_stage_app_keeps_subcommand():
    result = CliRunner().invoke(build_app(["subset"]), ["subset", "--help"])
    assert result.exit_code == 0, result.output
    assert "--store" in result.output


def test_each_stage_runs_as_module():
    for module in ("stages.subset", "stages.evaluate"):
        completed = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stderr
        assert "--params" in completed.stdout


def test_user_error_has_no_traceback(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "stages.subset", "--store", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "s.parquet")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1
    assert "error: feature store not found" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "s.parquet").exists()


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci_script = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^(pip install .+)$", readme, flags=re.MULTILINE)
    test_command = next(command for command in commands if "[test]" in command)
    assert test_command in ci_script
