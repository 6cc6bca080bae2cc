"""The site's month as figures: what the report draws and the tests check against an
independent computation over the same rows."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from edgeguard.alarm_model import AlarmKind
from edgeguard.config import PATH_DEVICES, EdgeguardConfig
from edgeguard.reports.ledger import AlarmTrail, MonthRows
from edgeguard.reports.month import ReportMonth
from edgeguard.reports.timeline import (
    Segment,
    StateTime,
    covered_times,
    down_intervals,
    state_times,
    sweep,
)

# People in danger: answered by people. Technical alarms are the availability part.
SECURITY_KINDS = (
    AlarmKind.PANIC,
    AlarmKind.DURESS,
    AlarmKind.INTRUSION,
    AlarmKind.CROWD,
    AlarmKind.LOITERING,
)
# Never in a statistic: tests (and, with drills, the alarms marked as one).
EXCLUDED_KINDS = (AlarmKind.TEST,)
# Each stage as seconds after the press, in the order an alarm goes through them.
STAGES = ("delivered", "received", "acknowledged", "dispatched", "reset")
SLOWEST_LISTED = 10


@dataclass(frozen=True, slots=True)
class Distribution:
    """Seconds after the press; percentiles by nearest rank (the value of an alarm)."""

    count: int
    p50: float | None
    p90: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float]) -> Distribution:
        if not values:
            return cls(0, None, None, None)
        ordered = sorted(values)
        return cls(len(ordered), rank(ordered, 0.5), rank(ordered, 0.9), ordered[-1])


def rank(ordered: list[float], share: float) -> float:
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Availability:
    device: str
    role: str  # camera | input | police_link | other
    time: StateTime


@dataclass(frozen=True, slots=True)
class AreaCoverage:
    area: str
    cameras: list[str]
    time: StateTime


@dataclass(slots=True)
class SiteFigures:
    site_id: str
    site_name: str
    month: ReportMonth
    alarms: list[AlarmTrail]  # the month's counted alarms (no tests), oldest first
    excluded: int
    by_kind: dict[str, int]
    by_location: dict[str, int]
    heatmap: list[list[int]]  # [weekday 0=Monday][hour] security alarms, local time
    stages: dict[str, Distribution]
    slowest: list[AlarmTrail]
    unanswered: list[AlarmTrail]  # security alarms no police acknowledgement reached
    open_alarms: list[AlarmTrail]  # not reset when the month ended
    availability: list[Availability]
    coverage: list[AreaCoverage]
    evidence: dict[str, int]
    evidence_bytes: int
    pruned: int
    rows_read: int
    appliance_down_s: float = 0.0  # the appliance itself off (stop to start): nothing known
    labels: dict[str, str] = field(default_factory=dict)  # location key -> its label
    todo: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    @property
    def security(self) -> list[AlarmTrail]:
        return [a for a in self.alarms if a.kind in SECURITY_KINDS]


def seconds_after(trail: AlarmTrail, stage: str) -> float | None:
    at = trail.stages.get(stage)
    return None if at is None else max(0.0, (at - trail.pressed).total_seconds())


def compute(config: EdgeguardConfig, month: ReportMonth, rows: MonthRows) -> SiteFigures:
    counted = sorted(
        (a for a in rows.alarms if a.kind not in EXCLUDED_KINDS and not _drill(a)),
        key=lambda a: a.pressed,
    )
    security = [a for a in counted if a.kind in SECURITY_KINDS]
    down = down_intervals(rows.appliance, month.start, month.until)
    segments = list(sweep(rows.states, down, month.start, month.until))
    figures = SiteFigures(
        site_id=config.site.id,
        site_name=config.site.name,
        month=month,
        alarms=counted,
        excluded=len(rows.alarms) - len(counted),
        by_kind=dict(Counter(a.kind for a in counted).most_common()),
        by_location=dict(Counter(a.location for a in security).most_common()),
        heatmap=_heatmap(security, month),
        stages={s: Distribution.of(_after(security, s)) for s in STAGES},
        slowest=_slowest(security),
        unanswered=[a for a in security if "acknowledged" not in a.stages],
        open_alarms=[a for a in counted if _open_at(a, month.until)],
        availability=_availability(config, rows, segments),
        coverage=[
            AreaCoverage(area, cams, covered_times(segments, cams))
            for area, cams in key_areas(config).items()
        ],
        evidence=rows.evidence,
        evidence_bytes=rows.evidence_bytes,
        pruned=rows.pruned,
        rows_read=rows.rows_read,
        appliance_down_s=sum((b - a).total_seconds() for a, b in down),
        labels={key: location.label for key, location in config.locations.items()},
    )
    figures.todo = _todo(figures)
    return figures


def _drill(trail: AlarmTrail) -> bool:
    return False  # drills arrive with the patrols and drills issue; see docs/reports.md


def _after(alarms: list[AlarmTrail], stage: str) -> list[float]:
    return [s for a in alarms if (s := seconds_after(a, stage)) is not None]


def _open_at(trail: AlarmTrail, moment: datetime) -> bool:
    reset = trail.stages.get("reset")
    return reset is None or reset >= moment


def _heatmap(alarms: list[AlarmTrail], month: ReportMonth) -> list[list[int]]:
    grid = [[0] * 24 for _ in range(7)]
    for trail in alarms:
        local = month.local(trail.pressed)
        grid[local.weekday()][local.hour] += 1
    return grid


def _slowest(alarms: list[AlarmTrail]) -> list[AlarmTrail]:
    """Unacknowledged first, then by time to the police acknowledgement."""

    def key(trail: AlarmTrail) -> tuple[int, float]:
        seconds = seconds_after(trail, "acknowledged")
        return (0, 0.0) if seconds is None else (1, -seconds)

    return sorted(alarms, key=key)[:SLOWEST_LISTED]


def _role(config: EdgeguardConfig, device: str) -> str:
    if device in PATH_DEVICES.values():
        return "police_link"
    if any(camera.name == device for camera in config.cameras):
        return "camera"
    if any(item.name == device for item in config.inputs):
        return "input"
    return "other"


def _availability(
    config: EdgeguardConfig, rows: MonthRows, segments: list[Segment]
) -> list[Availability]:
    devices = {change.device for change in rows.states}
    devices.update(camera.name for camera in config.cameras if camera.enabled)
    devices.update(item.name for item in config.inputs)
    order = {"police_link": 0, "camera": 1, "input": 2, "other": 3}
    found = [Availability(d, _role(config, d), state_times(segments, d)) for d in devices]
    return sorted(found, key=lambda a: (order[a.role], a.device))


def key_areas(config: EdgeguardConfig) -> dict[str, list[str]]:
    """Each key area and its cameras, as `edgeguard status` reports coverage."""
    from edgeguard.cameras.manager import coverage_report

    return {
        area["key_area"]: [c["name"] for c in area["cameras"] if c["state"] != "disabled"]
        for area in coverage_report(config, {})
    }


def _todo(figures: SiteFigures) -> list[tuple[str, dict[str, object]]]:
    """What the director should see done: each a text key and its values (reports/text.py)."""
    todo: list[tuple[str, dict[str, object]]] = []
    if figures.appliance_down_s > 0:
        todo.append(("todo.down", {"duration": figures.appliance_down_s}))
    if figures.open_alarms:
        todo.append(("todo.open", {"n": len(figures.open_alarms)}))
    if figures.unanswered:
        todo.append(("todo.unanswered", {"n": len(figures.unanswered)}))
    total = figures.month.seconds
    for area in figures.coverage:
        share = area.time.share("online", total)
        if share < 1.0:
            todo.append(("todo.coverage", {"area": area.area, "share": share}))
    for item in figures.availability:
        if item.role in ("camera", "police_link") and item.time.share("online", total) < 0.99:
            todo.append(
                ("todo.device", {"device": item.device, "share": item.time.share("online", total)})
            )
    return todo
