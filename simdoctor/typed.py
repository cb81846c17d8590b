"""Plain data <-> typed dataclasses, so recipes and fact dumps are read back into the same types.

One small converter instead of a schema library: it knows dataclasses, Optional, list, tuple,
dict, Enum and scalars, and rejects unknown keys so a typo in a recipe is an error, not a default.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

T = TypeVar("T")


class DataError(ValueError):
    """Data that does not fit the expected type; the message names the offending key path."""


def to_data(obj: Any) -> Any:
    """Turn a dataclass tree into JSON-ready dicts, lists and scalars."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_data(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    return obj


def from_data(tp: type[T], data: Any, where: str = "") -> T:
    """Build a value of type `tp` from plain data, raising DataError with the key path on a mismatch."""
    return _convert(tp, data, where or tp.__name__)


def _hints(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(module) if module else None)


def _convert(tp: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return data
    if origin is Union:
        if data is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, data, where)
            except DataError as exc:
                errors.append(str(exc))
        raise DataError("; ".join(errors) or f"{where}: unexpected null")
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a table, got {type(data).__name__}")
        hints = _hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise DataError(f"{where}: unknown key(s) {', '.join(unknown)}")
        kwargs = {}
        for name, field in fields.items():
            if name in data:
                kwargs[name] = _convert(hints[name], data[name], f"{where}.{name}")
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise DataError(f"{where}: missing key {name}")
        return tp(**kwargs)
    if origin in (list, tuple):
        if not isinstance(data, (list, tuple)):
            raise DataError(f"{where}: expected a list, got {type(data).__name__}")
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a table, got {type(data).__name__}")
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _convert(value_type, v, f"{where}.{k}") for k, v in data.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError:
            choices = ", ".join(str(m.value) for m in tp)
            raise DataError(f"{where}: {data!r} is not one of {choices}") from None
    if tp is Path:
        if not isinstance(data, str):
            raise DataError(f"{where}: expected a path string, got {type(data).__name__}")
        return Path(data)
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if isinstance(tp, type):
        if tp is int and isinstance(data, bool):
            raise DataError(f"{where}: expected int, got bool")
        if not isinstance(data, tp):
            raise DataError(f"{where}: expected {tp.__name__}, got {type(data).__name__} {data!r}")
        return data
    raise DataError(f"{where}: unsupported type {tp!r}")
