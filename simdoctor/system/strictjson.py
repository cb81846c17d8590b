"""JSON that other processes wrote (the evaluator's results, simdoctor's own records), read as the standard says.

Python's json reads NaN and Infinity, which are not JSON: a record holding one would make merged.json and
`report --json` invalid too. And deep nesting raises RecursionError, not ValueError, which callers that
expect a bad file to be a ValueError do not catch. Here both are ValueError.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def loads(text: str) -> Any:
    """json.loads, raising ValueError (with what is wrong) for NaN, Infinity, huge numbers and deep nesting."""
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
