"""Records of the CARLA servers simdoctor started: `<state_dir>/carla/<host>-<id>.json`, one per server.

The id is the server's RPC port (unique among live servers of a host). The host is in the file
name because a home directory, and so the state dir, is often shared by the nodes of a cluster:
a pid means nothing on another machine. Records are written atomically (temp file + rename), so a
killed simdoctor leaves either the old record or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from simdoctor.config.settings import Settings
from simdoctor.config.typed import DataError, from_data, to_data
from simdoctor.system.proctree import Tree


@dataclass(frozen=True)
class ServerRecord:
    id: str
    host: str
    backend: str  # process or docker
    port: int
    streaming_port: int
    secondary_port: int
    tm_port: int
    gpu_index: Optional[int]
    gpu_uuid: Optional[str]
    gpu_name: Optional[str]
    adapter: Optional[int]  # the -graphicsadapter value passed (None: CARLA picks)
    quality: str
    window: bool
    command: list[str]
    carla_root: str
    log: str
    started_at: float  # time.time()
    tree: Optional[Tree]  # process backend: the launcher's tree; docker: the log follower's
    container_id: Optional[str] = None
    container_name: Optional[str] = None
    ready_at: Optional[float] = None
    version: Optional[str] = None


def hostname() -> str:
    return socket.gethostname()


def carla_dir(settings: Settings) -> Path:
    return settings.state_dir / "carla"


def record_path(settings: Settings, server_id: str) -> Path:
    return carla_dir(settings) / f"{hostname()}-{server_id}.json"


def log_path(settings: Settings, server_id: str) -> Path:
    return carla_dir(settings) / f"{hostname()}-{server_id}.log"


def fresh_log(settings: Settings, server_id: str) -> Path:
    """The log for a new server; the previous one of that id is kept as `.log.1` for a post-mortem."""
    path = log_path(settings, server_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        os.replace(path, path.with_name(path.name + ".1"))
    return path


def save(settings: Settings, record: ServerRecord) -> None:
    path = record_path(settings, record.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # here: check only reads records, and tempfile imports random and its hashing

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(to_data(record), out, indent=1, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update(settings: Settings, record: ServerRecord, **changes: object) -> ServerRecord:
    new = replace(record, **changes)
    save(settings, new)
    return new


def load(path: Path) -> Optional[ServerRecord]:
    """One record, or None when the file is gone or is not a record (a foreign or damaged file)."""
    try:
        return from_data(ServerRecord, json.loads(path.read_text(encoding="utf-8")), where=path.name)
    except (OSError, ValueError, DataError):
        return None


def records(settings: Settings) -> list[ServerRecord]:
    """This host's records, by port."""
    directory = carla_dir(settings)
    if not directory.is_dir():
        return []
    found = [load(p) for p in sorted(directory.glob(f"{hostname()}-*.json"))]
    return sorted((r for r in found if r is not None), key=lambda r: r.port)


def find(settings: Settings, server_id: str) -> Optional[ServerRecord]:
    path = record_path(settings, server_id)
    return load(path) if path.exists() else None


def remove(settings: Settings, server_id: str) -> None:
    record_path(settings, server_id).unlink(missing_ok=True)
