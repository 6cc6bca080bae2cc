"""When an undelivered outbox row goes on to the next transmission path (EN 50136-1 dual path,
docs/transmission-paths.md).

Every row starts on the primary broker (stage 0). It is handed to the secondary broker
(stage 1) when the primary link is down, or when the primary has not PUBACKed it within
``after_s``. It is declared overdue (stage 2: the SMS path) when neither broker has PUBACKed it
within ``after_s`` of the hand-over, or at once when both links are down (no secondary
configured counts as down). A link that never came up since start-up counts as down only
after ``after_s`` (Lane.ok). A row leaves
this bookkeeping when either broker PUBACKs it. Nothing here sends or drops anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)

PRIMARY, SECONDARY, OVERDUE = 0, 1, 2


class Failover:
    def __init__(
        self,
        after_s: float,
        *,
        primary_ok: Callable[[], bool],
        secondary_ok: Callable[[], bool] | None,
        to_secondary: Callable[[list[int]], None],
        overdue: Callable[[list[int]], None],
    ) -> None:
        self.after_s = after_s
        self._primary_ok = primary_ok
        self._secondary_ok = secondary_ok
        self._to_secondary = to_secondary
        self._overdue = overdue
        self._stage: dict[int, int] = {}
        self._due: dict[int, float] = {}  # row id -> when it moves on (monotonic)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self.handed_over = 0
        self.overdue_rows = 0

    @property
    def has_secondary(self) -> bool:
        return self._secondary_ok is not None

    def track(self, row_ids: Iterable[int]) -> None:
        """New rows, sent on the primary now: they move on at once if it has failed."""
        ids = list(row_ids)
        if not ids:
            return
        now = time.monotonic()
        for row_id in ids:
            self._stage.setdefault(row_id, PRIMARY)
            self._due.setdefault(row_id, now + self.after_s)
        if not self._primary_ok():
            self.advance(now)
        else:
            self._arm(now + self.after_s)

    def forget(self, row_id: int) -> None:
        """Delivered (by either broker)."""
        self._stage.pop(row_id, None)
        self._due.pop(row_id, None)

    def stage(self, row_id: int) -> int | None:
        return self._stage.get(row_id)

    def advance(self, now: float | None = None) -> None:
        """Move on every row whose path failed: called on link changes and by the timer."""
        now = time.monotonic() if now is None else now
        primary_ok = self._primary_ok()
        secondary_ok = self._secondary_ok() if self._secondary_ok is not None else False
        handed, overdue = [], []
        for row_id, was in list(self._stage.items()):
            stage, due = was, self._due.get(row_id, now) <= now
            if stage == PRIMARY and (due or not primary_ok):
                handed.append(row_id)
                stage, due = SECONDARY, False
                self._due[row_id] = now + self.after_s
            if stage == SECONDARY and (due or not (secondary_ok or primary_ok)):
                overdue.append(row_id)
                stage = OVERDUE
                self._due.pop(row_id, None)
            self._stage[row_id] = stage
        self._hand_on(handed, overdue, primary_ok)
        self._arm(min(self._due.values(), default=float("inf")))

    def _hand_on(self, handed: list[int], overdue: list[int], primary_ok: bool) -> None:
        if handed and self.has_secondary:
            self.handed_over += len(handed)
            logger.warning(
                "failover: %d message(s) also sent on the secondary broker (primary: %s)",
                len(handed),
                f"no PUBACK within {self.after_s:g} s" if primary_ok else "link down",
            )
            self._to_secondary(handed)
        if overdue:
            self.overdue_rows += len(overdue)
            self._overdue(overdue)

    def _arm(self, at: float) -> None:
        if at == float("inf") or (self._timer is not None and self._timer_at <= at):
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, at - time.monotonic())
        self._timer_at = at
        self._timer = loop.call_later(delay + 0.001, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        try:
            self.advance()
        except Exception:
            logger.exception("failover check failed")

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, float("inf")
