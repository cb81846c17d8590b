"""Live progress for a terminal: one rich bar with total and active files, bytes, speed and ETA."""

from __future__ import annotations

import threading

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from simdoctor.config.settings import redact_url
from simdoctor.system import terminal


class RichProgress:
    """The engine's Observer, drawn on stderr; used only on a terminal and never with --json."""

    def __init__(self, label: str) -> None:
        self._label = redact_url(label)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=terminal.console(stderr=True),
            transient=True,
        )
        self._task = None
        self._lock = threading.Lock()
        self._files = self._done = self._active = 0

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _describe(self) -> str:
        return f"{self._label}  {self._done}/{self._files} files, {self._active} active"

    def start(self, files: int, total: int, done: int) -> None:
        with self._lock:
            self._files = files
            self._task = self._progress.add_task(self._describe(), total=total, completed=done)

    def file_started(self, relpath: str) -> None:
        with self._lock:
            self._active += 1
            self._progress.update(self._task, description=self._describe())

    def advance(self, nbytes: int) -> None:
        self._progress.advance(self._task, nbytes)

    def file_finished(self, relpath: str) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)
            self._done += 1
            self._progress.update(self._task, description=self._describe())
