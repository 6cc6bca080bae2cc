"""The event store: SQLite in WAL mode with synchronous=FULL, migrations, a hash-chained
event ledger, the alarms' current state and the MQTT outbox.

A Store object is used from one thread only (the writer thread in the daemon; the CLI's
own thread for read-only commands).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rfc8785

from edgeguard.filemodes import make_dir, private_file
from edgeguard.ids import iso_ms, utc_now
from edgeguard.lean_import import import_without
from edgeguard.store_error import StoreError
from edgeguard.store_outbox import OutboxQueries, insert_row
from edgeguard.store_schema import MIGRATIONS

if TYPE_CHECKING:
    from sqlite_utils import Database
else:
    # sqlite-utils imports numpy whenever it is installed (it is, for the camera processes),
    # only to map numpy column types, which the store never writes: 15 MB the daemon's process
    # would carry for nothing.
    Database = import_without("sqlite_utils", "numpy").Database

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
CHAINED_COLUMNS = (
    "id",
    "event_id",
    "type",
    "source",
    "kind",
    "state",
    "priority",
    "location",
    "occurred_at",
    "recorded_at",
    "data",
)


@dataclass
class AlarmRecord:
    """The current state of one alarm (a row of ``alarms``)."""

    event_id: str
    kind: str
    priority: int
    source: str
    location_key: str
    location: dict[str, Any]
    occurred_at: str
    recorded_at: str
    state: str
    first_seq: int | None = None
    input_active: bool = True
    trigger_count: int = 1
    detail: dict[str, Any] = field(default_factory=dict)
    cameras: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    restored_at: str | None = None
    delivered_at: str | None = None
    received_at: str | None = None
    acknowledged_at: str | None = None
    acknowledged_by: str | None = None
    dispatched_at: str | None = None
    dispatched_by: str | None = None
    resolved_at: str | None = None
    resolved_by: str | None = None
    reset_at: str | None = None
    reset_by: str | None = None
    updated_at: str | None = None

    JSON_FIELDS = ("location", "detail", "cameras", "evidence")
    LIST_FIELDS = ("cameras", "evidence")

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self.JSON_FIELDS:
                value = json.dumps(value, ensure_ascii=False)
            elif f.name == "input_active":
                value = int(value)
            row[f.name] = value
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AlarmRecord:
        values = dict(row)
        for name in cls.JSON_FIELDS:
            values[name] = (
                json.loads(values[name])
                if values.get(name)
                else ([] if name in cls.LIST_FIELDS else {})
            )
        values["input_active"] = bool(values.get("input_active"))
        return cls(**values)


@dataclass(frozen=True)
class ChainProblem:
    row_id: int
    problem: str

    def __str__(self) -> str:
        return f"row {self.row_id}: {self.problem}"


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    body = {name: row.get(name) for name in CHAINED_COLUMNS}
    digest = hashlib.sha256(prev_hash.encode("ascii") + b"\n" + bytes(rfc8785.dumps(body)))
    return digest.hexdigest()


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        if not path.exists():
            raise StoreError(f"{path}: no such database")
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        make_dir(path.parent)
        private_file(path)  # SQLite gives its -wal and -shm files the database's mode
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _conditions(*tests: tuple[str, str, Any]) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their arguments) for the (column, operator, value) tests whose value
    is given; the columns and operators are this module's own text, never input."""
    given = [(column, op, value) for column, op, value in tests if value is not None]
    return [f"{column} {op} ?" for column, op, _ in given], [value for _, _, value in given]


