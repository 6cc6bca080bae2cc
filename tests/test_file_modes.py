"""The event store and the evidence are not world-readable, whatever the umask of the process
that made them (outside systemd, whose UMask=0027 would hide the problem)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeguard.cameras.evidence import EvidenceFiles
from edgeguard.filemodes import DATA_DIR, DATA_FILE, private_file
from edgeguard.store import Store


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # a login shell's: files 0644, folders 0755
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_event_store_and_its_wal_are_private(tmp_path: Path) -> None:
    db = tmp_path / "state" / "edgeguard.db"
    store = Store(db)
    try:
        with store.transaction():
            store.append_event("test.event", data={})
        files = sorted(p.name for p in db.parent.iterdir())
        assert files == ["edgeguard.db", "edgeguard.db-shm", "edgeguard.db-wal"]
        assert {name: _mode(db.parent / name) for name in files} == dict.fromkeys(files, DATA_FILE)
        assert _mode(db.parent) == DATA_DIR
    finally:
        store.close()


def test_an_existing_world_readable_store_is_closed_to_others(tmp_path: Path) -> None:
    db = tmp_path / "edgeguard.db"
    db.write_bytes(b"")
    db.chmod(0o644)
    private_file(db)
    assert _mode(db) == 0o640


def test_evidence_folders_and_snapshots_are_private(tmp_path: Path) -> None:
    files = EvidenceFiles(tmp_path / "evidence")
    item = files.save_snapshot("0190a3c4-0000-7000-8000-000000000001", "cam-1", b"\xff\xd8jpeg",
                               1_700_000_000.0, "stream")
    snapshot = Path(item["path"])
    assert _mode(snapshot) == DATA_FILE
    assert _mode(snapshot.parent) == DATA_DIR
    assert _mode(tmp_path / "evidence") == DATA_DIR
