"""The event store: hash chain verification names the tampered row; CSV export keeps Chinese
text for Excel; migrations; the outbox survives reopening."""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlite_utils import Database

from edgeguard.store import Store, StoreError
from edgeguard.store_schema import MIGRATIONS

EDGEGUARD = str(Path(sys.executable).with_name("edgeguard"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "edgeguard.db"
    store = Store(path)
    with store.transaction():
        for i in range(1, 6):
            store.append_event(
                "alarm.new",
                event_id=f"e{i}",
                source=f"b{i}",
                kind="panic",
                state="active",
                priority=1,
                location="er",
                data={"label": "急诊分诊台", "i": i},
            )
        store.enqueue("edgeguard/x/alarm/b1", b"{}", event_id="e1", message="new", seq=1)
    store.close()
    return path


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGEGUARD, "verify-log", "--db", str(path)], capture_output=True, text=True, check=False
    )


def test_intact_log_verifies(db: Path) -> None:
    result = _verify(db)
    assert result.returncode == 0, result.stdout
    assert "OK: 5 row(s), hash chain intact" in result.stdout


def test_store_settings_and_reopen(db: Path) -> None:
    store = Store(db)
    try:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store.schema_version() == len(MIGRATIONS)
        assert [r.event_id for r in store.undelivered()] == ["e1"]
        assert store.head()[0] == 5
    finally:
        store.close()


def test_edited_row_is_named(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE events SET kind = 'test' WHERE id = 3")
    result = _verify(db)
    assert result.returncode == 1
    assert "TAMPERED: row 3: content edited" in result.stdout


def test_deleted_row_is_named(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM events WHERE id = 2")
    result = _verify(db)
    assert result.returncode == 1
    assert "TAMPERED: row 3: row(s) 2 deleted before this row" in result.stdout


def test_reordered_rows_are_named(db: Path) -> None:
    with sqlite3.connect(db) as conn:  # swap the contents of rows 2 and 4, ids kept
        rows = {r[0]: r[1:] for r in conn.execute("SELECT * FROM events WHERE id IN (2, 4)")}
        cols = [c[1] for c in conn.execute("PRAGMA table_info(events)")][1:]
        for target, source in ((2, 4), (4, 2)):
            conn.execute(
                f"UPDATE events SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                (*rows[source], target),
            )
    result = _verify(db)
    assert result.returncode == 1
    assert "row 2: does not follow the previous row" in result.stdout


def test_recomputed_edit_still_breaks_the_next_link(db: Path) -> None:
    """An editor who also recomputes the edited row's hash breaks the following row."""
    from edgeguard.store import row_hash

    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM events WHERE id = 3").fetchone())
        row["kind"] = "test"
        conn.execute(
            "UPDATE events SET kind = ?, hash = ? WHERE id = 3",
            ("test", row_hash(row["prev_hash"], row)),
        )
    result = _verify(db)
    assert "row 4: does not follow the previous row" in result.stdout


def test_events_csv_has_bom_and_round_trips_chinese(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "ledger.csv"
    result = subprocess.run(
        [
            EDGEGUARD,
            "events",
            "--db",
            str(db),
            "--csv",
            str(out),
            "--kind",
            "panic",
            "--source",
            "b2",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 1
    assert rows[0]["source"] == "b2"
    assert "急诊分诊台" in rows[0]["data"]


def test_events_filters_and_json(db: Path) -> None:
    result = subprocess.run(
        [EDGEGUARD, "events", "--db", str(db), "--json", "--limit", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(result.stdout.splitlines()) == 2
    assert "急诊分诊台" in result.stdout


def test_readonly_open_of_missing_or_foreign_db(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such database"):
        Store(tmp_path / "absent.db", readonly=True)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).close()
    with pytest.raises(StoreError, match="not an edgeguard database"):
        Store(foreign, readonly=True)


def test_newer_schema_is_refused(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer than this edgeguard"):
        Store(db)


def test_schema_1_database_is_migrated_with_its_alarms(tmp_path: Path) -> None:
    """A database written before evidence existed opens, and its alarms read with none."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    db = Database(conn)
    MIGRATIONS[0](db)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO alarms (event_id, kind, priority, source, location_key, location, "
        "occurred_at, recorded_at, state, input_active, trigger_count, detail, cameras) "
        "VALUES ('e1', 'panic', 1, 'b', 'er', '{}', 't', 't', 'active', 1, 1, '{}', '[]')"
    )
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        record = store.alarm("e1")
        assert record is not None
        assert record.evidence == []
        store.add_evidence(
            "e1",
            {"camera": "c", "kind": "snapshot", "path": "p", "sha256": "0" * 64, "bytes": 3},
        )
        assert [row["camera"] for row in store.evidence_for("e1")] == ["c"]
    finally:
        store.close()
