"""The store's outbox: messages recorded with their alarm, published in order until the broker
PUBACKs them, and (with receipts on) until the police platform's receipt comes."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from edgeguard.ids import iso_ms, utc_now


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    event_id: str | None
    message: str | None
    seq: int | None = None  # an alarm message's: with event_id, what a receipt names


_SELECT = "SELECT id, topic, payload, qos, retain, event_id, message, seq FROM outbox"


def _outbox_row(r: tuple[Any, ...]) -> OutboxRow:
    return OutboxRow(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5], r[6], r[7])


def insert_row(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
    """A plain parameterised INSERT. The alarm path uses this rather than sqlite-utils' insert,
    whose per-call table introspection costs ~0.15 ms a row (measured in bench/)."""
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cursor = conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values()))  # noqa: S608 - names are ours
    return int(cursor.lastrowid or 0)


class OutboxQueries:
    """The outbox's part of :class:`edgeguard.store.Store` (same connection, same thread)."""

    conn: sqlite3.Connection

    def enqueue(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        event_id: str | None = None,
        message: str | None = None,
        seq: int | None = None,
    ) -> OutboxRow:
        row_id = insert_row(
            self.conn,
            "outbox",
            {
                "topic": topic,
                "payload": payload,
                "qos": qos,
                "retain": int(retain),
                "event_id": event_id,
                "message": message,
                "seq": seq,
                "created_at": iso_ms(utc_now()),
            },
        )
        return OutboxRow(row_id, topic, payload, qos, retain, event_id, message, seq)

    def undelivered(self) -> list[OutboxRow]:
        rows = self.conn.execute(f"{_SELECT} WHERE delivered_at IS NULL ORDER BY id").fetchall()
        return [_outbox_row(r) for r in rows]

    def await_receipts(self, ids: list[int]) -> None:
        """These delivered alarm messages now wait for the police platform's receipt (one
        that came before its PUBACK is kept: receipt 2 stays)."""
        self.conn.executemany(
            "UPDATE outbox SET receipt = 1 WHERE id = ? AND receipt IS NULL",
            [(row_id,) for row_id in ids],
        )

    def awaiting_receipts(self) -> list[OutboxRow]:
        rows = self.conn.execute(f"{_SELECT} WHERE receipt = 1 ORDER BY id").fetchall()
        return [_outbox_row(r) for r in rows]

    def mark_received(self, event_id: str, seq: int, at: str) -> str | None:
        """The receipt of the alarm message (event_id, seq): its ``message`` if this site sent
        it and had no receipt for it yet, else None (a repeat, or not ours)."""
        row = self.conn.execute(
            "SELECT id, message FROM outbox WHERE event_id = ? AND seq = ? "
            "AND (receipt IS NULL OR receipt = 1) AND topic LIKE '%/alarm/%'",
            (event_id, seq),
        ).fetchone()
        if row is None:
            return None
        self.conn.execute(
            "UPDATE outbox SET receipt = 2, received_at = ? WHERE id = ?", (at, row[0])
        )
        return str(row[1])

    def mark_delivered(self, ids: list[int], at: str) -> list[OutboxRow]:
        """Mark outbox rows delivered; return the rows that were not already marked."""
        marked: list[OutboxRow] = []
        for row_id in ids:
            row = self.conn.execute(
                f"{_SELECT} WHERE id = ? AND delivered_at IS NULL", (row_id,)
            ).fetchone()
            if row is None:
                continue
            self.conn.execute("UPDATE outbox SET delivered_at = ? WHERE id = ?", (at, row_id))
            if row[6] == "snapshot":  # the JPEG stays in the evidence folder; keep the DB small
                self.conn.execute("UPDATE outbox SET payload = X'' WHERE id = ?", (row_id,))
            marked.append(_outbox_row(row))
        return marked
