"""The read side of the police database: what the dashboard shows and exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from edgeguard.ids import iso_ms
from edgeguard.ledger_csv import spreadsheet_safe
from edgeguard.police.db import Database, Tx

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
NO_LIMIT = 2**62  # LIMIT for "all": SQLite's -1 is an error on PostgreSQL


def _loads(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) and text else None


def alarm_row(row: dict[str, Any]) -> dict[str, Any]:
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
    db: Database

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        tx: Tx
        with self.db.read() as tx:
            return tx.execute(sql, params).rows

    def _row(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    # --- alarms -----------------------------------------------------------------------------
    def open_alarms(self) -> list[dict[str, Any]]:
        """Alarms the police have not resolved: P1 first, then oldest first."""
        rows = self._rows(
            f"SELECT {ALARM_COLUMNS} FROM alarms WHERE police_state != 'resolved' "  # noqa: S608
            "ORDER BY priority, raised_at, event_id"
        )
        return [alarm_row(r) for r in rows]

    def live_alarms(self, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` open alarms as the live view ranks them: those nobody has
        acknowledged first (a new alarm is never hidden behind handled ones), then P1 first,
        then oldest first."""
        rows = self._rows(
            f"SELECT {ALARM_COLUMNS} FROM alarms WHERE police_state != 'resolved' "  # noqa: S608
            "ORDER BY police_state != 'new', priority, raised_at, event_id LIMIT ?",
            (limit,),
        )
        return [alarm_row(r) for r in rows]

    def open_count(self) -> int:
        """How many alarms the police have not resolved."""
        row = self._row("SELECT COUNT(*) AS n FROM alarms WHERE police_state != 'resolved'")
        return int(row["n"]) if row else 0

    def alarm_row(self, event_id: str) -> dict[str, Any] | None:
        row = self._row(
            f"SELECT {ALARM_COLUMNS} FROM alarms WHERE event_id = ?",  # noqa: S608
            (event_id,),
        )
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
        params += [NO_LIMIT if limit is None else limit, offset]
        return [alarm_row(r) for r in self._rows(sql, params)]

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
            {**r, "payload": _loads(r["payload"])}
            for r in self._rows(
                "SELECT seq, message, received_at, receiver, payload FROM messages "
                "WHERE event_id = ? ORDER BY seq",
                (event_id,),
            )
        ]
        out["actions"] = self._rows(
            'SELECT state, "by", at, published_ok, error, receiver FROM actions '
            "WHERE event_id = ? ORDER BY id",
            (event_id,),
        )
        out["snapshots"] = self.snapshots(event_id)
        return out

    def snapshots(self, event_id: str) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT camera, sha256, bytes, received_at, verified FROM snapshots "
            "WHERE event_id = ? ORDER BY camera",
            (event_id,),
        )
        return [
            {**r, "verified": None if r["verified"] is None else bool(r["verified"])} for r in rows
        ]

    def snapshot_path(self, site: str, event_id: str, camera: str) -> Path | None:
        row = self._row(
            "SELECT path FROM snapshots WHERE site = ? AND event_id = ? AND camera = ?",
            (site, event_id, camera),
        )
        return None if row is None else Path(row["path"])

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
        return self._sites_with_devices(
            self._rows("SELECT * FROM sites ORDER BY id"),
            self._rows(
                "SELECT site, device, state, at, received_at FROM devices ORDER BY site, device"
            ),
        )

    def site(self, site: str) -> dict[str, Any] | None:
        """One site with its devices (one row read, not every site's)."""
        rows = self._sites_with_devices(
            self._rows("SELECT * FROM sites WHERE id = ?", (site,)),
            self._rows(
                "SELECT site, device, state, at, received_at FROM devices WHERE site = ? "
                "ORDER BY device",
                (site,),
            ),
        )
        return rows[0] if rows else None

    @staticmethod
    def _sites_with_devices(
        sites: list[dict[str, Any]], device_rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        devices: dict[str, list[dict[str, Any]]] = {}
        for r in device_rows:
            devices.setdefault(r["site"], []).append(
                {k: r[k] for k in ("device", "state", "at", "received_at")}
            )
        for row in sites:
            row["log_head"] = _loads(row.get("log_head"))
            row["devices"] = devices.get(row["id"], [])
        return sites

    def warnings(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT id, at, site, topic, text FROM warnings ORDER BY id DESC LIMIT ?", (limit,)
        )

    def warning(self, warning_id: int) -> dict[str, Any] | None:
        return self._row(
            "SELECT id, at, site, topic, text FROM warnings WHERE id = ?", (warning_id,)
        )

    def changes_since(self, change_id: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Changes after ``change_id``, oldest first: {id, what, key, at}."""
        if self.db.dialect != "sqlite":
            return []  # PostgreSQL announces changes by NOTIFY (edgeguard/police/pg_listen.py)
        return self._rows(
            "SELECT id, what, key, at FROM changes WHERE id > ? ORDER BY id LIMIT ?",
            (change_id, limit),
        )

    def last_change_id(self) -> int:
        if self.db.dialect != "sqlite":
            return 0
        row = self._row("SELECT MAX(id) AS last FROM changes")
        return int(row["last"] or 0) if row else 0
