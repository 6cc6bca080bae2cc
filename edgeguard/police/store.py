"""The police database: SQLite (WAL, synchronous=FULL), its own file, schema versioned.

Every write appends to ``changes`` in the same transaction, so every receiver sharing the file
learns what any of them stored (``changes_since``). Alarm messages are deduplicated by the
UNIQUE ``(site, event_id, seq)`` of ``messages``: a message sent twice, resent after a lost
PUBACK, or stored by two receivers is kept once. A PoliceStore is used from one thread only
(the service's event loop).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from edgeguard.ids import iso_ms, utc_now
from edgeguard.police.files import make_private_folders, private_file, tighten
from edgeguard.police.queries import StoreQueries
from edgeguard.police.schema import migrate

logger = logging.getLogger(__name__)

POLICE_ORDER = {"new": 0, "acknowledged": 1, "dispatched": 2, "resolved": 3}
SITE_COLUMNS = frozenset(
    {
        "name", "state", "reason", "state_since", "alert", "version", "started_at",
        "last_status", "last_status_at", "last_heartbeat_at", "heartbeat_counter",
        "outbox_pending", "open_alarms", "log_head",
    }
)  # fmt: skip


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _snapshot_items(evidence: Any) -> list[dict[str, Any]]:
    """The items of an evidence list that vouch for a published snapshot (not for a clip)."""
    items = evidence if isinstance(evidence, list) else []
    return [
        item
        for item in items
        if isinstance(item, dict) and item.get("kind") == "snapshot" and item.get("sha256")
    ]


def _priority(payload: dict[str, Any]) -> int:
    """1-4 as sent; anything else is shown as P1 (an alarm must never be played down)."""
    value = _int(payload.get("priority"), 1)
    return value if 1 <= value <= 9 else 1


# What a row of the changes feed is about: the dashboard rebuilds that thing by its key
FeedTopic = Literal["alarm", "site", "warning", "link"]

class PoliceStore(StoreQueries):
    def __init__(self, path: Path, *, receiver: str = "") -> None:
        self.path = path
        self.receiver = receiver
        make_private_folders(path.parent)
        private_file(path)  # SQLite gives its -wal and -shm files the database's mode
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        for suffix in ("-wal", "-shm"):  # left by a run before they were made private
            tighten(path.with_name(path.name + suffix))
        migrate(self.conn, path)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction (another receiver on the file waits, up to 5 s)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _change(self, what: FeedTopic, key: str) -> None:
        self.conn.execute(
            "INSERT INTO changes (what, key, at) VALUES (?, ?, ?)", (what, key, iso_ms(utc_now()))
        )

    # --- alarms -----------------------------------------------------------------------------
    def record_alarm(
        self, site: str, payload: dict[str, Any], received_at: str | None = None
    ) -> bool:
        """Store one verified alarm message; False if it was a duplicate (nothing changed).
        The alarm's current state is its message with the highest seq (section 6)."""
        at = received_at or iso_ms(utc_now())
        event_id, seq = str(payload["event_id"]), int(payload["seq"])
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO messages (site, event_id, seq, message, received_at, "
                "receiver, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (site, event_id, seq, payload.get("message"), at, self.receiver, _json(payload)),
            )
            if cursor.rowcount == 0:
                return False
            self._upsert_alarm(site, payload, at)
            self._change("alarm", event_id)
        return True

    def _upsert_alarm(self, site: str, payload: dict[str, Any], at: str) -> None:
        row = {
            "site_name": payload.get("site_name"),
            "source": payload.get("source"),
            "kind": payload.get("kind"),
            "priority": _priority(payload),
            "location": _json(payload.get("location") or {}),
            "raised_at": payload.get("occurred_at"),
            "updated_at": payload.get("updated_at"),
            "message": payload.get("message"),
            "site_state": payload.get("state"),
            "seq": int(payload["seq"]),
            "payload": _json(payload),
        }
        names = ", ".join(row)
        updates = ", ".join(f"{name} = excluded.{name}" for name in row)
        self.conn.execute(
            f"INSERT INTO alarms (event_id, site, received_at, {names}) "  # noqa: S608 - our names
            f"VALUES (?, ?, ?, {', '.join('?' for _ in row)}) "
            f"ON CONFLICT (event_id) DO UPDATE SET {updates} WHERE excluded.seq > alarms.seq",
            (str(payload["event_id"]), site, at, *row.values()),
        )

    def record_action(
        self,
        event_id: str,
        state: str,
        by: str,
        *,
        ok: bool,
        error: str | None = None,
        at: str | None = None,
    ) -> None:
        """Record a police action; the alarm's police_state moves forward only when the ack
        reached the broker (never back: acknowledged < dispatched < resolved)."""
        at = at or iso_ms(utc_now())
        with self._write() as conn:
            conn.execute(
                "INSERT INTO actions (event_id, state, by, at, published_ok, error, receiver) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, state, by, at, int(ok), error, self.receiver),
            )
            row = conn.execute(
                "SELECT police_state FROM alarms WHERE event_id = ?", (event_id,)
            ).fetchone()
            if ok and row is not None and POLICE_ORDER[state] > POLICE_ORDER[row[0]]:
                conn.execute(
                    "UPDATE alarms SET police_state = ?, police_by = ?, police_at = ? "
                    "WHERE event_id = ?",
                    (state, by, at, event_id),
                )
            self._change("alarm", event_id)

    # --- snapshots --------------------------------------------------------------------------
    def record_snapshot(
        self, site: str, event_id: str, camera: str, *, path: Path, sha256: str, size: int
    ) -> bool | None:
        """Store a received snapshot; checked at once if its evidence message came first.
        Returns True/False when checked (False: hash mismatch), None when not yet."""
        expected = self._expected_sha(event_id, camera)
        verified = None if expected is None else expected == sha256
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (site, event_id, camera, path, sha256, bytes, "
                "received_at, verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (site, event_id, camera, str(path), sha256, size, iso_ms(utc_now()), verified),
            )
            self._change("alarm", event_id)
        return verified

    def _expected_sha(self, event_id: str, camera: str) -> str | None:
        row = self.conn.execute(
            "SELECT payload FROM alarms WHERE event_id = ?", (event_id,)
        ).fetchone()
        evidence = json.loads(row[0]).get("evidence") if row is not None else None
        for item in _snapshot_items(evidence):
            if item.get("camera") == camera:
                return str(item["sha256"])
        return None

    def check_evidence(self, site: str, event_id: str, evidence: Any) -> list[str]:
        """Compare the snapshots received with the snapshot items of a signed evidence list
        (a clip's hash is of a file kept at the site: nothing here to compare it with); mark
        them verified or not, and return the cameras whose bytes do not match."""
        bad: list[str] = []
        with self._write() as conn:
            for item in _snapshot_items(evidence):
                row = conn.execute(
                    "SELECT sha256 FROM snapshots WHERE site = ? AND event_id = ? AND camera = ?",
                    (site, event_id, str(item.get("camera"))),
                ).fetchone()
                if row is None:
                    continue
                ok = row[0] == item["sha256"]
                if not ok:
                    bad.append(str(item.get("camera")))
                conn.execute(
                    "UPDATE snapshots SET verified = ? WHERE site = ? AND event_id = ? "
                    "AND camera = ?",
                    (int(ok), site, event_id, str(item.get("camera"))),
                )
        return bad

    def orphan_snapshots(self) -> list[dict[str, Any]]:
        """Snapshots of alarms not received (yet), oldest first: id, site, event_id, camera,
        path, bytes, received_at."""
        rows = self.conn.execute(
            "SELECT id, site, event_id, camera, path, bytes, received_at FROM snapshots s "
            "WHERE NOT EXISTS (SELECT 1 FROM alarms a WHERE a.event_id = s.event_id "
            "AND a.site = s.site) ORDER BY received_at, id"
        ).fetchall()
        return [dict(row) for row in rows]

    def forget_snapshots(self, ids: list[int]) -> None:
        """Delete snapshot rows (their files are the caller's)."""
        with self._write() as conn:
            conn.executemany("DELETE FROM snapshots WHERE id = ?", [(i,) for i in ids])

    # --- sites, devices, warnings, link -----------------------------------------------------
    def ensure_site(self, site: str, name: str | None = None) -> None:
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO sites (id, name) VALUES (?, ?)", (site, name)
            )
            if name is not None and cursor.rowcount == 0:
                conn.execute("UPDATE sites SET name = ? WHERE id = ?", (name, site))
            if cursor.rowcount:
                self._change("site", site)

    def update_site(self, site: str, values: dict[str, Any], *, announce: bool = True) -> None:
        """Set columns of a site's row (created if new); ``announce`` appends a change."""
        unknown = set(values) - SITE_COLUMNS
        if unknown:
            raise ValueError(f"not site columns: {sorted(unknown)}")
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO sites (id) VALUES (?)", (site,))
            if values:
                sets = ", ".join(f"{name} = ?" for name in values)
                conn.execute(
                    f"UPDATE sites SET {sets} WHERE id = ?",  # noqa: S608 - whitelisted names
                    (*values.values(), site),
                )
            if announce:
                self._change("site", site)

    def record_device(self, site: str, payload: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO devices (site, device, state, at, detail, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    site,
                    str(payload.get("device")),
                    payload.get("state"),
                    payload.get("at"),
                    _json(payload.get("detail")),
                    iso_ms(utc_now()),
                ),
            )
            self._change("site", site)

    def add_warning(self, site: str | None, topic: str | None, text: str) -> int:
        """A security warning: never an alarm."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO warnings (at, site, topic, text) VALUES (?, ?, ?, ?)",
                (iso_ms(utc_now()), site, topic, text),
            )
            warning_id = int(cursor.lastrowid or 0)
            self._change("warning", str(warning_id))
        return warning_id

    def note_link(self) -> None:
        with self._write():
            self._change("link", "")

    def prune_changes(self, keep: int = 100_000) -> None:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM changes WHERE id <= (SELECT MAX(id) FROM changes) - ?", (keep,)
            )
