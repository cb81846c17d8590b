"""`simdoctor env` output: the agent's environment (simdoctor.config.agentenv) written for a shell or as JSON.

Only the formatting lives here; what the variables hold is computed once, in agentenv.
"""

from __future__ import annotations

import json
import shlex

from simdoctor.config.recipe import ConfigError

FORMATS = ("bash", "fish", "json")


def _fish_quote(value: str) -> str:
    """fish single quotes: only backslash and the quote itself are special inside them."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render(env: dict[str, str], fmt: str) -> str:
    """bash serves zsh too; fish gets `set -gx`; json is one object. Always ends with a newline."""
    if fmt == "bash":
        return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    if fmt == "fish":
        return "".join(f"set -gx {name} {_fish_quote(value)}\n" for name, value in env.items())
    if fmt == "json":
        return json.dumps(env, indent=2) + "\n"
    raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
