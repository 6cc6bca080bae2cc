"""The police database, on SQLite (a single station's file, WAL, synchronous=FULL) or
PostgreSQL (the city platform's), behind edgeguard/police/db.py; schema versioned.

Every write announces what it changed in the same transaction: on SQLite a row of ``changes``,
so every receiver sharing the file learns what any of them stored (``changes_since``); on
PostgreSQL a ``NOTIFY edgeguard_changes`` (delivered at commit to every instance listening,
edgeguard/police/pg_listen.py). Alarm messages are deduplicated by the UNIQUE ``(site,
event_id, seq)`` of ``messages``: a message sent twice, resent after a lost PUBACK or a missing
receipt, or stored by two receivers is kept once. A PoliceStore may be used from any thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any, Literal

from edgeguard.ids import iso_ms, utc_now
from edgeguard.police.config import PoliceConfig
from edgeguard.police.db import Database, PostgresDatabase, SqliteDatabase, Tx
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


ALARM_STATE_COLUMNS = (
    "site_name", "source", "kind", "priority", "location", "raised_at", "updated_at", "message",
    "site_state", "seq", "payload",
)  # fmt: skip


def _alarm_columns(payload: dict[str, Any]) -> dict[str, Any]:
    """An alarm message's values for the alarm's row, in ALARM_STATE_COLUMNS order."""
    return {
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


def _priority(payload: dict[str, Any]) -> int:
    """1-4 as sent; anything else is shown as P1 (an alarm must never be played down)."""
    value = _int(payload.get("priority"), 1)
    return value if 1 <= value <= 9 else 1


# What a row of the changes feed is about: the dashboard rebuilds that thing by its key
FeedTopic = Literal["alarm", "site", "warning", "link"]
NOTIFY_CHANNEL = "edgeguard_changes"
# An alarm message as the batch writer takes it: (site, payload, received_at or None)
AlarmItem = tuple[str, dict[str, Any], str | None]


class PoliceStore(StoreQueries):
    def __init__(self, where: Path | Database, *, receiver: str = "") -> None:
        self.receiver = receiver
        self.path: Path | None = None
        if isinstance(where, Database):
            self.db = where
        else:
            self.path = where
            make_private_folders(where.parent)
            private_file(where)  # SQLite gives its -wal and -shm files the database's mode
            self.db = SqliteDatabase(where)
            for suffix in ("-wal", "-shm"):  # left by a run before they were made private
                tighten(where.with_name(where.name + suffix))
        migrate(self.db)

    @property
    def conn(self) -> sqlite3.Connection:
        """The SQLite connection (tests and tools of a single station)."""
        if not isinstance(self.db, SqliteDatabase):
            raise TypeError(f"{self.db.name} is not SQLite")
        return self.db.conn

    def close(self) -> None:
        self.db.close()

    def _change(self, tx: Tx, what: FeedTopic, key: str) -> None:
        self._changes(tx, what, [key])

    def _changes(self, tx: Tx, what: FeedTopic, keys: list[str]) -> None:
        if self.db.dialect == "postgresql":
            tx.executemany(
                "SELECT pg_notify(?, ?)", [(NOTIFY_CHANNEL, f"{what}:{key}") for key in keys]
            )
        else:
            at = iso_ms(utc_now())
            tx.executemany(
                "INSERT INTO changes (what, key, at) VALUES (?, ?, ?)",
                [(what, key, at) for key in keys],
            )

    # --- alarms -----------------------------------------------------------------------------
    def record_alarm(
        self, site: str, payload: dict[str, Any], received_at: str | None = None
    ) -> bool:
        """Store one verified alarm message; False if it was a duplicate (nothing changed).
        The alarm's current state is its message with the highest seq (section 6)."""
        return self.record_alarms([(site, payload, received_at)])[0]

    def record_alarms(self, items: list[AlarmItem]) -> list[bool]:
        """Store verified alarm messages in one transaction; for each, True if it was new.
        A message already stored (resent, or stored by another receiver) changes nothing."""
        if not items:
            return []
        now = iso_ms(utc_now())
        with self.db.write() as tx:
            inserted = tx.executemany_returning(
                "INSERT INTO messages (site, event_id, seq, message, received_at, receiver, "
                "payload) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, event_id, seq) "
                "DO NOTHING RETURNING id",
                [self._message_row(site, payload, at or now) for site, payload, at in items],
            )
            new = [bool(rows) for rows in inserted]
            fresh = [item for item, is_new in zip(items, new, strict=True) if is_new]
            if fresh:
                self._upsert_alarms(tx, fresh, now)
                events = dict.fromkeys(str(payload["event_id"]) for _s, payload, _a in fresh)
                self._changes(tx, "alarm", list(events))
        return new

    def _message_row(self, site: str, payload: dict[str, Any], at: str) -> tuple[Any, ...]:
        return (
            site,
            str(payload["event_id"]),
            int(payload["seq"]),
            payload.get("message"),
            at,
            self.receiver,
            _json(payload),
        )

    @staticmethod
    def _upsert_alarms(tx: Tx, items: list[AlarmItem], now: str) -> None:
        """The alarms' current rows: a message of a higher seq replaces what is there."""
        rows = [
            (str(payload["event_id"]), site, at or now, *_alarm_columns(payload).values())
            for site, payload, at in items
        ]
        names = ", ".join(ALARM_STATE_COLUMNS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in ALARM_STATE_COLUMNS)
        marks = ", ".join("?" for _ in ALARM_STATE_COLUMNS)
        tx.executemany(
            f"INSERT INTO alarms (event_id, site, received_at, {names}) "  # noqa: S608 - our names
            f"VALUES (?, ?, ?, {marks}) "
            f"ON CONFLICT (event_id) DO UPDATE SET {updates} WHERE excluded.seq > alarms.seq",
            rows,
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
        with self.db.write() as tx:
            tx.execute(
                'INSERT INTO actions (event_id, state, "by", at, published_ok, error, receiver) '
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, state, by, at, int(ok), error, self.receiver),
            )
            current = tx.execute(
                "SELECT police_state FROM alarms WHERE event_id = ?", (event_id,)
            ).scalar()
            if ok and current is not None and POLICE_ORDER[state] > POLICE_ORDER[current]:
                tx.execute(
                    "UPDATE alarms SET police_state = ?, police_by = ?, police_at = ? "
                    "WHERE event_id = ?",
                    (state, by, at, event_id),
                )
            self._change(tx, "alarm", event_id)

    # --- snapshots --------------------------------------------------------------------------
    def record_snapshot(
        self, site: str, event_id: str, camera: str, *, path: Path, sha256: str, size: int
    ) -> bool | None:
        """Store a received snapshot; checked at once if its evidence message came first.
        Returns True/False when checked (False: hash mismatch), None when not yet."""
        with self.db.write() as tx:
            expected = self._expected_sha(tx, event_id, camera)
            verified = None if expected is None else expected == sha256
            tx.execute(
                "INSERT INTO snapshots (site, event_id, camera, path, sha256, bytes, "
                "received_at, verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (site, event_id, camera) DO UPDATE SET path = excluded.path, "
                "sha256 = excluded.sha256, bytes = excluded.bytes, "
                "received_at = excluded.received_at, verified = excluded.verified",
                (
                    site,
                    event_id,
                    camera,
                    str(path),
                    sha256,
                    size,
                    iso_ms(utc_now()),
                    None if verified is None else int(verified),
                ),
            )
            self._change(tx, "alarm", event_id)
        return verified

    @staticmethod
    def _expected_sha(tx: Tx, event_id: str, camera: str) -> str | None:
        payload = tx.execute("SELECT payload FROM alarms WHERE event_id = ?", (event_id,)).scalar()
        evidence = json.loads(payload).get("evidence") if payload is not None else None
        for item in _snapshot_items(evidence):
            if item.get("camera") == camera:
                return str(item["sha256"])
        return None

    def check_evidence(self, site: str, event_id: str, evidence: Any) -> list[str]:
        """Compare the snapshots received with the snapshot items of a signed evidence list
        (a clip's hash is of a file kept at the site: nothing here to compare it with); mark
        them verified or not, and return the cameras whose bytes do not match."""
        items = _snapshot_items(evidence)
        if not items:
            return []
        bad: list[str] = []
        with self.db.write() as tx:
            for item in items:
                camera = str(item.get("camera"))
                stored = tx.execute(
                    "SELECT sha256 FROM snapshots WHERE site = ? AND event_id = ? AND camera = ?",
                    (site, event_id, camera),
                ).scalar()
                if stored is None:
                    continue
                ok = stored == item["sha256"]
                if not ok:
                    bad.append(camera)
                tx.execute(
                    "UPDATE snapshots SET verified = ? WHERE site = ? AND event_id = ? "
                    "AND camera = ?",
                    (int(ok), site, event_id, camera),
                )
        return bad

    def orphan_snapshots(self) -> list[dict[str, Any]]:
        """Snapshots of alarms not received (yet), oldest first: id, site, event_id, camera,
        path, bytes, received_at."""
        with self.db.read() as tx:
            return tx.execute(
                "SELECT id, site, event_id, camera, path, bytes, received_at FROM snapshots s "
                "WHERE NOT EXISTS (SELECT 1 FROM alarms a WHERE a.event_id = s.event_id "
                "AND a.site = s.site) ORDER BY received_at, id"
            ).rows

    def forget_snapshots(self, ids: list[int]) -> None:
        """Delete snapshot rows (their files are the caller's)."""
        with self.db.write() as tx:
            tx.executemany("DELETE FROM snapshots WHERE id = ?", [(i,) for i in ids])

    # --- sites, devices, warnings, link -----------------------------------------------------
    def ensure_site(self, site: str, name: str | None = None) -> None:
        self.ensure_sites([(site, name)])

    def ensure_sites(self, sites: list[tuple[str, str | None]]) -> None:
        """Rows for these sites (created if new, announced then); a name given replaces the
        one stored. One transaction."""
        if not sites:
            return
        with self.db.write() as tx:
            created = tx.executemany_returning(
                "INSERT INTO sites (id, name) VALUES (?, ?) ON CONFLICT (id) DO NOTHING "
                "RETURNING id",
                sites,
            )
            renamed = [(name, site) for (site, name), new in zip(sites, created, strict=True)
                       if name is not None and not new]  # fmt: skip
            if renamed:
                tx.executemany("UPDATE sites SET name = ? WHERE id = ?", renamed)
            new_sites = [site for (site, _name), new in zip(sites, created, strict=True) if new]
            if new_sites:
                self._changes(tx, "site", new_sites)

    def update_site(self, site: str, values: dict[str, Any], *, announce: bool = True) -> None:
        """Set columns of a site's row (created if new); ``announce`` appends a change."""
        self.update_sites([(site, values, announce)])

    def update_sites(self, updates: list[tuple[str, dict[str, Any], bool]]) -> None:
        """Several update_site in one transaction (a receiver's batch of supervision)."""
        for _site, values, _announce in updates:
            unknown = set(values) - SITE_COLUMNS
            if unknown:
                raise ValueError(f"not site columns: {sorted(unknown)}")
        if not updates:
            return
        by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for site, values, _announce in updates:
            if values:
                by_columns.setdefault(tuple(values), []).append((*values.values(), site))
        with self.db.write() as tx:
            tx.executemany(
                "INSERT INTO sites (id) VALUES (?) ON CONFLICT (id) DO NOTHING",
                [(site,) for site in dict.fromkeys(site for site, _v, _a in updates)],
            )
            for columns, rows in by_columns.items():  # one statement per set of columns
                sets = ", ".join(f"{name} = ?" for name in columns)
                tx.executemany(f"UPDATE sites SET {sets} WHERE id = ?", rows)  # noqa: S608
            announced = dict.fromkeys(site for site, _v, announce in updates if announce)
            if announced:
                self._changes(tx, "site", list(announced))

    def record_device(self, site: str, payload: dict[str, Any]) -> None:
        with self.db.write() as tx:
            tx.execute(
                "INSERT INTO devices (site, device, state, at, detail, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, device) DO UPDATE SET "
                "state = excluded.state, at = excluded.at, detail = excluded.detail, "
                "received_at = excluded.received_at",
                (
                    site,
                    str(payload.get("device")),
                    payload.get("state"),
                    payload.get("at"),
                    _json(payload.get("detail")),
                    iso_ms(utc_now()),
                ),
            )
            self._change(tx, "site", site)

    def add_warning(self, site: str | None, topic: str | None, text: str) -> int:
        """A security warning: never an alarm."""
        with self.db.write() as tx:
            warning_id = int(
                tx.execute(
                    "INSERT INTO warnings (at, site, topic, text) VALUES (?, ?, ?, ?) RETURNING id",
                    (iso_ms(utc_now()), site, topic, text),
                ).scalar()
            )
            self._change(tx, "warning", str(warning_id))
        return warning_id

    def note_link(self) -> None:
        with self.db.write() as tx:
            self._change(tx, "link", "")

    def prune_changes(self, keep: int = 100_000) -> None:
        if self.db.dialect != "sqlite":
            return  # PostgreSQL announces by NOTIFY: no table to trim
        with self.db.write() as tx:
            tx.execute("DELETE FROM changes WHERE id <= (SELECT MAX(id) FROM changes) - ?", (keep,))

    def note_receiver(self, receiver: str, started_at: str, detail: dict[str, Any]) -> None:
        """This receiver is alive (the city platform's registry of receivers)."""
        with self.db.write() as tx:
            tx.execute(
                "INSERT INTO receivers (id, started_at, seen_at, detail) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, "
                "seen_at = excluded.seen_at, detail = excluded.detail",
                (receiver, started_at, iso_ms(utc_now()), _json(detail)),
            )


def open_store(config: PoliceConfig) -> PoliceStore:
    """The police store a config names: PostgreSQL when ``postgres`` is set, else SQLite."""
    pg = config.postgres
    if pg is None:
        return PoliceStore(config.database, receiver=config.receiver_id)
    database = PostgresDatabase(
        pg.dsn.get_secret_value(),
        min_size=pg.pool_min,
        max_size=max(pg.pool_min, pg.pool_max),
        timeout=pg.connect_timeout,
    )
    return PoliceStore(database, receiver=config.receiver_id)
