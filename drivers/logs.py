"""Log helpers for drivers: a device that misbehaves at its poll or line rate must not flood
the journal, and bytes from outside are shown safely."""

from __future__ import annotations

import threading
import time

from edgeguard.safe_text import preview as safe_preview

PREVIEW_BYTES = 48


class LogLimiter:
    """At most ``burst`` log lines per key in ``window`` seconds; counts what it holds back."""

    def __init__(self, burst: int = 5, window: float = 60.0, max_keys: int = 1024) -> None:
        self.burst = burst
        self.window = window
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[float, int, int]] = {}  # key: (start, logged, held)

    def allow(self, key: str) -> int | None:
        """None: do not log. Otherwise log, mentioning the returned count of held-back lines."""
        now = time.monotonic()
        with self._lock:
            if len(self._slots) >= self.max_keys and key not in self._slots:
                self._slots.clear()
            start, logged, held = self._slots.get(key, (now, 0, 0))
            if now - start >= self.window:
                start, logged = now, 0
            if logged >= self.burst:
                self._slots[key] = (start, logged, held + 1)
                return None
            self._slots[key] = (start, logged + 1, 0)
            return held


def preview(raw: bytes) -> str:
    """A safe, bounded rendering of received bytes for a log line (edgeguard.safe_text)."""
    return safe_preview(raw, PREVIEW_BYTES)


def held(count: int) -> str:
    """The suffix of a log line after ``count`` similar lines were held back."""
    return f" ({count} similar not logged)" if count else ""
