"""The analysis of one camera's frames: motion → (gated) person detection → counts per zone →
crowd / loitering / motion-in-schedule rules, and view tampering. The same code runs in the
capture process (live) and in `edgeguard analyze` (a file), so what installers tune is what
runs. Pure: frames in, reports and events out; no I/O, no processes."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edgeguard.analytics.counting import Zone, ZoneCounter
from edgeguard.analytics.geometry import Box, box_overlaps_polygon
from edgeguard.analytics.motion import MotionDetector, MotionSettings
from edgeguard.analytics.rules import CrowdRule, CrowdSettings, DwellRule, DwellSettings
from edgeguard.analytics.spec import PipelineSpec, ZoneSpec
from edgeguard.analytics.tamper import TamperDetector, TamperSettings

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONE_MARGIN = 0.05  # motion this close to a zone (fraction of the frame) wakes the detector
SETTLE_DETECTIONS = 2  # detections at the motion rate after the motion near a zone stops


class Detector(Protocol):
    def detect(self, frame_bgr: Frame, region: Box | None = None) -> list[Any]: ...


# --- what comes out ------------------------------------------------------------------------
@dataclass(frozen=True)
class AnalyticsEvent:
    """A rule's transition: a `crowd`, `loitering`, `motion` (alarm window), `tamper` alarm
    going active or clearing, or a `motion_event` (ledger only)."""

    kind: str
    zone: str | None
    active: bool
    at: float
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "zone": self.zone, "active": self.active, "at": self.at,
                "detail": self.detail}  # fmt: skip


@dataclass(frozen=True)
class FrameReport:
    t: float
    motion: tuple[Box, ...]
    people: tuple[Box, ...] | None  # None: the detector did not run on this frame
    counts: dict[str, int]
    events: tuple[AnalyticsEvent, ...]
    scores: tuple[float, ...] | None = None  # the detector's confidence for each of `people`


def _box(box: Box) -> list[float]:
    return [round(box.x, 4), round(box.y, 4), round(box.w, 4), round(box.h, 4)]


def report_json(report: FrameReport, index: int) -> dict[str, Any]:
    return {
        "frame": index,
        "t": round(report.t, 3),
        "motion": [_box(b) for b in report.motion],
        "people": None if report.people is None else [_box(b) for b in report.people],
        "scores": None if report.scores is None else [round(s, 3) for s in report.scores],
        "counts": report.counts,
    }


# --- the pipeline --------------------------------------------------------------------------
@dataclass
class _ZoneState:
    spec: ZoneSpec
    crowd: CrowdRule | None
    dwell: DwellRule | None
    motion_active: bool = False
    alarm_active: bool = False


class AnalysisPipeline:
    def __init__(
        self,
        spec: PipelineSpec,
        detector: Detector | None,
        *,
        local_time: Callable[[float], datetime] = datetime.fromtimestamp,
    ) -> None:
        self.spec = spec
        self.detector = detector
        self.local_time = local_time
        self.motion = MotionDetector(MotionSettings(**spec.motion))
        self.tamper = (
            TamperDetector(TamperSettings(**spec.tamper)) if spec.tamper is not None else None
        )
        self.zones = [
            _ZoneState(
                z,
                CrowdRule(z.name, CrowdSettings(**z.crowd)) if z.crowd else None,
                DwellRule(z.name, DwellSettings(**z.dwell)) if z.dwell else None,
            )
            for z in spec.zones
        ]
        self.counter = ZoneCounter([Zone(z.name, z.polygon) for z in spec.zones])
        self.counts = {z.name: 0 for z in spec.zones}
        self._last_detect: float | None = None  # the grid time of the last detection
        self._last_frame: float | None = None
        self._frame_period = 0.0
        self._near_until = -math.inf
        self._any_motion = False

    def process(self, frame: Frame, t: float) -> FrameReport:
        events: list[AnalyticsEvent] = []
        if self._last_frame is not None and t > self._last_frame:
            self._frame_period = t - self._last_frame
        self._last_frame = t
        motion = self.motion.update(frame, t)
        if self.tamper is not None:
            self._tamper(frame, t, events)
        people = self._detect(frame, t, motion.boxes)
        self._rules(t, events)
        self._motion(motion.boxes, t, events)
        boxes = None if people is None else tuple(d.box for d in people)
        scores = None if people is None else tuple(float(d.score) for d in people)
        return FrameReport(t, motion.boxes, boxes, dict(self.counts), tuple(events), scores)

    # --- stages -----------------------------------------------------------------------------
    def _tamper(self, frame: Frame, t: float, events: list[AnalyticsEvent]) -> None:
        assert self.tamper is not None
        event = self.tamper.update(frame, t)
        if event is not None:
            detail = {"reason": event.reason, **{k: round(v, 3) for k, v in event.measures.items()}}
            events.append(AnalyticsEvent("tamper", None, event.active, t, detail))

    def _detect(self, frame: Frame, t: float, motion: tuple[Box, ...]) -> list[Any] | None:
        if self.detector is None or not self.zones:
            return None
        if any(
            box_overlaps_polygon(box.expanded(ZONE_MARGIN), zone.spec.polygon)
            for box in motion
            for zone in self.zones
        ):
            self._near_until = t + SETTLE_DETECTIONS * self.spec.detect_interval
        # still 'near' a moment after the motion stops: someone who just left is seen gone
        near = t <= self._near_until
        if not self._due(t, self.spec.detect_interval if near else self.spec.idle_interval):
            return None
        detections = self.detector.detect(frame)
        self.counts = self.counter.update(detections, t)
        return detections

    def _due(self, t: float, interval: float) -> bool:
        """Whether a detection is due at ``t``: on a grid of due times ``interval`` apart, with
        half a frame of slack, so that the detector runs on every frame due (10 fps and 0.1 s:
        every frame; 0.5 s: every 5th) whatever the jitter or rounding of the frame times. A
        grid that has fallen more than an interval behind starts again at ``t``."""
        if self._last_detect is None:
            self._last_detect = t
            return True
        due_at = self._last_detect + interval
        slack = min(self._frame_period, interval) / 2
        if t < due_at - slack:
            return False
        self._last_detect = due_at if t - due_at < interval else t
        return True

    def _rules(self, t: float, events: list[AnalyticsEvent]) -> None:
        dwell = self.counter.dwell(t) if any(z.dwell for z in self.zones) else {}
        for zone in self.zones:
            count = self.counts.get(zone.spec.name, 0)
            for rule, value in ((zone.crowd, count), (zone.dwell, dwell.get(zone.spec.name, 0.0))):
                if rule is None:
                    continue
                if isinstance(rule, CrowdRule):  # the crowd began when its people were seen
                    reached = self.counter.reached(zone.spec.name, rule.settings.min_people)
                    change = rule.update(int(value), t, reached_at=reached)
                else:
                    change = rule.update(value, t)
                if change is not None:
                    kind = "crowd" if change.kind == "crowd" else "loitering"
                    detail = {"count": change.count, "since": round(change.started_at, 3),
                              **change.detail}  # fmt: skip
                    events.append(AnalyticsEvent(kind, zone.spec.name, change.active, t, detail))

    def _motion(self, boxes: tuple[Box, ...], t: float, events: list[AnalyticsEvent]) -> None:
        any_motion = bool(boxes)
        if self.spec.motion_events == "all" and any_motion != self._any_motion:
            events.append(AnalyticsEvent("motion_event", None, any_motion, t, {}))
        self._any_motion = any_motion
        for zone in self.zones:
            inside = any(box_overlaps_polygon(b, zone.spec.polygon) for b in boxes)
            if inside != zone.motion_active:
                zone.motion_active = inside
                if self.spec.motion_events == "zones":
                    events.append(AnalyticsEvent("motion_event", zone.spec.name, inside, t, {}))
            alarm = inside and self._in_window(zone.spec.motion_alarm, t)
            if alarm and not zone.alarm_active:
                zone.alarm_active = True
                events.append(AnalyticsEvent("motion", zone.spec.name, True, t, {}))
            elif zone.alarm_active and not inside:
                zone.alarm_active = False
                events.append(AnalyticsEvent("motion", zone.spec.name, False, t, {}))

    def _in_window(self, window: dict[str, Any] | None, t: float) -> bool:
        if window is None:
            return False
        return in_schedule(window, self.local_time(t))


def in_schedule(window: dict[str, Any], now: datetime) -> bool:
    """Whether ``now`` (local time) is in a daily window such as 22:00-06:00 on given days.
    A window that ends before it starts runs past midnight; its day is the day it starts."""
    start = _minutes(str(window["start"]))
    end = _minutes(str(window["end"]))
    days = set(window.get("days") or DAYS)
    minute = now.hour * 60 + now.minute
    today = DAYS[now.weekday()]
    yesterday = DAYS[(now.weekday() - 1) % 7]
    if start <= end:
        return today in days and start <= minute < end
    return (today in days and minute >= start) or (yesterday in days and minute < end)


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")[:2]
    return int(hours) * 60 + int(minutes)
