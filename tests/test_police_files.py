"""The police receiver's files on disk: written durably, private whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from edgeguard.ids import utc_now
from edgeguard.police.handler import MessageHandler
from edgeguard.police.snapshots import OrphanLimits, save_snapshot
from edgeguard.police.store import PoliceStore
from edgeguard.police.tracker import Tracker
from edgeguard.receiver import Receiver
from edgeguard.signing import Signer, generate_keypair, load_public_key

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


# --- snapshots of alarms that never arrive ---------------------------------------------------
class SnapshotSite:
    """A site's key pair, and the receiver's handler (real store, files) that knows it."""

    def __init__(self, tmp_path: Path, limits: OrphanLimits) -> None:
        public = generate_keypair(tmp_path / "hosp-01.key")
        self.signer = Signer.from_file(tmp_path / "hosp-01.key")
        self.store = PoliceStore(tmp_path / "police.db")
        self.folder = tmp_path / "snapshots"
        receiver = Receiver({"hosp-01": load_public_key(public)})
        self.handler = MessageHandler(
            self.store, Tracker(lambda _site: 15.0), receiver, self.folder, {}, orphans=limits
        )

    def alarm(self, event_id: str) -> None:
        payload = {
            "v": 1, "type": "alarm", "message": "new", "event_id": event_id, "site": "hosp-01",
            "seq": 1, "kind": "panic", "priority": 1, "source": "er-button", "state": "active",
            "location": {"id": "er", "label": "ER"}, "occurred_at": "2026-11-23T01:45:41.100Z",
        }  # fmt: skip
        body = self.signer.encode(payload)
        self.handler.handle("edgeguard/hosp-01/alarm/er-button", body, False, 0.0)

    def snapshot(self, event_id: str, size: int = 16) -> None:
        body = b"\xff\xd8" + event_id.encode().ljust(size - 4, b"x") + b"\xff\xd9"
        self.handler.handle(f"edgeguard/hosp-01/snapshot/{event_id}/cam-1", body, False, 0.0)

    def kept(self) -> set[str]:
        rows = self.store.conn.execute("SELECT event_id FROM snapshots").fetchall()
        on_disk = {p.parent.name for p in self.folder.glob("hosp-01/*/cam-1.jpg")}
        assert on_disk == {r[0] for r in rows}  # no row without its file, no file left over
        return on_disk


def test_orphan_snapshots_are_capped_by_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = SnapshotSite(tmp_path, OrphanLimits(max_count=3))
    try:
        site.alarm("a0")
        site.snapshot("a0")
        for n in range(1, 6):
            site.snapshot(f"o{n}")  # no alarm of that id, ever
        assert site.kept() == {"a0", "o3", "o4", "o5"}  # the snapshot of a real alarm stays
        dropped = [r for r in caplog.records if "whose alarm never arrived" in r.getMessage()]
        assert dropped
        assert {r.levelno for r in dropped} == {logging.WARNING}
        assert "hosp-01/o1/cam-1" in dropped[0].getMessage()
    finally:
        site.store.close()


def test_orphan_snapshots_are_capped_by_bytes_and_kept_for_a_window(tmp_path: Path) -> None:
    site = SnapshotSite(tmp_path, OrphanLimits(window_s=600, max_bytes=100))
    try:
        for n in range(1, 4):
            site.snapshot(f"o{n}", size=40)
        assert site.kept() == {"o2", "o3"}  # 80 bytes: the oldest went
        site.alarm("o3")  # its alarm arrived after all (another path): no longer an orphan
        site.handler.prune_orphans()
        assert site.kept() == {"o2", "o3"}  # within the window: still waiting for its alarm
        site.handler.prune_orphans(now=utc_now() + timedelta(seconds=601))
        assert site.kept() == {"o3"}
    finally:
        site.store.close()


def test_a_warning_about_an_outside_topic_carries_no_control_characters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = SnapshotSite(tmp_path, OrphanLimits())
    topic = "edgeguard/hosp-01\x1b[2J\x00/alarm/" + "x" * 1000
    site.handler.handle(topic, b"not json\x1b[31m", False, 0.0)
    (record,) = [r for r in caplog.records if "SECURITY WARNING" in r.getMessage()]
    assert not any(ord(ch) < 0x20 for ch in record.getMessage())
    assert len(record.getMessage()) < 800
    (stored,) = site.store.conn.execute("SELECT text FROM warnings").fetchall()
    assert "\x1b" not in stored[0]
