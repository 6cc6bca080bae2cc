"""The read side of the police database: what the dashboard shows and exports."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from edgeguard.ids import iso_ms
from edgeguard.ledger_csv import spreadsheet_safe

ALARM_COLUMNS = (
    "event_id, site, site_name, source, kind, priority, location, raised_at, received_at, "
    "updated_at, message, site_state, police_state, police_by, police_at, seq, payload"
)
CSV_FIELDS = [
    "event_id", "site", "site_name", "kind", "priority", "source", "building", "floor", "room",
    "zone", "label", "raised_at", "received_at", "site_state", "police_state", "police_by",
    "police_at", "reset_by", "reset_at",
]  # fmt: skip
PAGE = 500


def _loads(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) and text else None


def alarm_row(row: sqlite3.Row) -> dict[str, Any]:
    """An ``alarms`` row as the dashboard gets it: location and payload parsed."""
    out = dict(row)
    out["location"] = _loads(out.get("location")) or {}
    out["payload"] = _loads(out.get("payload")) or {}
    return out


def _bound(value: str | datetime | None) -> str | None:
    """A time bound as the stored ISO form (UTC, ms, Z) so that strings compare in order."""
    if value is None or isinstance(value, str):
        return value
    return iso_ms(value)



class StoreQueries:
    conn: sqlite3.Connection

    # --- alarms -----------------------------------------------------------------------------
    def open_alarms(self) -> list[dict[str, Any]]:
        """Alarms the police have not resolved: P1 first, then oldest first."""
        rows = self.conn.execute(
            f"SELECT {ALARM_COLUMNS} FROM alarms WHERE police_state != 'resolved' "  # noqa: S608
            "ORDER BY priority, raised_at, event_id"
        ).fetchall()
        return [alarm_row(r) for r in rows]

    def live_alarms(self, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` open alarms as the live view ranks them: those nobody has
        acknowledged first (a new alarm is never hidden behind handled ones), then P1 first,
        then oldest first."""
        rows = self.conn.execute(
            f"SELECT {ALARM_COLUMNS} FROM alarms WHERE police_state != 'resolved' "  # noqa: S608
            "ORDER BY police_state != 'new', priority, raised_at, event_id LIMIT ?",
            (limit,),
        ).fetchall()
        return [alarm_row(r) for r in rows]

    def open_count(self) -> int:
        """How many alarms the police have not resolved."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM alarms WHERE police_state != 'resolved'"
        ).fetchone()
        return int(row[0])

    def alarm_row(self, event_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {ALARM_COLUMNS} FROM alarms WHERE event_id = ?",  # noqa: S608
            (event_id,),
        ).fetchone()
        return None if row is None else alarm_row(row)

    def history(  # noqa: PLR0917 - the dashboard's positional signature
        self,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        site: str | None = None,
        kind: str | None = None,
        state: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Alarms raised in [since, until), newest first; ``state`` is the police state."""
        where, params = self._filters(since, until, site, kind, state)
        sql = f"SELECT {ALARM_COLUMNS} FROM alarms{where} ORDER BY raised_at DESC, event_id DESC"  # noqa: S608
        sql += " LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, offset]
        return [alarm_row(r) for r in self.conn.execute(sql, params).fetchall()]

    @staticmethod
    def _filters(
        since: str | datetime | None,
        until: str | datetime | None,
        site: str | None,
        kind: str | None,
        state: str | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("raised_at >= ?", _bound(since)),
            ("raised_at < ?", _bound(until)),
            ("site = ?", site),
            ("kind = ?", kind),
            ("police_state = ?", state),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def alarm(self, event_id: str) -> dict[str, Any] | None:
        """An alarm with its lifecycle: every message by seq, every police action, snapshots."""
        out = self.alarm_row(event_id)
        if out is None:
            return None
        out["messages"] = [
            {**dict(r), "payload": _loads(r["payload"])}
            for r in self.conn.execute(
                "SELECT seq, message, received_at, receiver, payload FROM messages "
                "WHERE event_id = ? ORDER BY seq",
                (event_id,),
            )
        ]
        out["actions"] = [
            dict(r)
            for r in self.conn.execute(
                "SELECT state, by, at, published_ok, error, receiver FROM actions "
                "WHERE event_id = ? ORDER BY id",
                (event_id,),
            )
        ]
        out["snapshots"] = self.snapshots(event_id)
        return out

    def snapshots(self, event_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT camera, sha256, bytes, received_at, verified FROM snapshots "
            "WHERE event_id = ? ORDER BY camera",
            (event_id,),
        ).fetchall()
        return [
            {**dict(r), "verified": None if r["verified"] is None else bool(r["verified"])}
            for r in rows
        ]

    def snapshot_path(self, site: str, event_id: str, camera: str) -> Path | None:
        row = self.conn.execute(
            "SELECT path FROM snapshots WHERE site = ? AND event_id = ? AND camera = ?",
            (site, event_id, camera),
        ).fetchone()
        return None if row is None else Path(row[0])

    # --- export -----------------------------------------------------------------------------
    def export_csv(
        self,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        site: str | None = None,
        kind: str | None = None,
        state: str | None = None,
    ) -> Iterator[str]:
        """The filtered history as CSV lines, newest first. The first line starts with a BOM
        (U+FEFF): encoded as UTF-8 the file opens in Excel with its Chinese text intact."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        yield "\ufeff" + buffer.getvalue()
        offset = 0
        while True:
            page = self.history(since, until, site, kind, state, limit=PAGE, offset=offset)
            for alarm in page:
                buffer.seek(0)
                buffer.truncate()
                writer.writerow({k: spreadsheet_safe(v) for k, v in self._csv_row(alarm).items()})
                yield buffer.getvalue()
            if len(page) < PAGE:
                return
            offset += PAGE

    def write_csv(self, stream: TextIO, **filters: Any) -> int:
        """Write export_csv to a text stream (open it with newline=''); returns the rows."""
        rows = -1  # the header is not a row
        for line in self.export_csv(**filters):
            stream.write(line)
            rows += 1
        return rows

    @staticmethod
    def _csv_row(alarm: dict[str, Any]) -> dict[str, Any]:
        location = alarm["location"] if isinstance(alarm["location"], dict) else {}
        payload = alarm["payload"] if isinstance(alarm["payload"], dict) else {}
        return {
            **alarm,
            **{k: location.get(k) for k in ("building", "floor", "room", "zone", "label")},
            "reset_by": payload.get("reset_by"),
            "reset_at": payload.get("reset_at"),
        }

    # --- sites, warnings, changes -----------------------------------------------------------
    def sites(self) -> list[dict[str, Any]]:
        """Every known site, by id, with its devices."""
        devices: dict[str, list[dict[str, Any]]] = {}
        for r in self.conn.execute(
            "SELECT site, device, state, at, received_at FROM devices ORDER BY site, device"
        ):
            devices.setdefault(r["site"], []).append(
                {k: r[k] for k in ("device", "state", "at", "received_at")}
            )
        out = []
        for r in self.conn.execute("SELECT * FROM sites ORDER BY id"):
            row = dict(r)
            row["log_head"] = _loads(row.get("log_head"))
            row["devices"] = devices.get(row["id"], [])
            out.append(row)
        return out

    def site(self, site: str) -> dict[str, Any] | None:
        return next((s for s in self.sites() if s["id"] == site), None)

    def warnings(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, at, site, topic, text FROM warnings ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [dict(r) for r in rows]

    def warning(self, warning_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, at, site, topic, text FROM warnings WHERE id = ?", (warning_id,)
        ).fetchone()
        return None if row is None else dict(row)

    def changes_since(self, change_id: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Changes after ``change_id``, oldest first: {id, what, key, at}."""
        rows = self.conn.execute(
            "SELECT id, what, key, at FROM changes WHERE id > ? ORDER BY id LIMIT ?",
            (change_id, limit),
        ).fetchall()
        return [dict(r) for r in rows]

    def last_change_id(self) -> int:
        row = self.conn.execute("SELECT MAX(id) FROM changes").fetchone()
        return int(row[0] or 0)
