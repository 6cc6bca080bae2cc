"""Login sessions (in memory: a restart logs everyone out, which is the safe side) and the
limit on failed logins."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edgeguard.ids import iso_ms, utc_now

Clock = Callable[[], float]
MAX_SESSIONS = 1000
MAX_TRACKED_FAILURES = 10_000


@dataclass
class Session:
    token: str  # the cookie's value
    csrf: str  # sent back in X-CSRF-Token (or a form's csrf field) with every action
    user: str
    created: float
    last_seen: float
    login_at: str  # UTC, ISO with ms: a password changed after this ends the session


@dataclass
class SessionStore:
    idle_s: float
    max_s: float
    clock: Clock = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)

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

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle_s or now - session.created > self.max_s

    def _expire(self) -> None:
        now = self.clock()
        for token in [t for t, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[token]


@dataclass
class LoginLimiter:
    """At most ``attempts`` login attempts per key (a user name, a client address) within
    ``window_s``, a successful one excepted; beyond that the key is refused until its attempts
    age out.

    An attempt is counted (``attempt``) before its password is checked, and the check takes a
    while (scrypt): counting it only after a failure would let concurrent guesses all pass."""

    attempts: int
    window_s: float
    clock: Clock = time.monotonic
    _failures: dict[str, list[float]] = field(default_factory=dict)

    def blocked(self, *keys: str) -> bool:
        now = self.clock()
        return any(len(self._recent(key, now)) >= self.attempts for key in keys)

    def attempt(self, *keys: str) -> bool:
        """Count one attempt against every key, or refuse it (False, nothing counted) when any
        key has used up its attempts. No await between the check and the count: atomic."""
        if self.blocked(*keys):
            return False
        now = self.clock()
        if len(self._failures) > MAX_TRACKED_FAILURES:
            self._failures.clear()  # a flood of names: forget, rather than grow without bound
        for key in keys:
            self._failures[key] = [*self._recent(key, now), now]
        return True

    def succeeded(self, *keys: str) -> None:
        """The attempt was right: its keys start afresh."""
        for key in keys:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> list[float]:
        return [t for t in self._failures.get(key, []) if now - t < self.window_s]
