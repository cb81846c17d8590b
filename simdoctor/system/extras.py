"""simdoctor's optional parts (pyproject's extras) as the one command that adds them where simdoctor runs.

`pip install 'simdoctor[docker]'` does not run as printed: the `pip` on PATH may be another Python's (pyenv's,
the system's) while simdoctor lives in a venv, and from an index it would fetch another simdoctor than one
installed from a checkout. So a fix installs the extra's own requirements, read from the installed metadata
(pyproject.toml stays their one source), with this interpreter's pip.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import sys


def requirements(extra: str) -> list[str]:
    """The requirements only this extra adds, as pip takes them (`docker>=7`)."""
    try:
        requires = importlib.metadata.requires("simdoctor") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    only = re.compile(r"""\s*;\s*extra\s*==\s*['"]""" + re.escape(extra) + r"""['"]\s*$""")
    return [only.split(r)[0] for r in requires if only.search(r)]


def install_command(extra: str) -> str:
    """This interpreter's pip installing the extra (the extra by name where simdoctor is not installed)."""
    wanted = requirements(extra) or [f"simdoctor[{extra}]"]
    return shlex.join([sys.executable, "-m", "pip", "install", *wanted])
