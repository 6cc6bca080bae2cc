"""The event store's schema as migrations: each runs once, in order, in its own transaction,
and leaves ``PRAGMA user_version`` at its number (edgeguard/store.py applies them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the store imports sqlite-utils without numpy (edgeguard/lean_import.py)
    from sqlite_utils import Database


def migration_1(db: Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("events").create(
        {
            "id": int,
            "event_id": str,
            "type": str,
            "source": str,
            "kind": str,
            "state": str,
            "priority": int,
            "location": str,
            "occurred_at": str,
            "recorded_at": str,
            "data": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="id",
        not_null={"type", "recorded_at", "data", "prev_hash", "hash"},
    )
    db.table("events").create_index(["event_id"])
    db.table("events").create_index(["occurred_at"])
    db.table("alarms").create(
        {
            "event_id": str,
            "first_seq": int,
            "kind": str,
            "priority": int,
            "source": str,
            "location_key": str,
            "location": str,
            "occurred_at": str,
            "recorded_at": str,
            "state": str,
            "input_active": int,
            "trigger_count": int,
            "detail": str,
            "cameras": str,
            "restored_at": str,
            "delivered_at": str,
            "acknowledged_at": str,
            "acknowledged_by": str,
            "dispatched_at": str,
            "dispatched_by": str,
            "resolved_at": str,
            "resolved_by": str,
            "reset_at": str,
            "reset_by": str,
            "updated_at": str,
        },
        pk="event_id",
        not_null={"kind", "priority", "source", "state", "occurred_at"},
    )
    db.table("alarms").create_index(["source", "state"])
    db.table("outbox").create(
        {
            "id": int,
            "topic": str,
            "payload": bytes,
            "qos": int,
            "retain": int,
            "event_id": str,
            "message": str,
            "seq": int,
            "created_at": str,
            "delivered_at": str,
        },
        pk="id",
        not_null={"topic", "payload", "qos", "retain", "created_at"},
    )
    db.execute("CREATE INDEX idx_outbox_pending ON outbox(id) WHERE delivered_at IS NULL")
    db.table("devices").create(
        {"device": str, "state": str, "detail": str, "updated_at": str}, pk="device"
    )


def migration_2(db: Database) -> None:
    """Evidence (snapshots, later clips) kept with alarms."""
    db.execute("ALTER TABLE alarms ADD COLUMN evidence TEXT")
    db.table("evidence").create(
        {
            "id": int,
            "event_id": str,
            "camera": str,
            "kind": str,
            "path": str,
            "sha256": str,
            "bytes": int,
            "taken_at": str,
            "via": str,
            "recorded_at": str,
        },
        pk="id",
        not_null={"event_id", "camera", "kind", "path", "sha256", "bytes", "recorded_at"},
    )
    db.table("evidence").create_index(["event_id"])


def migration_3(db: Database) -> None:
    """End-to-end receipts: an alarm message awaits one (receipt 1) from its PUBACK until the
    police platform's receipt (receipt 2); NULL: none awaited (receipts off, or not an alarm)."""
    db.execute("ALTER TABLE alarms ADD COLUMN received_at TEXT")
    db.execute("ALTER TABLE outbox ADD COLUMN receipt INTEGER")
    db.execute("ALTER TABLE outbox ADD COLUMN received_at TEXT")
    db.execute("CREATE INDEX idx_outbox_receipt ON outbox(event_id, seq) WHERE receipt = 1")


MIGRATIONS: list[Callable[[Database], None]] = [migration_1, migration_2, migration_3]