class Store(OutboxQueries):
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.conn = connect(path, readonly=readonly)
        self.db = Database(self.conn)
        if not readonly:
            self.db.enable_wal()
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        elif self.schema_version() == 0:
            raise StoreError(f"{path}: not an edgeguard database")
        self._head: tuple[int, str] | None = None

    def close(self) -> None:
        self.conn.close()

    # --- schema -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: schema version {current} is newer than this edgeguard "
                f"({len(MIGRATIONS)}); upgrade edgeguard"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            with self.db.atomic():
                MIGRATIONS[version - 1](self.db)
                self.conn.execute(f"PRAGMA user_version = {version}")
            logger.info("store %s migrated to schema %d", self.path, version)

    # --- transactions -----------------------------------------------------------------------
    def transaction(self) -> Any:
        """A transaction (or savepoint when nested); commits are fsynced (synchronous=FULL)."""
        return self.db.atomic()

    def forget_cached_head(self) -> None:
        """Called after a rolled-back transaction: the cached chain head may be stale."""
        self._head = None

    # --- meta and counters ------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def current_seq(self) -> int:
        """The last per-site message number saved (see alarms.SeqCounter)."""
        return int(self.meta("alarm_seq") or 0)

    def save_seq(self, seq: int) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('alarm_seq', ?)", (str(seq),)
        )

    # --- the ledger -------------------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        if self._head is None:
            row = self.conn.execute(
                "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1"
            ).fetchone()
            self._head = (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))
        return self._head

    def append_event(
        self,
        event_type: str,
        *,
        event_id: str | None = None,
        source: str | None = None,
        kind: str | None = None,
        state: str | None = None,
        priority: int | None = None,
        location: str | None = None,
        occurred_at: datetime | str | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append one hash-chained row to the ledger. Call inside a transaction."""
        last_id, prev_hash = self.head()
        when = (
            occurred_at
            if isinstance(occurred_at, str) or occurred_at is None
            else iso_ms(occurred_at)
        )
        row: dict[str, Any] = {
            "id": last_id + 1,
            "event_id": event_id,
            "type": event_type,
            "source": source,
            "kind": kind,
            "state": state,
            "priority": priority,
            "location": location,
            "occurred_at": when,
            "recorded_at": iso_ms(utc_now()),
            "data": json.dumps(data or {}, ensure_ascii=False, sort_keys=True),
        }
        row["prev_hash"] = prev_hash
        row["hash"] = row_hash(prev_hash, row)
        insert_row(self.conn, "events", row)
        self._head = (row["id"], row["hash"])
        return row

    def verify_chain(self) -> tuple[int, list[ChainProblem]]:
        """Walk the ledger; return (rows checked, problems) naming each bad row."""
        problems: list[ChainProblem] = []
        expected_prev = GENESIS_HASH
        expected_id = 1
        checked = 0
        for row in self.db.table("events").rows_where(order_by="id"):
            checked += 1
            row_id = row["id"]
            if row_id != expected_id:
                missing = (
                    f"{expected_id}" if row_id == expected_id + 1 else f"{expected_id}-{row_id - 1}"
                )
                problems.append(ChainProblem(row_id, f"row(s) {missing} deleted before this row"))
            elif row["prev_hash"] != expected_prev:
                problems.append(
                    ChainProblem(
                        row_id,
                        "does not follow the previous row (reordered or previous row replaced)",
                    )
                )
            if row_hash(row["prev_hash"], row) != row["hash"]:
                problems.append(ChainProblem(row_id, "content edited (hash does not match)"))
            expected_prev = row["hash"]
            expected_id = row_id + 1
        return checked, problems

    def query_events(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        kinds: list[str] | None = None,
        types: list[str] | None = None,
        source: str | None = None,
        location: str | None = None,
        event_id: str | None = None,
        limit: int | None = None,
        after_id: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        clauses, args = _conditions(
            ("id", ">", after_id),
            ("recorded_at", ">=", since),
            ("recorded_at", "<", until),
            ("source", "=", source),
            ("location", "=", location),
            ("event_id", "=", event_id),
        )
        for column, values in (("kind", kinds), ("type", types)):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                args.extend(values)
        where = " AND ".join(clauses) or None
        yield from self.db.table("events").rows_where(where, args, order_by="id", limit=limit)

    def query_alarms(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        kind: str | None = None,
        location: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Iterator[AlarmRecord]:
        """Alarms that occurred in [since, until), newest first."""
        clauses, args = _conditions(
            ("occurred_at", ">=", since),
            ("occurred_at", "<", until),
            ("kind", "=", kind),
            ("location_key", "=", location),
            ("state", "=", state),
        )
        rows = self.db.table("alarms").rows_where(
            " AND ".join(clauses) or None, args, order_by="occurred_at DESC",
            limit=limit, offset=offset,
        )  # fmt: skip
        for row in rows:
            yield AlarmRecord.from_row(row)

    # --- alarms -----------------------------------------------------------------------------
    def insert_alarm(self, record: AlarmRecord) -> None:
        record.updated_at = iso_ms(utc_now())
        insert_row(self.conn, "alarms", record.to_row())

    def save_alarm(self, record: AlarmRecord) -> None:
        record.updated_at = iso_ms(utc_now())
        row = record.to_row()
        event_id = row.pop("event_id")
        self.conn.execute(
            f"UPDATE alarms SET {', '.join(f'{k} = ?' for k in row)} WHERE event_id = ?",  # noqa: S608 - column names are ours
            (*row.values(), event_id),
        )

    def alarm(self, event_id: str) -> AlarmRecord | None:
        rows = list(self.db.table("alarms").rows_where("event_id = ?", [event_id]))
        return AlarmRecord.from_row(rows[0]) if rows else None

    def open_alarm_for_source(self, source: str) -> AlarmRecord | None:
        cursor = self.conn.execute(
            "SELECT * FROM alarms WHERE source = ? AND state != 'reset' "
            "ORDER BY occurred_at DESC LIMIT 1",
            (source,),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        return AlarmRecord.from_row(dict(zip([c[0] for c in cursor.description], row, strict=True)))

    def open_alarms(self) -> list[AlarmRecord]:
        rows = self.db.table("alarms").rows_where(
            "state != 'reset'", order_by="priority, occurred_at"
        )
        return [AlarmRecord.from_row(r) for r in rows]

    # --- evidence ---------------------------------------------------------------------------
    def add_evidence(self, event_id: str, item: dict[str, Any]) -> None:
        insert_row(
            self.conn,
            "evidence",
            {"event_id": event_id, **item, "recorded_at": iso_ms(utc_now())},
        )

    def alarm_priorities(self) -> dict[str, int]:
        """Priority of every alarm that has evidence, by event id (for evidence retention)."""
        rows = self.conn.execute(
            "SELECT DISTINCT a.event_id, a.priority FROM alarms a "
            "JOIN evidence e ON e.event_id = a.event_id"
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def evidence_for(self, event_id: str) -> list[dict[str, Any]]:
        return list(self.db.table("evidence").rows_where("event_id = ?", [event_id], order_by="id"))

    # --- devices ----------------------------------------------------------------------------
    def device(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.table("devices").rows_where("device = ?", [name]))
        return rows[0] if rows else None

    def save_device(self, name: str, state: str, detail: dict[str, Any]) -> None:
        self.db.table("devices").upsert(
            {
                "device": name,
                "state": state,
                "updated_at": iso_ms(utc_now()),
                "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True),
            },
            pk="device",
        )

    def devices(self) -> list[dict[str, Any]]:
        return list(self.db.table("devices").rows_where(order_by="device"))
