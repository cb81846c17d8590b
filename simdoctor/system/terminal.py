"""The terminal every command prints to: a rich console that styles only on a terminal and honours NO_COLOR.
One factory for all of them (the doctor's report, the run's live view and report, the download's progress), so
NO_COLOR means the same everywhere."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, TextIO

if TYPE_CHECKING:  # rich loads where text is printed
    from rich.console import Console


def console(file: Optional[TextIO] = None, stderr: bool = False) -> Console:
    """A console that styles only on a terminal and honours NO_COLOR: no escape at all, bold and dim included
    (rich's own no_color keeps those). Lines are wrapped by fit() and shell_lines(), never by rich, so that a
    command is broken only where a shell allows."""
    from rich.console import Console

    plain = bool(os.environ.get("NO_COLOR"))
    return Console(
        file=file,
        stderr=stderr,
        highlight=False,
        no_color=plain,
        color_system=None if plain else "auto",
        soft_wrap=True,
    )
