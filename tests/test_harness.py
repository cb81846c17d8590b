"""The suite stops only what it started: another suite's processes run as the same test user, and its
teardown must leave them alone (two suites on one machine once killed each other)."""

from __future__ import annotations

import subprocess

from conftest import SESSION_MARK, UserRuntime


def test_teardown_sees_only_this_sessions_processes(user_runtime: UserRuntime) -> None:
    home = user_runtime.mkdir("harness")
    theirs_env = {**user_runtime.env(home), SESSION_MARK: "/tmp/another-suite"}
    theirs = subprocess.Popen(user_runtime.command(["sleep", "60"]), env=theirs_env)
    ours = subprocess.Popen(user_runtime.command(["sleep", "60"]), env=user_runtime.env(home))
    try:
        seen = {p.pid for p in user_runtime.processes()}
        assert ours.pid in seen
        assert theirs.pid not in seen
    finally:
        for proc in (theirs, ours):
            proc.kill()
            proc.wait()
