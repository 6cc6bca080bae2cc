"""The police receiver's files on disk: written durably, private whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeguard.police.snapshots import save_snapshot
from edgeguard.police.store import PoliceStore

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


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask outside systemd (the unit's UMask=0027 is not there to help)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_database_and_snapshots_are_private(tmp_path: Path) -> None:
    state = tmp_path / "var" / "police"
    store = PoliceStore(state / "police.db", receiver="r1")
    try:
        store.add_warning("hosp-01", "edgeguard/hosp-01/alarm/x", "a write: the WAL is used")
        files = [state / name for name in ("police.db", "police.db-wal", "police.db-shm")]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert (mode(tmp_path / "var"), mode(state)) == (0o700, 0o700)
        path = save_snapshot(state / "snapshots", "hosp-01", "e1", "cam-1", JPEG)
        assert path is not None
        assert mode(path) == 0o600
        for folder in (state / "snapshots", state / "snapshots" / "hosp-01", path.parent):
            assert mode(folder) == 0o700, folder
    finally:
        store.close()


@pytest.mark.usefixtures("umask_022")
def test_a_database_made_world_readable_earlier_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "police.db"
    PoliceStore(database).close()
    for name in ("police.db", "police.db-wal", "police.db-shm"):
        if (tmp_path / name).exists():
            (tmp_path / name).chmod(0o644)
    PoliceStore(database).close()
    assert mode(database) == 0o600
