"""The event store and the evidence are not world-readable, whatever the umask of the process
that made them (outside systemd, whose UMask=0027 would hide the problem)."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeguard.cameras.evidence import EvidenceFiles
from edgeguard.filemodes import DATA_DIR, DATA_FILE, PRIVATE_DIR, PRIVATE_FILE, private_file
from edgeguard.store import Store
from edgeguard.web import users


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
    item = files.save_snapshot(
        "0190a3c4-0000-7000-8000-000000000001", "cam-1", b"\xff\xd8jpeg", 1_700_000_000.0, "stream"
    )
    snapshot = Path(item["path"])
    assert _mode(snapshot) == DATA_FILE
    assert _mode(snapshot.parent) == DATA_DIR
    assert _mode(tmp_path / "evidence") == DATA_DIR


def test_users_file_is_private_from_its_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Password hashes: the file is 0600 before SQLite first opens it (SQLite gives its
    journal the database's mode), never world-readable for a moment, and stays so."""
    path = tmp_path / "console" / "users.db"
    modes_at_open: list[int] = []
    connect = sqlite3.connect

    def recording_connect(database: Path, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        modes_at_open.append(_mode(Path(database)) if Path(database).exists() else -1)
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(users.sqlite3, "connect", recording_connect)
    store = users.UserStore(path)
    store.add("wang", "correct horse battery", "admin", language="zh")
    assert set(modes_at_open) == {PRIVATE_FILE}
    assert _mode(path) == PRIVATE_FILE
    assert _mode(path.parent) == PRIVATE_DIR
    assert sorted(p.name for p in path.parent.iterdir()) == ["users.db"]  # no journal left
