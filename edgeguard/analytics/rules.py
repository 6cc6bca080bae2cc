"""Zone rules on the smoothed people counts: crowd gathering and loitering (dwell).

Each rule is a small state machine fed on every analysed frame; it returns a RuleEvent only when
its alarm goes active or clears, never in between, so a caller can forward every event it gets.

- **Crowd**: at least ``min_people`` in the zone for ``for_s`` seconds without a break → active.
  The run starts at ``reached_at`` when the caller gives it (ZoneCounter.reached: when the
  people counted now were first seen, not when their tracks were confirmed), so the onset and
  the alarm time do not depend on how often the detector runs.
  It clears once the count has stayed below ``clear_below`` (default ``min_people``) for
  ``clear_after_s`` seconds; a short dip (a person hidden for a moment) does not clear it, and a
  short peak does not raise it. After it clears, a new alarm needs ``for_s`` again.
- **Dwell**: one tracked person in the zone for ``max_s`` seconds → active; clears once nobody
  has been over ``max_s`` for ``clear_after_s`` seconds.

Times are seconds on any monotonic clock; a time earlier than the previous one is taken as the
previous one, and a non-finite time or value is ignored."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleEvent:
    """A rule's alarm going active (``active``) or clearing, at time ``at``. ``started_at``: when
    the condition began (the first moment of the crowd; when the loiterer entered the zone), the
    same in the activation and its clearing. ``count``: people at the time (dwell: 1 or 0)."""

    kind: Literal["crowd", "dwell"]
    zone: str
    active: bool
    at: float
    started_at: float
    count: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CrowdSettings:
    min_people: int
    for_s: float
    clear_below: int | None = None
    clear_after_s: float = 10.0

    def __post_init__(self) -> None:
        if self.min_people < 1:
            raise ValueError(f"min_people must be at least 1, got {self.min_people}")
        _check_seconds("for_s", self.for_s)
        _check_seconds("clear_after_s", self.clear_after_s)
        if self.clear_below is not None and not 1 <= self.clear_below <= self.min_people:
            raise ValueError(
                f"clear_below must be between 1 and min_people ({self.min_people}), "
                f"got {self.clear_below}"
            )

    @property
    def clear_threshold(self) -> int:
        """The alarm clears when the count stays below this."""
        return self.min_people if self.clear_below is None else self.clear_below


@dataclass(frozen=True)
class DwellSettings:
    max_s: float
    clear_after_s: float = 5.0

    def __post_init__(self) -> None:
        _check_seconds("max_s", self.max_s)
        _check_seconds("clear_after_s", self.clear_after_s)


def _check_seconds(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}")


class _Clock:
    """Monotonic view of the times a rule is fed."""

    def __init__(self) -> None:
        self.last = -math.inf

    def tick(self, t: float) -> float | None:
        if not math.isfinite(t):
            return None
        self.last = max(self.last, float(t))
        return self.last


class _Hold:
    """How long a condition has held: ``held`` is true once it has lasted ``seconds``; a false
    condition starts it over. ``since`` is when the current run began."""

    def __init__(self) -> None:
        self.since: float | None = None
        self._broken = -math.inf  # the last time a run of the condition ended

    def held(self, condition: bool, now: float, seconds: float, began: float | None = None) -> bool:
        """``began``: when the condition began, if known: taken when after the end of the
        last run (a run starts no earlier than the break before it) and not after ``now``."""
        if not condition:
            if self.since is not None:
                self.since, self._broken = None, now
            return False
        if self.since is None:
            known = began is not None and math.isfinite(began) and began > self._broken
            self.since = min(now, began) if known and began is not None else now
        return now - self.since >= seconds


class CrowdRule:
    """The crowd alarm of one zone; ``update`` with the zone's smoothed count."""

    def __init__(self, zone: str, settings: CrowdSettings) -> None:
        self.zone = zone
        self.settings = settings
        self.active = False
        self._clock = _Clock()
        self._above = _Hold()  # count >= min_people (while idle)
        self._below = _Hold()  # count < clear threshold (while active)
        self._started_at = 0.0
        self._activated_at = 0.0
        self._peak = 0

    def update(self, count: int, t: float, reached_at: float | None = None) -> RuleEvent | None:
        """``reached_at``: since when the zone has held ``min_people`` (ZoneCounter.reached),
        which backdates the start of the crowd; without it, the first update at the count."""
        now = self._clock.tick(t)
        if now is None:
            return None
        count = max(0, int(count))
        if self.active:
            return self._while_active(count, now)
        return self._while_idle(count, now, reached_at)

    def _while_idle(self, count: int, now: float, reached_at: float | None) -> RuleEvent | None:
        crowd = count >= self.settings.min_people
        if not self._above.held(crowd, now, self.settings.for_s, reached_at):
            return None
        assert self._above.since is not None
        self.active, self._below.since = True, None
        self._started_at, self._activated_at, self._peak = self._above.since, now, count
        logger.info("crowd in %s: %d people since %.1f s", self.zone, count, self._started_at)
        detail = {"min_people": self.settings.min_people, "for_s": self.settings.for_s}
        return RuleEvent("crowd", self.zone, True, now, self._started_at, count, detail)

    def _while_active(self, count: int, now: float) -> RuleEvent | None:
        self._peak = max(self._peak, count)
        below = count < self.settings.clear_threshold
        if not self._below.held(below, now, self.settings.clear_after_s):
            return None
        self.active, self._above.since = False, None
        logger.info("crowd in %s cleared: %d people", self.zone, count)
        detail = {"peak": self._peak, "duration_s": round(now - self._activated_at, 3)}
        return RuleEvent("crowd", self.zone, False, now, self._started_at, count, detail)


class DwellRule:
    """The loitering alarm of one zone; ``update`` with ZoneCounter.dwell()[zone]: how long the
    person there longest has been in the zone."""

    def __init__(self, zone: str, settings: DwellSettings) -> None:
        self.zone = zone
        self.settings = settings
        self.active = False
        self._clock = _Clock()
        self._below = _Hold()
        self._started_at = 0.0
        self._longest = 0.0

    def update(self, dwell_s: float, t: float) -> RuleEvent | None:
        now = self._clock.tick(t)
        if now is None or not math.isfinite(dwell_s):
            return None
        dwell_s = max(0.0, float(dwell_s))
        return self._while_active(dwell_s, now) if self.active else self._while_idle(dwell_s, now)

    def _while_idle(self, dwell_s: float, now: float) -> RuleEvent | None:
        if dwell_s < self.settings.max_s:
            return None
        self.active, self._below.since = True, None
        self._started_at, self._longest = now - dwell_s, dwell_s
        logger.info("loitering in %s: %.0f s", self.zone, dwell_s)
        detail = {"dwell_s": round(dwell_s, 1), "max_s": self.settings.max_s}
        return RuleEvent("dwell", self.zone, True, now, self._started_at, 1, detail)

    def _while_active(self, dwell_s: float, now: float) -> RuleEvent | None:
        self._longest = max(self._longest, dwell_s)
        below = dwell_s < self.settings.max_s
        if not self._below.held(below, now, self.settings.clear_after_s):
            return None
        self.active = False
        logger.info("loitering in %s cleared", self.zone)
        detail = {"longest_s": round(self._longest, 1), "max_s": self.settings.max_s}
        return RuleEvent("dwell", self.zone, False, now, self._started_at, 0, detail)
