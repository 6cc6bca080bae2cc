"""The police receiver's files on disk: snapshots written durably."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeguard.police.snapshots import save_snapshot

JPEG = b"\xff\xd8\xff\xe0 a snapshot \xff\xd9"


def record_disk_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every fsync (with the path of its fd) and rename, in order, through the real calls."""
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", str(Path(f"/proc/self/fd/{fd}").readlink())))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        real_replace(src, dst)
        calls.append(("replace", str(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_snapshot_rename_and_new_folders_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "snapshots"
    calls = record_disk_calls(monkeypatch)
    path = save_snapshot(root, "hosp-01", "e1", "cam-1", JPEG)
    assert path is not None
    assert path.read_bytes() == JPEG
    renamed = calls.index(("replace", str(path)))
    assert ("fsync", str(path.parent)) in calls[renamed:], calls  # the rename is durable
    for created in (root, root / "hosp-01", root / "hosp-01" / "e1"):
        assert ("fsync", str(created.resolve().parent)) in calls, calls  # so is its folder

    calls.clear()
    second = save_snapshot(root, "hosp-01", "e1", "cam-2", JPEG)
    assert second is not None
    assert calls[calls.index(("replace", str(second))) :].count(("fsync", str(path.parent))) == 1
