"""Time spent in each state over the month: devices from their ``device.status`` rows, the
appliance's own down time (``system.stop`` to the next ``system.start``) as unknown."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from edgeguard.reports.ledger import StateChange

UNKNOWN = "unknown"  # no row says (before a device's first row; the appliance was off)


@dataclass(frozen=True, slots=True)
class Segment:
    start: datetime
    end: datetime
    states: dict[str, str]  # device -> its state over the segment
    appliance_up: bool

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def down_intervals(
    appliance: list[tuple[str, datetime]], start: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """From each stop to the next start, clipped to the month."""
    down: list[tuple[datetime, datetime]] = []
    stopped_at: datetime | None = None
    for what, at in appliance:
        if what == "stop" and stopped_at is None:
            stopped_at = at
        elif what == "start" and stopped_at is not None:
            down.append((max(stopped_at, start), min(at, until)))
            stopped_at = None
    if stopped_at is not None:
        down.append((max(stopped_at, start), until))
    return [(a, b) for a, b in down if b > a]


def sweep(
    changes: Iterable[StateChange],
    down: list[tuple[datetime, datetime]],
    start: datetime,
    until: datetime,
) -> Iterator[Segment]:
    """The month cut at every change; each piece with every device's state over it."""
    ordered = sorted(changes, key=lambda change: change.at)
    states: dict[str, str] = {}
    points = {start, until}
    for change in ordered:
        if change.at < start:
            states[change.device] = change.state
        elif change.at < until:
            points.add(change.at)
    for a, b in down:
        points.update((a, b))
    cuts = sorted(points)
    pending = [change for change in ordered if start <= change.at < until]
    index = 0
    for left, right in itertools.pairwise(cuts):
        while index < len(pending) and pending[index].at <= left:
            states[pending[index].device] = pending[index].state
            index += 1
        up = not any(a <= left < b for a, b in down)
        yield Segment(left, right, dict(states), up)


@dataclass(slots=True)
class StateTime:
    """Seconds per state of one device (or one key area: ``online`` = covered)."""

    seconds: dict[str, float] = field(default_factory=dict)
    outages: int = 0
    longest_outage_s: float = 0.0

    def share(self, state: str, total: float) -> float:
        return self.seconds.get(state, 0.0) / total if total > 0 else 0.0


def state_times(segments: list[Segment], device: str) -> StateTime:
    """One device's states; an outage is a run of segments not online while the appliance was
    up and the state known."""
    result, run = StateTime(), 0.0
    for segment in segments:
        state = segment.states.get(device, UNKNOWN) if segment.appliance_up else UNKNOWN
        result.seconds[state] = result.seconds.get(state, 0.0) + segment.seconds
        if state in ("offline", "fault"):
            if run == 0.0:
                result.outages += 1
            run += segment.seconds
            result.longest_outage_s = max(result.longest_outage_s, run)
        elif state == "online":
            run = 0.0
    return result


def covered_times(segments: list[Segment], cameras: list[str]) -> StateTime:
    """A key area is covered while at least one of its cameras is online (and known to be)."""
    result, run = StateTime(), 0.0
    for segment in segments:
        live = segment.appliance_up and any(
            segment.states.get(camera) == "online" for camera in cameras
        )
        state = "online" if live else "uncovered"
        result.seconds[state] = result.seconds.get(state, 0.0) + segment.seconds
        if live:
            run = 0.0
            continue
        if run == 0.0:
            result.outages += 1
        run += segment.seconds
        result.longest_outage_s = max(result.longest_outage_s, run)
    return result
