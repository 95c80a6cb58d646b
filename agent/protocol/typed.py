"""Build frozen dataclasses from untyped mappings (JSON, TOML), checking each value against
the field's type hint. One checker for messages on the wire and for configuration files, so
a value of the wrong type is refused with one line naming the field, never a traceback later.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from functools import lru_cache
from typing import Any, Mapping, Union

_NO_VALUE = object()


class FieldError(ValueError):
    """A value does not match its field's type (the message names the field)."""


@lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass's init fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING  # type: ignore[misc]


def _kind(hint: Any) -> str:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        return f"{_kind(inner[0])} or null" if len(inner) == 1 else "a value"
    if origin is tuple or origin is list:
        return f"a list of {_kind(args[0])}" if args else "a list"
    if origin is dict or hint is dict:
        return "a table/object"
    if dataclasses.is_dataclass(hint):
        return "a table/object"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(hint, str(hint))


def decode_value(value: Any, hint: Any, name: str) -> Any:
    """`value` as the type `hint` describes (lists become tuples for tuple fields); `FieldError`."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise FieldError(f"{name}: unsupported union type {hint}")
        return decode_value(value, inner[0], name)
    ok = True
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            ok = False
        else:
            item = args[0] if args else Any
            items = [decode_value(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items
    elif origin is dict or hint is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            ok = False
        else:
            item = args[1] if len(args) == 2 else Any
            return {k: decode_value(v, item, f"{name}.{k}") for k, v in value.items()}
    elif dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            ok = False
        else:
            return decode_dataclass(hint, value, prefix=f"{name}.")
    if not ok:
        shown = type(value).__name__ if not isinstance(value, (int, float, str, bool)) else repr(value)[:40]
        raise FieldError(f"{name} must be {_kind(hint)}, got {shown}")
    return value


def decode_dataclass(cls: type, obj: Mapping[str, Any], prefix: str = "", strict: bool = False) -> Any:
    """An instance of dataclass `cls` from a mapping. Missing or null keys take the field's
    default (required fields without one raise); unknown keys are ignored, or refused when
    `strict` (configuration files, where a misspelt key must not pass silently)."""
    types = field_types(cls)
    if strict:
        unknown = sorted(set(obj) - set(types))
        if unknown:
            raise FieldError(f"unknown setting {prefix}{unknown[0]} (known: {', '.join(sorted(types))})")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        value = obj.get(f.name, _NO_VALUE)
        hint = types[f.name]
        if value is _NO_VALUE or (value is None and not _allows_none(hint)):
            if not has_default(f):
                raise FieldError(f"{prefix}{f.name} is missing")
            continue
        kwargs[f.name] = decode_value(value, hint, prefix + f.name)
    return cls(**kwargs)


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) is Union and type(None) in typing.get_args(hint)
