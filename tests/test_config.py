"""Stage configuration: typed parsing, overrides and clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from stages._common import load_section
from zerodiff.config import build_config
from zerodiff.errors import UserError


@dataclass(frozen=True)
class Inner:
    enabled: bool = True
    width: int = 8


@dataclass(frozen=True)
class Outer:
    lr: float = 1e-3
    mode: Literal["fast", "exact"] = "fast"
    sizes: tuple[int, ...] = (1, 2)
    path: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_values():
    config = build_config(Outer, {"lr": 1, "mode": "exact", "sizes": [3], "inner": {"width": 4}}, "params.yaml: x")
    assert config == Outer(lr=1.0, mode="exact", sizes=(3,), inner=Inner(enabled=True, width=4))
    assert isinstance(config.lr, float)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"speed": 1}, "unknown parameter(s) speed; valid parameters are inner, lr, mode, path, sizes"),
        ({"mode": "slow"}, "params.yaml: x.mode: invalid value 'slow'; expected one of 'fast', 'exact'"),
        ({"lr": "high"}, "params.yaml: x.lr: expected a number, got 'high'"),
        ({"inner": {"enabled": "yes"}}, "params.yaml: x.inner.enabled: expected true or false, got 'yes'"),
        ({"inner": {"width": 2.5}}, "params.yaml: x.inner.width: expected an integer, got 2.5"),
        ({"sizes": 3}, "params.yaml: x.sizes: expected a list, got 3"),
    ],
)
def test_invalid_values_name_the_key(values, message):
    with pytest.raises(UserError) as error:
        build_config(Outer, values, "params.yaml: x")
    assert message in str(error.value)


def test_load_section_applies_overrides(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  lr: 0.1\n  inner:\n    width: 3\nother:\n  x: 1\n")
    values = load_section(params, "train", ["lr=0.5", "inner.enabled=false", "mode=exact"])
    assert values == {"lr": 0.5, "inner": {"width": 3, "enabled": False}, "mode": "exact"}


def test_load_section_rejects_bad_override(tmp_path):
    (tmp_path / "params.yaml").write_text("train: {}\n")
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        load_section(tmp_path / "params.yaml", "train", ["lr"])


def test_load_section_missing_explicit_file(tmp_path):
    with pytest.raises(UserError, match="parameters file not found"):
        load_section(tmp_path / "custom.yaml", "train")
