"""Atomic writes: the final name holds the old file or the new one, never a part of either."""

from __future__ import annotations

import os
import stat

import pytest

from simdoctor.download import manifest
from simdoctor.system import atomic


def test_replaces_and_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "merged.json"
    atomic.write_json(path, {"driving score": 1.5})
    atomic.write_json(path, {"driving score": 2.5}, indent=4)
    assert path.read_text() == '{\n    "driving score": 2.5\n}\n'
    assert os.listdir(path.parent) == ["merged.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()


def test_data_that_cannot_be_written_leaves_the_old_file(tmp_path):
    path = tmp_path / "run.json"
    atomic.write_text(path, "old\n")
    with pytest.raises(TypeError):
        atomic.write_json(path, {"not json": object()})
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["run.json"]


def test_a_failed_write_removes_its_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "routes" / "1711.xml"
    atomic.write_bytes(path, b"<routes/>")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        atomic.write_bytes(path, b"<routes>new</routes>")
    assert path.read_bytes() == b"<routes/>" and os.listdir(path.parent) == ["1711.xml"]


def test_the_manifest_is_written_through_it(tmp_path):
    record = manifest.Manifest("hf:model/RenzKa/simlingo@abc", {"a.pt": manifest.FileRecord(3, 4, sha256="00")})
    manifest.write(tmp_path, record)
    assert manifest.read(tmp_path) == record
    assert os.listdir(tmp_path / ".simdoctor") == ["manifest.json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
