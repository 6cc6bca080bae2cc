"""The police database: dedupe, ordering, history filters, CSV export (Chinese, BOM),
migrations and the changes feed."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edgeguard.police import schema
from edgeguard.police.db import PostgresDatabase
from edgeguard.police.store import PoliceStore
from edgeguard.store import StoreError

LOCATION = {"id": "er", "label": "急诊分诊台", "building": "门诊楼", "floor": "1F", "zone": "ER"}


def alarm(
    event_id: str = "01a20614-91ec-70e4-b533-6874e06fb7a0",
    seq: int = 1,
    *,
    message: str = "new",
    site: str = "hosp-01",
    kind: str = "panic",
    priority: int = 1,
    occurred_at: str = "2026-11-23T01:45:41.100Z",
    state: str = "active",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "v": 1,
        "type": "alarm",
        "message": message,
        "event_id": event_id,
        "site": site,
        "site_name": "市第一人民医院",
        "seq": seq,
        "kind": kind,
        "state": state,
        "priority": priority,
        "source": "er-button",
        "location": LOCATION,
        "occurred_at": occurred_at,
        "updated_at": occurred_at,
        "input_active": True,
        "trigger_count": 1,
        "restored_at": None,
        "reset_at": None,
        "reset_by": None,
        "detail": {},
        "cameras": [],
        "sig": "x",
        **extra,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PoliceStore]:
    """The same tests on both engines behind the one store interface."""
    if request.param == "sqlite":
        opened = PoliceStore(tmp_path / "police.db", receiver="r1")
    else:
        opened = PoliceStore(PostgresDatabase(request.getfixturevalue("pg_dsn")), receiver="r1")
    yield opened
    opened.close()


def _count(store: PoliceStore, table: str) -> int:
    with store.db.read() as tx:
        return int(tx.execute(f"SELECT COUNT(*) AS n FROM {table}").scalar())


def test_duplicate_messages_are_stored_once(store: PoliceStore) -> None:
    assert store.record_alarm("hosp-01", alarm())
    assert not store.record_alarm("hosp-01", alarm())  # resent after a lost PUBACK
    assert store.record_alarm("hosp-01", alarm(seq=2, message="update", state="delivered"))
    assert _count(store, "messages") == 2
    assert _count(store, "alarms") == 1
    row = store.alarm_row(alarm()["event_id"])
    assert row is not None
    assert (row["seq"], row["message"], row["site_state"]) == (2, "update", "delivered")
    assert row["location"] == LOCATION
    assert row["police_state"] == "new"


def test_late_lower_seq_is_history_not_state(store: PoliceStore) -> None:
    store.record_alarm("hosp-01", alarm(seq=3, message="restored", state="delivered"))
    store.record_alarm("hosp-01", alarm(seq=1))
    row = store.alarm_row(alarm()["event_id"])
    assert row is not None
    assert (row["seq"], row["message"]) == (3, "restored")
    detail = store.alarm(alarm()["event_id"])
    assert detail is not None
    assert [m["seq"] for m in detail["messages"]] == [1, 3]


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_two_receivers_on_one_database_store_once(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    def opened(receiver: str) -> PoliceStore:
        if engine == "sqlite":
            return PoliceStore(tmp_path / "p.db", receiver=receiver)
        return PoliceStore(PostgresDatabase(dsn), receiver=receiver)

    dsn = request.getfixturevalue("pg_dsn") if engine == "postgresql" else ""
    first, second = opened("a"), opened("b")
    assert first.record_alarm("hosp-01", alarm())
    assert not second.record_alarm("hosp-01", alarm())
    assert second.record_alarms([("hosp-01", alarm(), None), ("hosp-01", alarm(seq=2), None)]) == [
        False,
        True,
    ]
    assert _count(second, "messages") == 2
    first.close()
    second.close()


def test_open_alarms_p1_first_then_oldest(store: PoliceStore) -> None:
    store.record_alarm("hosp-01", alarm("e-p3", priority=3, occurred_at="2026-01-01T00:00:00.000Z"))
    store.record_alarm("hosp-01", alarm("e-p1-late", occurred_at="2026-01-01T00:00:09.000Z"))
    store.record_alarm("hosp-01", alarm("e-p1-early", occurred_at="2026-01-01T00:00:05.000Z"))
    store.record_alarm("hosp-01", alarm("e-done", occurred_at="2026-01-01T00:00:01.000Z"))
    store.record_action("e-done", "resolved", "王", ok=True)
    assert [a["event_id"] for a in store.open_alarms()] == ["e-p1-early", "e-p1-late", "e-p3"]


def test_police_state_moves_forward_only(store: PoliceStore) -> None:
    store.record_alarm("hosp-01", alarm("e1"))
    store.record_action("e1", "dispatched", "王", ok=True)
    store.record_action("e1", "acknowledged", "李", ok=True)
    store.record_action("e1", "resolved", "李", ok=False, error="no PUBACK")
    row = store.alarm_row("e1")
    assert row is not None
    assert (row["police_state"], row["police_by"]) == ("dispatched", "王")
    detail = store.alarm("e1")
    assert detail is not None
    assert [(a["state"], a["published_ok"]) for a in detail["actions"]] == [
        ("dispatched", 1),
        ("acknowledged", 1),
        ("resolved", 0),
    ]


def _history_fixture(store: PoliceStore) -> None:
    store.record_alarm("hosp-01", alarm("a", occurred_at="2026-11-01T00:00:00.000Z"))
    store.record_alarm(
        "hosp-02",
        alarm("b", site="hosp-02", kind="intrusion", occurred_at="2026-11-02T00:00:00.000Z"),
    )
    store.record_alarm("hosp-01", alarm("c", kind="test", occurred_at="2026-11-03T00:00:00.000Z"))
    store.record_action("a", "acknowledged", "王", ok=True)


def test_history_filters(store: PoliceStore) -> None:
    _history_fixture(store)

    def ids(**filters: Any) -> list[str]:
        return [a["event_id"] for a in store.history(**filters)]

    assert ids() == ["c", "b", "a"]
    assert ids(since="2026-11-02") == ["c", "b"]
    assert ids(until="2026-11-02T00:00:00.000Z") == ["a"]
    assert ids(site="hosp-02") == ["b"]
    assert ids(kind="test") == ["c"]
    assert ids(state="acknowledged") == ["a"]
    assert ids(limit=1, offset=1) == ["b"]
    assert ids(site="hosp-01", state="new") == ["c"]


def test_csv_export_utf8_bom_chinese(store: PoliceStore, tmp_path: Path) -> None:
    _history_fixture(store)
    store.record_alarm(
        "hosp-01",
        alarm(
            "d",
            location={"id": "x", "label": "=HYPERLINK(1)"},
            occurred_at="2026-10-01T00:00:00.000Z",
        ),
    )
    target = tmp_path / "out.csv"
    with target.open("w", encoding="utf-8", newline="") as handle:
        assert store.write_csv(handle, site="hosp-01") == 3
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["event_id"] for r in rows] == ["c", "a", "d"]
    assert rows[0]["label"] == "急诊分诊台"
    assert rows[0]["building"] == "门诊楼"
    assert rows[0]["site_name"] == "市第一人民医院"
    assert rows[1]["police_state"] == "acknowledged"
    assert rows[2]["label"] == "'=HYPERLINK(1)"  # not run as a formula by a spreadsheet
    lines = list(store.export_csv(kind="intrusion"))
    assert lines[0].startswith("\ufeffevent_id,")
    assert len(lines) == 2


def test_changes_feed_in_the_same_transaction(store: PoliceStore) -> None:
    if store.db.dialect != "sqlite":
        pytest.skip("PostgreSQL announces by NOTIFY: test_notify_delivered_at_commit")
    start = store.last_change_id()
    store.record_alarm("hosp-01", alarm("e1"))
    store.record_alarm("hosp-01", alarm("e1"))  # duplicate: no change
    store.update_site("hosp-01", {"state": "online"})
    store.update_site("hosp-01", {"heartbeat_counter": 7}, announce=False)
    warning = store.add_warning("hosp-09", "edgeguard/hosp-09/status", "unknown site")
    store.note_link()
    changes = store.changes_since(start)
    assert [(c["what"], c["key"]) for c in changes] == [
        ("alarm", "e1"),
        ("site", "hosp-01"),
        ("warning", str(warning)),
        ("link", ""),
    ]
    assert store.changes_since(changes[-1]["id"]) == []
    assert store.warnings(10)[0]["text"] == "unknown site"
    (site,) = store.sites()
    assert (site["id"], site["state"], site["heartbeat_counter"]) == ("hosp-01", "online", 7)


def test_snapshots_checked_against_evidence(store: PoliceStore, tmp_path: Path) -> None:
    store.record_alarm("hosp-01", alarm("e1"))
    assert (
        store.record_snapshot("hosp-01", "e1", "cam-1", path=tmp_path / "a", sha256="aa", size=3)
        is None
    )
    evidence = [
        {"camera": "cam-1", "kind": "snapshot", "sha256": "aa"},
        {"camera": "cam-2", "kind": "snapshot", "sha256": "bb"},
    ]
    store.record_alarm("hosp-01", alarm("e1", seq=2, message="evidence", evidence=evidence))
    assert store.check_evidence("hosp-01", "e1", evidence) == []
    # a snapshot arriving after its evidence message is checked at once
    assert (
        store.record_snapshot("hosp-01", "e1", "cam-2", path=tmp_path / "b", sha256="XX", size=3)
        is False
    )
    detail = store.alarm("e1")
    assert detail is not None
    assert [(s["camera"], s["verified"]) for s in detail["snapshots"]] == [
        ("cam-1", True),
        ("cam-2", False),
    ]
    assert store.snapshot_path("hosp-01", "e1", "cam-1") == tmp_path / "a"
    assert store.snapshot_path("hosp-01", "e1", "nope") is None


def test_schema_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.db"
    PoliceStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()

    current = len(schema.MIGRATIONS)
    add_column = "ALTER TABLE alarms ADD COLUMN note TEXT"
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, add_column])
    reopened = PoliceStore(path)
    columns = [r[1] for r in reopened.conn.execute("PRAGMA table_info(alarms)")]
    assert "note" in columns
    assert reopened.conn.execute("PRAGMA user_version").fetchone()[0] == current + 1
    reopened.close()
    PoliceStore(path).close()  # already current: nothing re-applied

    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    with pytest.raises(StoreError, match="newer"):
        PoliceStore(path)


def test_changes_feed_keeps_its_last_rows(store: PoliceStore) -> None:
    if store.db.dialect != "sqlite":
        pytest.skip("no changes table on PostgreSQL")
    for _ in range(30):
        store.note_link()
    last = store.last_change_id()
    store.prune_changes(keep=10)
    ids = [int(change["id"]) for change in store.changes_since(0)]
    assert ids == list(range(last - 9, last + 1))
    store.note_link()  # the feed goes on after a prune
    assert [int(c["id"]) for c in store.changes_since(last)] == [last + 1]


def test_notify_delivered_at_commit_and_only_then(pg_dsn: str) -> None:
    store = PoliceStore(PostgresDatabase(pg_dsn), receiver="r1")
    with psycopg.connect(pg_dsn, autocommit=True) as listener:
        listener.execute("LISTEN edgeguard_changes")

        def rolled_back() -> None:
            with store.db.write() as tx:
                store._change(tx, "site", "rolled-back")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            rolled_back()
        store.record_alarm("hosp-01", alarm("e1"))
        store.record_alarm("hosp-01", alarm("e1"))  # duplicate: nothing announced
        store.update_sites([("hosp-01", {"state": "online"}, True), ("hosp-02", {}, False)])
        heard = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
        assert heard == ["alarm:e1", "site:hosp-01"]
        assert [n.payload for n in listener.notifies(timeout=0.5)] == []
    store.close()


def test_postgresql_schema_versioned_and_migrated_once(pg_dsn: str) -> None:
    with ThreadPoolExecutor(3) as pool:  # three receivers starting at once: one migrates
        stores = list(pool.map(lambda _: PoliceStore(PostgresDatabase(pg_dsn)), range(3)))
    with psycopg.connect(pg_dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == list(range(1, len(schema.MIGRATIONS) + 1))
    for opened in stores:
        opened.close()
