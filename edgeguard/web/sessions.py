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
    while (scrypt): counting it only after a failure would let concurrent guesses all pass.

    At most ``max_keys`` keys are tracked. To make room the limiter forgets keys whose attempts
    have aged out, then the least recently tried key that is not locked out; a locked-out key is
    never forgotten: when every tracked key is locked out, a new key is refused."""

    attempts: int
    window_s: float
    clock: Clock = time.monotonic
    max_keys: int = MAX_TRACKED_FAILURES
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
