"""The limit on failed logins kept in the police database (the city platform): every dashboard
instance counts the same attempts, so going round the instances gives a guesser no more tries,
and a restart forgives nobody. The rules of LoginLimiter (edgeguard/web/sessions.py): at most
``attempts`` per key within ``window_s``, counted before the password is checked, a success
starting its keys afresh. Times are UTC epoch seconds (the same on every instance).

An attempt is checked and counted in one transaction; on PostgreSQL the transaction first
takes an advisory lock per key (in a fixed order), so two instances trying the same key at the
same moment are counted one after the other and cannot both pass the check. Rows older than
the window are deleted as attempts come: the table holds one window's attempts."""

from __future__ import annotations

import time
from collections.abc import Callable

from edgeguard.police.db import Database, Tx

Clock = Callable[[], float]
MAX_KEY = 200  # the keys are "user:" + at most 64 characters, or "addr:" + an address


class DbLoginLimiter:
    blocking = True

    def __init__(
        self, db: Database, attempts: int, window_s: float, *, clock: Clock = time.time
    ) -> None:
        self.db = db
        self.attempts = attempts
        self.window_s = window_s
        self.clock = clock

    def blocked(self, *keys: str) -> bool:
        now = self.clock()
        with self.db.read() as tx:
            return self._any_locked(tx, _clean(keys), now)

    def attempt(self, *keys: str) -> bool:
        """Count one attempt against every key, or refuse it (False, nothing counted) when
        any key has used up its attempts."""
        now = self.clock()
        names = _clean(keys)
        with self.db.write() as tx:
            self._lock(tx, names)
            tx.execute("DELETE FROM login_attempts WHERE at <= ?", (now - self.window_s,))
            if self._any_locked(tx, names, now):
                return False
            tx.executemany(
                "INSERT INTO login_attempts (login_key, at) VALUES (?, ?)",
                [(k, now) for k in names],
            )
        return True

    def succeeded(self, *keys: str) -> None:
        names = _clean(keys)
        with self.db.write() as tx:
            tx.executemany("DELETE FROM login_attempts WHERE login_key = ?", [(k,) for k in names])

    def _lock(self, tx: Tx, names: list[str]) -> None:
        if self.db.dialect == "postgresql":  # SQLite's write transaction is exclusive already
            for name in names:
                tx.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (name,))

    def _any_locked(self, tx: Tx, names: list[str], now: float) -> bool:
        marks = ", ".join("?" for _ in names)
        rows = tx.execute(
            f"SELECT login_key, COUNT(*) AS n FROM login_attempts WHERE login_key IN ({marks}) "  # noqa: S608
            "AND at > ? GROUP BY login_key",
            (*names, now - self.window_s),
        ).rows
        return any(int(row["n"]) >= self.attempts for row in rows)


def _clean(keys: tuple[str, ...]) -> list[str]:
    """The keys, each once, in a fixed order (the order the advisory locks are taken in)."""
    return sorted({key[:MAX_KEY] for key in keys})
