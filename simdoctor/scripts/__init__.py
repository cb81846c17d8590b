"""Standalone helper scripts run in other interpreters or isolated subprocesses.

They import nothing from simdoctor and only the standard library, stay Python 3.8 compatible,
and print exactly one JSON line on stdout, so a crash in a driver or a foreign interpreter
cannot take simdoctor down with it. timed_agent.py is the exception: the evaluator loads it as
its agent module and it writes its step lines to a file.
"""

from pathlib import Path


def path(name: str) -> str:
    """Absolute path of a helper script in this folder."""
    return str(Path(__file__).with_name(name))
