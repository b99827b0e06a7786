"""Shared plumbing for stage commands: parameters, logging and error reporting."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import typer
import yaml

from zerodiff.config import build_config
from zerodiff.errors import UserError

log = logging.getLogger("zerodiff")

CommandT = TypeVar("CommandT", bound=Callable[..., Any])

PARAMS_OPTION = typer.Option(Path("params.yaml"), "--params", help="Parameters file with one section per stage.")
SET_OPTION = typer.Option(
    None,
    "--set",
    "-s",
    help="Override one parameter of this stage's section as KEY=VALUE (VALUE is parsed as YAML); repeatable. "
    "Nested keys use dots, for example classifier.epochs=10 in the evaluate section.",
)


def setup_logging() -> None:
    """Send info-level log lines to stderr with a timestamp, once per process."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    else:
        root.setLevel(logging.INFO)


def load_section(params_path: Path, section: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read one section of the parameters file and apply ``KEY=VALUE`` overrides.

    A missing file or section yields an empty mapping, so every default applies.
    """
    values: dict[str, Any] = {}
    if params_path.is_file():
        try:
            document = yaml.safe_load(params_path.read_text()) or {}
        except yaml.YAMLError as error:
            raise UserError(f"{params_path}: invalid YAML ({error})") from None
        if not isinstance(document, Mapping):
            raise UserError(f"{params_path}: expected a mapping of sections at the top level")
        section_values = document.get(section) or {}
        if not isinstance(section_values, Mapping):
            raise UserError(f"{params_path}: section {section!r} must be a mapping, got {section_values!r}")
        values = _deep_copy(section_values)
    elif params_path != Path("params.yaml"):
        raise UserError(f"parameters file not found: {params_path}")
    for override in overrides or []:
        key, separator, raw = override.partition("=")
        if not separator or not key:
            raise UserError(f"invalid --set {override!r}; expected KEY=VALUE, for example epochs=5")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        target = values
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise UserError(f"invalid --set {override!r}: {part!r} is not a nested section")
        target[parts[-1]] = value
    return values


def stage_config(config_class: type, params_path: Path, section: str, overrides: list[str] | None) -> Any:
    """Build a stage's frozen configuration from its parameters section."""
    return build_config(config_class, load_section(params_path, section, overrides), f"{params_path}: {section}")


def _deep_copy(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deep_copy(value) if isinstance(value, Mapping) else value for key, value in mapping.items()}


def stage_command(function: CommandT) -> CommandT:
    """Wrap a stage command: set up logging and report :class:`UserError` without a traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        setup_logging()
        try:
            return function(*args, **kwargs)
        except UserError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


def make_app(function: Callable[..., Any]) -> typer.Typer:
    """Return a typer program whose only command is ``function``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(function)
    return app


def run(function: Callable[..., Any]) -> None:
    """Run one stage command as a stand-alone typer program."""
    make_app(function)()
