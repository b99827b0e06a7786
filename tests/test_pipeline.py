"""End to end: clone the repository, run `dvc repro` with shrunk parameters, check the outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGE_TIMEOUT_S = 900

# Small enough for a few minutes on two CPU cores; the structure of every stage is unchanged.
SHRUNK = {
    "extract": {"ce": {"epochs": 2}, "sc": {"epochs": 2}},
    "train_drg": {"epochs": 2, "hidden": 64},
    "train_dfg": {"epochs": 3, "hidden": 64},
    "synthesize": {"per_class": {1.0: 50, 0.3: 15, 0.1: 5}},
    "evaluate": {"classifier": {"epochs": 3}, "spaces": ["V", "VS"]},
}


def _merge(target: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict) and key != "per_class":
            _merge(target[key], value)
        else:
            target[key] = value


def _run(args: list[str], cwd: Path) -> str:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@localhost",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@localhost")
    completed = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=STAGE_TIMEOUT_S)
    assert completed.returncode == 0, f"{' '.join(args)} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    return completed.stdout


@pytest.fixture(scope="module")
def pipeline_clone(tmp_path_factory) -> Path:
    if shutil.which("git") is None or shutil.which("dvc") is None:
        pytest.skip("git and dvc are needed for the end-to-end run")
    if not (ROOT / ".git").exists():
        pytest.skip("the end-to-end run clones the repository, and this checkout has no .git folder")
    clone = tmp_path_factory.mktemp("pipeline") / "repo"
    _run(["git", "clone", "--quiet", str(ROOT), str(clone)], cwd=ROOT)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    _merge(params, SHRUNK)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["dvc", "repro"], cwd=clone)
    return clone


@pytest.mark.slow
def test_repro_writes_metrics_contract(pipeline_clone):
    metrics = json.loads((pipeline_clone / "metrics" / "eval.json").read_text())
    top1 = metrics["zsl"]["top1"]
    u, s, h = metrics["gzsl"]["u"], metrics["gzsl"]["s"], metrics["gzsl"]["h"]
    for value in (top1, u, s, h):
        assert 0.0 <= value <= 100.0
    assert h == pytest.approx(0.0 if u + s == 0 else 2 * u * s / (u + s))
    assert metrics["ratio"] == 1.0
    assert metrics["space"] == "V"
    for path in ("metrics/eval_classes.csv", "metrics/eval_spaces.csv", "plots/train_dfg/diagnostics.tsv",
                 "plots/evaluate/confusion_gzsl.csv", "models/drg.pt", "models/dfg.pt"):
        assert (pipeline_clone / path).is_file(), path


@pytest.mark.slow
def test_evaluate_param_reruns_only_evaluate(pipeline_clone):
    params_path = pipeline_clone / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["evaluate"]["classifier"]["epochs"] = 4
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(_run(["dvc", "status", "--json"], cwd=pipeline_clone))
    assert set(status) == {"evaluate"}


@pytest.mark.slow
def test_ratio_experiment_and_metrics_diff(pipeline_clone):
    _run(["git", "add", "-A"], cwd=pipeline_clone)
    _run(["git", "commit", "--quiet", "-m", "Shrunk baseline"], cwd=pipeline_clone)
    _run(["dvc", "exp", "run", "-S", "subset.ratio=0.1"], cwd=pipeline_clone)
    metrics = json.loads((pipeline_clone / "metrics" / "eval.json").read_text())
    assert metrics["ratio"] == 0.1
    diff = json.loads(_run(["dvc", "metrics", "diff", "--json"], cwd=pipeline_clone))
    changes = diff["metrics/eval.json"]
    assert changes["ratio"]["old"] == 1.0
    assert changes["ratio"]["new"] == 0.1
