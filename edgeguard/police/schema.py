"""The police database's schema and its migrations (``PRAGMA user_version`` counts the ones
applied, as in edgeguard/store.py)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from edgeguard.store_error import StoreError

logger = logging.getLogger(__name__)

SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE sites (
    id TEXT PRIMARY KEY,
    name TEXT,
    state TEXT NOT NULL DEFAULT 'unknown',   -- online | offline | lost | unknown
    reason TEXT,
    state_since TEXT,
    alert TEXT,                              -- e.g. outbox_pending > 0 for over a minute
    version TEXT,
    started_at TEXT,
    last_status TEXT,
    last_status_at TEXT,
    last_heartbeat_at TEXT,
    heartbeat_counter INTEGER,
    outbox_pending INTEGER,
    open_alarms INTEGER,
    log_head TEXT
);
CREATE TABLE alarms (
    event_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    site_name TEXT,
    source TEXT,
    kind TEXT,
    priority INTEGER NOT NULL,
    location TEXT,
    raised_at TEXT,
    received_at TEXT NOT NULL,
    updated_at TEXT,
    message TEXT,
    site_state TEXT,
    police_state TEXT NOT NULL DEFAULT 'new',  -- new | acknowledged | dispatched | resolved
    police_by TEXT,
    police_at TEXT,
    seq INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX alarms_open ON alarms (police_state, priority, raised_at);
CREATE INDEX alarms_raised ON alarms (raised_at);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message TEXT,
    received_at TEXT NOT NULL,
    receiver TEXT,
    payload TEXT NOT NULL,
    UNIQUE (site, event_id, seq)
);
CREATE INDEX messages_event ON messages (event_id, seq);
CREATE TABLE snapshots (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    event_id TEXT NOT NULL,
    camera TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    verified INTEGER,                        -- NULL: no evidence message yet, 1 ok, 0 mismatch
    UNIQUE (site, event_id, camera)
);
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    state TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    published_ok INTEGER NOT NULL,
    error TEXT,
    receiver TEXT
);
CREATE INDEX actions_event ON actions (event_id);
CREATE TABLE warnings (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    site TEXT,
    topic TEXT,
    text TEXT NOT NULL
);
CREATE TABLE devices (
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    state TEXT,
    at TEXT,
    detail TEXT,
    received_at TEXT NOT NULL,
    PRIMARY KEY (site, device)
);
CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    what TEXT NOT NULL,                      -- alarm | site | warning | link
    key TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


def _migration_1(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA_1.split(";"):
        if statement.strip():
            conn.execute(statement)


Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = [_migration_1]


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _step(conn: sqlite3.Connection, path: Path) -> int | None:
    """Apply the next migration; the version reached, or None when already current."""
    current = schema_version(conn)
    if current > len(MIGRATIONS):
        raise StoreError(
            f"{path}: police schema version {current} is newer than this edgeguard "
            f"({len(MIGRATIONS)}); upgrade edgeguard"
        )
    if current == len(MIGRATIONS):
        return None
    MIGRATIONS[current](conn)
    conn.execute(f"PRAGMA user_version = {current + 1}")
    return current + 1


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the missing migrations, each in its own transaction (IMMEDIATE: two receivers
    starting on one file do not both migrate)."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            reached = _step(conn, path)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if reached is None:
            return
        logger.info("police store %s migrated to schema %d", path, reached)
