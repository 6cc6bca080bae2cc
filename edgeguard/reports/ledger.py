"""The month's rows read from the site's ledger (the hash-chained ``events`` table): the
records themselves, not counters kept on the side. Read-only; plain SQL on indexed columns."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edgeguard.ids import iso_ms, parse_iso
from edgeguard.reports.month import ReportMonth

# The ledger rows that carry an alarm's progress, and the time each one stands for.
STAGE_EVENTS = {
    "alarm.delivered": "delivered",
    "alarm.received": "received",
    "alarm.acknowledged": "acknowledged",
    "alarm.dispatched": "dispatched",
    "alarm.resolved": "resolved",
    "alarm.reset": "reset",
    "alarm.local_ack": "local_ack",
}


@dataclass(slots=True)
class AlarmTrail:
    """One alarm raised in the month, with the moments of its progress from the ledger."""

    event_id: str
    kind: str
    priority: int
    source: str
    location: str
    pressed: datetime
    stages: dict[str, datetime] = field(default_factory=dict)
    reset_by: str | None = None
    police: dict[str, str] = field(default_factory=dict)  # stage -> who (police acks)
    evidence: int = 0


@dataclass(frozen=True, slots=True)
class StateChange:
    device: str
    state: str
    at: datetime


@dataclass(slots=True)
class MonthRows:
    alarms: list[AlarmTrail]
    states: list[StateChange]  # device.status, oldest first, incl. the last before the month
    appliance: list[tuple[str, datetime]]  # ("start" | "stop", at), oldest first
    evidence: dict[str, int]  # kind -> files kept for the month's alarms
    evidence_bytes: int
    pruned: int  # evidence folders deleted by retention in the month
    rows_read: int


def _moment(row: sqlite3.Row) -> datetime:
    return parse_iso(str(row["occurred_at"] or row["recorded_at"]))


def _data(row: sqlite3.Row) -> dict[str, Any]:
    try:
        value = json.loads(row["data"] or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def read_month(conn: sqlite3.Connection, month: ReportMonth) -> MonthRows:
    conn.row_factory = sqlite3.Row
    start, until = iso_ms(month.start), iso_ms(month.until)
    alarms = _alarms(conn, start, until)
    rows = len(alarms)
    rows += _stages(conn, alarms)
    states = _states(conn, start, until)
    appliance = _appliance(conn, start, until)
    kinds, size = _evidence(conn, alarms)
    pruned = conn.execute(
        "SELECT data FROM events WHERE type = 'evidence.pruned' AND recorded_at >= ? "
        "AND recorded_at < ?",
        (start, until),
    ).fetchall()
    folders = sum(len(_data(row).get("folders") or []) for row in pruned)
    rows += len(states) + len(appliance) + len(pruned)
    return MonthRows(list(alarms.values()), states, appliance, kinds, size, folders, rows)


def _alarms(conn: sqlite3.Connection, start: str, until: str) -> dict[str, AlarmTrail]:
    found: dict[str, AlarmTrail] = {}
    for row in conn.execute(
        "SELECT * FROM events WHERE type = 'alarm.new' AND occurred_at >= ? AND occurred_at < ? "
        "ORDER BY id",
        (start, until),
    ):
        event_id = str(row["event_id"])
        if event_id in found:  # recorded late a second time: the first row counts
            continue
        found[event_id] = AlarmTrail(
            event_id=event_id,
            kind=str(row["kind"]),
            priority=int(row["priority"] or 0),
            source=str(row["source"] or ""),
            location=str(row["location"] or ""),
            pressed=_moment(row),
        )
    return found


def _stages(conn: sqlite3.Connection, alarms: dict[str, AlarmTrail]) -> int:
    """Each alarm's later rows (they may fall after the month: an alarm of the 31st reset on
    the 1st). Read by the event id index, in chunks of SQLite's parameter limit."""
    ids, count = list(alarms), 0
    types = ", ".join(f"'{name}'" for name in (*STAGE_EVENTS, "evidence.snapshot", "evidence.clip"))
    for first in range(0, len(ids), 500):
        chunk = ids[first : first + 500]
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT * FROM events WHERE event_id IN ({marks}) AND type IN ({types}) "  # noqa: S608
            "ORDER BY id",
            chunk,
        ):
            count += 1
            _apply_stage(alarms[str(row["event_id"])], row)
    return count


def _apply_stage(trail: AlarmTrail, row: sqlite3.Row) -> None:
    kind, data = str(row["type"]), _data(row)
    if kind.startswith("evidence."):
        trail.evidence += 1
        return
    stage = STAGE_EVENTS[kind]
    if stage in trail.stages:
        return
    at = data.get("at")
    trail.stages[stage] = parse_iso(at) if isinstance(at, str) else parse_iso(row["recorded_at"])
    by = data.get("by")
    if stage == "reset":
        trail.reset_by = str(by) if by is not None else None
    elif isinstance(by, str) and stage in ("acknowledged", "dispatched", "resolved"):
        trail.police[stage] = by


def _states(conn: sqlite3.Connection, start: str, until: str) -> list[StateChange]:
    before = conn.execute(
        "SELECT * FROM events WHERE id IN (SELECT MAX(id) FROM events WHERE type = "
        "'device.status' AND recorded_at < ? GROUP BY source)",
        (start,),
    ).fetchall()
    within = conn.execute(
        "SELECT * FROM events WHERE type = 'device.status' AND recorded_at >= ? AND "
        "recorded_at < ? ORDER BY id",
        (start, until),
    ).fetchall()
    return [
        StateChange(str(row["source"]), str(row["state"]), parse_iso(row["recorded_at"]))
        for row in [*before, *within]
    ]


def _appliance(conn: sqlite3.Connection, start: str, until: str) -> list[tuple[str, datetime]]:
    rows = conn.execute(
        "SELECT type, recorded_at FROM events WHERE type IN ('system.start', 'system.stop') "
        "AND recorded_at < ? AND (recorded_at >= ? OR id = (SELECT MAX(id) FROM events WHERE "
        "type IN ('system.start', 'system.stop') AND recorded_at < ?)) ORDER BY id",
        (until, start, start),
    ).fetchall()
    return [
        (str(row["type"]).removeprefix("system."), parse_iso(row["recorded_at"])) for row in rows
    ]


def _evidence(
    conn: sqlite3.Connection, alarms: dict[str, AlarmTrail]
) -> tuple[dict[str, int], int]:
    ids, kinds, size = list(alarms), dict[str, int](), 0
    for first in range(0, len(ids), 500):
        chunk = ids[first : first + 500]
        marks = ", ".join("?" * len(chunk))
        for kind, count, total in conn.execute(
            f"SELECT kind, COUNT(*), SUM(bytes) FROM evidence WHERE event_id IN ({marks}) "  # noqa: S608
            "GROUP BY kind",
            chunk,
        ):
            kinds[str(kind)] = kinds.get(str(kind), 0) + int(count)
            size += int(total or 0)
    return kinds, size
