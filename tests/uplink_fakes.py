"""What the lane and outbox unit tests share: outbox rows from a real SQLite store, and a
stand-in for a broker link that records what it was asked to publish."""

from __future__ import annotations

from pathlib import Path

from edgeguard.store import Store
from edgeguard.store_outbox import OutboxRow
from edgeguard.uplink.site_link import NotConnectedError


def stored_rows(path: Path, count: int) -> list[OutboxRow]:
    """Rows 1 to ``count``: alarm messages committed to a new store and read back as the
    daemon does at start-up; each payload is the row's own id."""
    store = Store(path)
    try:
        with store.transaction():
            for n in range(1, count + 1):
                row = store.enqueue(f"edgeguard/s/alarm/b{n}", str(n).encode(), event_id=f"e{n}")
                assert row.id == n
        return store.undelivered()
    finally:
        store.close()


class FakeLink:
    """Publishes into a list (row id, packet id); ``connected`` and ``refuse`` set by the test."""

    def __init__(self, *, connected: bool = True, first_mid: int = 1) -> None:
        self.connected = connected
        self.refuse = False  # paho says "not connected" although the loop has not noticed yet
        self.sent: list[tuple[int, int]] = []
        self._mid = first_mid - 1

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        if not self.connected or self.refuse:
            raise NotConnectedError
        self._mid += 1
        self.sent.append((int(payload), self._mid))
        return self._mid

    def row_ids(self) -> list[int]:
        return [row_id for row_id, _ in self.sent]

    def mid_of(self, row_id: int) -> int:
        """The packet id of the latest publish of ``row_id``."""
        return next(mid for sent, mid in reversed(self.sent) if sent == row_id)
