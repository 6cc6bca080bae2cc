"""Login sessions and the limit on failed logins.

Sessions live in memory (SessionStore: a restart logs everyone out, which is the safe side of
a single station), or in the police store's database (DbSessionStore, the city platform: any
dashboard instance serves any session, and a restart logs nobody out). Both have the same
calls and rules; a DbSessionStore blocks on its database (``blocking``): the web layer calls
it in a thread (WebContext.session_call)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgeguard.ids import iso_ms, utc_now
from edgeguard.police.db import Database
from edgeguard.web.db_limiter import DbLoginLimiter

Clock = Callable[[], float]
MAX_SESSIONS = 1000
MAX_TRACKED_FAILURES = 10_000
TOUCH_EVERY_S = 30.0  # a DbSessionStore writes a session's last_seen at most this often


@dataclass
class Session:
    token: str  # the cookie's value
    csrf: str  # sent back in X-CSRF-Token (or a form's csrf field) with every action
    user: str
    created: float
    last_seen: float
    login_at: str  # UTC, ISO with ms: a password changed after this ends the session


class Sessions(Protocol):
    """What the web layer asks of a session store."""

    @property
    def blocking(self) -> bool:
        """True when the calls block on a database (run them in a thread)."""

    def create(self, user: str) -> Session: ...

    def get(self, token: str | None, *, touch: bool = True) -> Session | None: ...

    def end(self, token: str) -> None: ...

    def end_user(self, user: str, *, keep: str | None = None) -> None: ...

    def relogin(self, token: str, login_at: str) -> None: ...

    def login_limiter(self, attempts: int, window_s: float) -> Limiter:
        """The limit on failed logins kept where the sessions are."""


class Limiter(Protocol):
    """What the web layer asks of a limit on failed logins (LoginLimiter, DbLoginLimiter)."""

    @property
    def blocking(self) -> bool:
        """True when the calls block on a database (run them in a thread)."""

    def blocked(self, *keys: str) -> bool: ...

    def attempt(self, *keys: str) -> bool: ...

    def succeeded(self, *keys: str) -> None: ...


@dataclass
class SessionStore:
    """Sessions in this process's memory (on the event loop: never blocks)."""

    idle_s: float
    max_s: float
    clock: Clock = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)
    blocking = False

    def create(self, user: str) -> Session:
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:  # drop the least recently used
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            del self._sessions[oldest.token]
        now = self.clock()
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, now, now, iso_ms(utc_now())
        )
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session of ``token``; ``touch`` counts this request as activity."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            del self._sessions[token]
            return None
        if touch:
            session.last_seen = now
        return session

    def end(self, token: str) -> None:
        self._sessions.pop(token, None)

    def end_user(self, user: str, *, keep: str | None = None) -> None:
        """End every session of ``user`` (deleted, password or role changed), except ``keep``."""
        for token in [t for t, s in self._sessions.items() if s.user == user and t != keep]:
            del self._sessions[token]

    def login_limiter(self, attempts: int, window_s: float) -> Limiter:
        return LoginLimiter(attempts, window_s)  # in memory too: a restart forgives

    def relogin(self, token: str, login_at: str) -> None:
        """The session of ``token`` counts as logged in at ``login_at``: the one that changed
        its own password (knowing the old one) survives the password-changed rule."""
        session = self._sessions.get(token)
        if session is not None:
            session.login_at = login_at

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle_s or now - session.created > self.max_s

    def _expire(self) -> None:
        now = self.clock()
        for token in [t for t, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[token]


def token_hash(token: str) -> str:
    """What a DbSessionStore keeps of a cookie's token: its sha256 (hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class DbSessionStore:
    """Sessions in a database's ``sessions`` table (the police schema): the rules of
    SessionStore (idle and absolute expiry, end, end_user, at most ``max_sessions``, the least
    recently used dropped first), on the wall clock (UTC epoch seconds: the same for every
    instance, and across a restart). The cookie's token is never stored, only its sha256: a
    copy of the table logs nobody in. A session's last_seen is written at most every
    ``touch_every_s`` (not on every request), so an idle session may end up to that much
    early."""

    blocking = True

    def __init__(
        self,
        db: Database,
        idle_s: float,
        max_s: float,
        *,
        clock: Clock = time.time,
        max_sessions: int = MAX_SESSIONS,
        touch_every_s: float | None = None,
    ) -> None:
        self.db = db
        self.idle_s = idle_s
        self.max_s = max_s
        self.clock = clock
        self.max_sessions = max_sessions
        self.touch_every_s = (
            min(TOUCH_EVERY_S, idle_s / 20) if touch_every_s is None else touch_every_s
        )

    def create(self, user: str) -> Session:
        now = self.clock()
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, now, now, iso_ms(utc_now())
        )
        with self.db.write() as tx:
            tx.execute(
                "DELETE FROM sessions WHERE last_seen < ? OR created_at < ?",
                (now - self.idle_s, now - self.max_s),
            )
            count = int(tx.execute("SELECT COUNT(*) AS n FROM sessions").scalar())
            if count >= self.max_sessions:  # drop the least recently used
                tx.execute(
                    "DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions "
                    "ORDER BY last_seen LIMIT ?)",
                    (count - self.max_sessions + 1,),
                )
            tx.execute(
                "INSERT INTO sessions (token_hash, csrf, user_name, created_at, last_seen, "
                "login_at) VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash(session.token), session.csrf, user, now, now, session.login_at),
            )
        return session

    def get(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session of ``token``; ``touch`` counts this request as activity."""
        if not token:
            return None
        key = token_hash(token)
        with self.db.read() as tx:
            row = tx.execute(
                "SELECT csrf, user_name, created_at, last_seen, login_at FROM sessions "
                "WHERE token_hash = ?",
                (key,),
            ).one()
        if row is None:
            return None
        session = _session(token, row)
        now = self.clock()
        if now - session.last_seen > self.idle_s or now - session.created > self.max_s:
            self._delete("token_hash = ?", (key,))
            return None
        if touch and now - session.last_seen >= self.touch_every_s:
            with self.db.write() as tx:
                tx.execute(
                    "UPDATE sessions SET last_seen = ? WHERE token_hash = ? AND last_seen < ?",
                    (now, key, now),
                )
            session.last_seen = now
        return session

    def end(self, token: str) -> None:
        self._delete("token_hash = ?", (token_hash(token),))

    def end_user(self, user: str, *, keep: str | None = None) -> None:
        """End every session of ``user`` (deleted, password or role changed), except ``keep``."""
        if keep is None:
            self._delete("user_name = ?", (user,))
        else:
            self._delete("user_name = ? AND token_hash != ?", (user, token_hash(keep)))

    def login_limiter(self, attempts: int, window_s: float) -> Limiter:
        return DbLoginLimiter(self.db, attempts, window_s, clock=self.clock)

    def relogin(self, token: str, login_at: str) -> None:
        """As SessionStore.relogin."""
        with self.db.write() as tx:
            tx.execute(
                "UPDATE sessions SET login_at = ? WHERE token_hash = ?",
                (login_at, token_hash(token)),
            )

    def _delete(self, where: str, params: tuple[Any, ...]) -> None:
        with self.db.write() as tx:
            tx.execute(f"DELETE FROM sessions WHERE {where}", params)  # noqa: S608 - fixed text


def _session(token: str, row: dict[str, Any]) -> Session:
    return Session(
        token=token,
        csrf=str(row["csrf"]),
        user=str(row["user_name"]),
        created=float(row["created_at"]),
        last_seen=float(row["last_seen"]),
        login_at=str(row["login_at"]),
    )


@dataclass
class LoginLimiter:
    """At most ``attempts`` login attempts per key (a user name, a client address) within
    ``window_s``, a successful one excepted; beyond that the key is refused until its attempts
    age out.

    An attempt is counted (``attempt``) before its password is checked, and the check takes a
    while (scrypt): counting it only after a failure would let concurrent guesses all pass.

    At most ``max_keys`` keys are tracked. To make room the limiter forgets keys whose attempts
    have aged out, then the least recently tried key that is not locked out; a locked-out key is
    never forgotten: when every tracked key is locked out, a new key is refused."""

    attempts: int
    window_s: float
    clock: Clock = time.monotonic
    max_keys: int = MAX_TRACKED_FAILURES
    blocking = False
    # in the order of their last attempt, the oldest first (a key tried again moves to the end)
    _attempts: dict[str, list[float]] = field(default_factory=dict)

    @property
    def tracked(self) -> int:
        return len(self._attempts)

    def blocked(self, *keys: str) -> bool:
        now = self.clock()
        return any(self._locked(key, now) for key in keys)

    def attempt(self, *keys: str) -> bool:
        """Count one attempt against every key, or refuse it (False, nothing counted) when any
        key has used up its attempts or there is no room to track it. No await between the
        check and the count: atomic on the event loop."""
        now = self.clock()
        if any(self._locked(key, now) for key in keys) or not self._make_room(keys, now):
            return False
        for key in keys:
            recent = self._recent(key, now)
            self._attempts.pop(key, None)  # to the end: the most recently tried
            self._attempts[key] = [*recent, now]
        return True

    def succeeded(self, *keys: str) -> None:
        """The attempt was right: its keys start afresh."""
        for key in keys:
            self._attempts.pop(key, None)

    def _make_room(self, keys: tuple[str, ...], now: float) -> bool:
        needed = len({key for key in keys if key not in self._attempts})
        if self.tracked + needed <= self.max_keys:
            return True
        self._forget_aged_out(now)
        while self.tracked + needed > self.max_keys:
            unlocked = next((k for k in self._attempts if not self._locked(k, now)), None)
            if unlocked is None:
                return False  # full of lockouts: keep them all, refuse the newcomer
            del self._attempts[unlocked]
        return True

    def _forget_aged_out(self, now: float) -> None:
        # oldest last attempt first: stop at the first key with a recent one
        for key, times in list(self._attempts.items()):
            if now - times[-1] < self.window_s:
                return
            del self._attempts[key]

    def _locked(self, key: str, now: float) -> bool:
        return len(self._recent(key, now)) >= self.attempts

    def _recent(self, key: str, now: float) -> list[float]:
        return [t for t in self._attempts.get(key, []) if now - t < self.window_s][-self.attempts :]
