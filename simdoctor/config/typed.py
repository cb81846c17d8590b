"""Plain data <-> typed dataclasses, so recipes and fact dumps are read back into the same types.

One small converter instead of a schema library: it knows dataclasses, Optional, list, tuple,
dict, Enum and scalars, and rejects unknown keys so a typo in a recipe is an error, not a default.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import sys
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar, Union

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
    return _converter(tp)(data, where or tp.__name__)


Convert = Callable[[Any, str], Any]


def _hints(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(module) if module else None)


@functools.cache
def _converter(tp: Any) -> Convert:
    """The function that converts data to `tp`, made once per type: working out a type (get_type_hints,
    get_origin) costs far more than converting, and a run folder holds thousands of records."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return lambda data, where: data
    if origin is Union:
        return _union([_converter(a) for a in args if a is not type(None)], type(None) in args)
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp)
    if origin in (list, tuple):
        return _sequence(args[0] if args else Any, origin)
    if origin is dict:
        return _mapping(args[1] if len(args) == 2 else Any)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp)
    if tp is Path:
        return _path
    if isinstance(tp, type):
        return _scalar(tp)

    def unsupported(data: Any, where: str) -> Any:
        raise DataError(f"{where}: unsupported type {tp!r}")

    return unsupported


def _union(options: list[Convert], optional: bool) -> Convert:
    def convert(data: Any, where: str) -> Any:
        if data is None and optional:
            return None
        errors = []
        for option in options:
            try:
                return option(data, where)
            except DataError as exc:
                errors.append(str(exc))
        raise DataError("; ".join(errors) or f"{where}: unexpected null")

    return convert


def _dataclass(tp: Any) -> Convert:
    hints = _hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
    convert_field = {name: _converter(hints[name]) for name in fields}
    required = [name for name, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # fmt: skip

    def convert(data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a table, got {type(data).__name__}")
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise DataError(f"{where}: unknown key(s) {', '.join(unknown)}")
        kwargs = {}
        for name, convert_one in convert_field.items():
            if name in data:
                kwargs[name] = convert_one(data[name], f"{where}.{name}")
        missing = [name for name in required if name not in data]
        if missing:
            raise DataError(f"{where}: missing key {missing[0]}")
        return tp(**kwargs)

    return convert


def _sequence(item: Any, origin: Any) -> Convert:
    convert_item = _converter(item)

    def convert(data: Any, where: str) -> Any:
        if not isinstance(data, (list, tuple)):
            raise DataError(f"{where}: expected a list, got {type(data).__name__}")
        if item in (int, str) and all(type(v) is item for v in data):  # the common case, in one pass
            items = list(data)
        else:
            items = [convert_item(v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(items) if origin is tuple else items

    return convert


def _mapping(value: Any) -> Convert:
    convert_value = _converter(value)

    def convert(data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a table, got {type(data).__name__}")
        return {str(k): convert_value(v, f"{where}.{k}") for k, v in data.items()}

    return convert


def _enum(tp: Any) -> Convert:
    def convert(data: Any, where: str) -> Any:
        try:
            return tp(data)
        except ValueError:
            choices = ", ".join(str(m.value) for m in tp)
            raise DataError(f"{where}: {data!r} is not one of {choices}") from None

    return convert


def _path(data: Any, where: str) -> Path:
    if not isinstance(data, str):
        raise DataError(f"{where}: expected a path string, got {type(data).__name__}")
    return Path(data)


def _scalar(tp: type) -> Convert:
    def convert(data: Any, where: str) -> Any:
        if tp is float and isinstance(data, int) and not isinstance(data, bool):
            return float(data)
        if tp is int and isinstance(data, bool):
            raise DataError(f"{where}: expected int, got bool")
        if not isinstance(data, tp):
            raise DataError(f"{where}: expected {tp.__name__}, got {type(data).__name__} {data!r}")
        return data

    return convert
