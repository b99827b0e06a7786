"""Typed, frozen stage configurations built from ``params.yaml`` sections.

Each stage defines a frozen dataclass whose fields carry type hints; choices are
``Literal`` types. :func:`build_config` checks a mapping against it: unknown keys,
values of the wrong type and invalid choices raise :class:`UserError` naming the
parameter and the accepted values. The library never reads ``params.yaml``
itself; stage modules pass the parsed section in.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from zerodiff.errors import UserError

ConfigT = TypeVar("ConfigT")


def build_config(cls: type[ConfigT], values: Mapping[str, Any] | None, where: str) -> ConfigT:
    """Build the frozen dataclass ``cls`` from ``values``, checking every key.

    ``where`` names the source for error messages, for example
    ``"params.yaml: train_dfg"``. Missing keys take the dataclass defaults;
    nested dataclass fields accept nested mappings.
    """
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown parameter(s) {', '.join(unknown)}; valid parameters are {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise UserError(f"{where}: {error}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a plain, YAML- and JSON-friendly dict of a config dataclass."""
    return dataclasses.asdict(config)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)

    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return build_config(hint, value, where)
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"{where}: invalid value {value!r}; expected one of {', '.join(map(repr, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except UserError as error:
                errors.append(str(error))
        raise UserError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r} for type {hint}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        item_hint = args[0] if args else Any
        items = [_coerce(item, item_hint, f"{where}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: expected a string, got {value!r}")
        return value
    return value
