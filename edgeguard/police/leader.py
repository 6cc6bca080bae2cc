"""Which receiver of a city platform supervises: the holder of a PostgreSQL advisory lock.

Every receiver tracks every site's heartbeats in memory; only the one holding the session-level
lock ``pg_try_advisory_lock(SUPERVISOR_LOCK)`` writes them and decides "site lost". The lock
lives on a connection of its own: when that receiver dies, its connection closes and
PostgreSQL releases the lock, and the next receiver to try (every tick, ~1 s) takes over. A
holder that loses its connection (the server restarted, the network failed) knows it at its
next check and stops writing as supervisor until it holds the lock again.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

SUPERVISOR_LOCK = 0x6567_7375  # "egsu"
CONNECT_TIMEOUT_S = 5


class SupervisorLock:
    def __init__(self, dsn: str, receiver_id: str) -> None:
        self.dsn = dsn
        self.receiver_id = receiver_id
        self.held = False
        self._conn: Any = None

    def check(self) -> bool:
        """Hold the lock, or try to take it; True while this receiver is the supervisor.
        Blocking (one round trip): call it off the event loop."""
        import psycopg

        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    application_name=f"edgeguard-supervisor {self.receiver_id}"[:63],
                )
                self._set(held=False)
            if self.held:
                self._conn.execute("SELECT 1")
            else:
                row = self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", (SUPERVISOR_LOCK,)
                ).fetchone()
                self._set(held=bool(row and row[0]))
        except psycopg.Error as exc:
            if self.held:
                logger.error("supervisor %s: lost the database (%s)", self.receiver_id, exc)
            self._set(held=False)
            self.close()
        return self.held

    def _set(self, *, held: bool) -> None:
        if held and not self.held:
            logger.warning(
                "receiver %s is now the supervisor (decides site lost)", self.receiver_id
            )
        elif self.held and not held:
            logger.warning("receiver %s is no longer the supervisor", self.receiver_id)
        self.held = held

    def close(self) -> None:
        """Give the lock up (closing the connection releases it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                logger.debug("closing the supervisor connection failed", exc_info=True)
        self.held = False
