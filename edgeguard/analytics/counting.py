"""People per zone: a person is in a zone when the bottom-centre of its box (where it stands) is
inside the zone's polygon.

``count_in_zones`` counts one frame's detections. ``ZoneCounter`` smooths the counts over time
with a small IoU tracker, so that a person the detector misses for a moment is not lost and one
false detection is not counted. Its times are seconds, the same at any detection rate: the
numbers of runs below come from the time between the last two runs (``interval``):

- a track is **confirmed** once it has been matched in ``k`` of its last ``ceil(1.5 k)`` runs,
  ``k = 1 + ceil(confirm_s / interval)`` (at least 2): seen for ``confirm_s`` (0.5 s) at any
  rate (at 2 runs per second: 2 of the last 3); an unconfirmed track that can no longer get
  there (more consecutive misses than the window allows) is dropped;
- a confirmed track **persists** while unseen for ``hold_s`` seconds (and at least
  ``min_misses`` detector runs), at its last known place, unless it was last seen at the left,
  right or bottom side of the frame (within ``edge_margin``): then it has walked out and goes
  once missed for ``EDGE_HOLD_S`` (one miss at 2 runs per second);
- the smoothed count of a zone is the number of confirmed tracks standing in it, except a held
  (missed) track near a confirmed track seen more recently when one of the two started near
  the other and they were seen together (both matched, near) in fewer runs than confirm a
  track: a second track on the same person (a second box, a track lost and found again), not
  a second person; two people who crossed started apart, two who walk side by side are seen
  together, and one hidden behind the other still counts;
- each track remembers when it entered each zone, which gives the dwell time of the person who
  has stayed longest (``dwell``), for the loitering rule, and since when a zone has held at
  least n people (``reached``), for the crowd rule.

Memory is bounded: unconfirmed tracks go after a few misses, confirmed ones after ``hold_s``,
and never more than ``max_tracks`` are kept."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edgeguard.analytics.detector import Detection
from edgeguard.analytics.geometry import Box, Point, Polygon, point_in_polygon

logger = logging.getLogger(__name__)

CONFIRM_S = 0.5  # a new track is counted once seen for this long (2 of 3 runs at 2/s)
EDGE_HOLD_S = 0.5  # a track last seen at the frame's side goes once unseen this long
HISTORY = 32  # runs a track remembers (the longest confirmation window: 10 runs per second)


@dataclass(frozen=True)
class Zone:
    """A named zone: a polygon in normalised frame coordinates."""

    name: str
    polygon: Polygon


def in_zone(feet: Point, zone: Zone) -> bool:
    return point_in_polygon(feet, zone.polygon)


def count_in_zones(detections: Sequence[Detection], zones: Sequence[Zone]) -> dict[str, int]:
    """How many detections stand (feet point inside) in each zone, from this frame alone."""
    counts = {zone.name: 0 for zone in zones}
    for detection in detections:
        feet = detection.box.feet()
        for zone in zones:
            if in_zone(feet, zone):
                counts[zone.name] += 1
    return counts


@dataclass
class Track:
    """One person followed across detector runs."""

    id: int
    box: Box
    first_seen: float
    last_seen: float
    hits: deque[bool] = field(default_factory=lambda: deque([True], maxlen=HISTORY))
    confirmed: bool = False
    misses: int = 0
    entered: dict[str, float] = field(default_factory=dict)  # zone -> time the feet got in
    together: dict[int, int] = field(default_factory=dict)  # track id -> runs both seen, near
    born_near: frozenset[int] = frozenset()  # tracks near this one when it started

    def hit(self, box: Box, t: float, need: int) -> None:
        self.box, self.last_seen, self.misses = box, t, 0
        self.hits.append(True)
        window = list(self.hits)[-confirm_window(need) :]
        self.confirmed = self.confirmed or sum(window) >= need

    def miss(self) -> None:
        self.misses += 1
        self.hits.append(False)


def confirm_window(need: int) -> int:
    """The runs in which a track must be matched ``need`` times to be confirmed (2 of 3)."""
    return min(HISTORY, math.ceil(need * 1.5))


class ZoneCounter:
    """Smoothed people counts per zone over time; feed it every detector run.

    ``hold_s``: a confirmed person unseen for up to this long (and fewer than ``min_misses``
    runs) is still counted at its last place. ``match_iou``: the overlap that makes a detection
    the same person as a track; a detection overlapping no track still continues the nearest
    one whose box is within ``max_jump`` box heights (people walk between two runs).
    ``confirm_s``: how long a new track must be seen before it is counted.
    """

    def __init__(
        self,
        zones: Sequence[Zone],
        *,
        hold_s: float = 2.0,
        min_misses: int = 2,
        match_iou: float = 0.2,
        max_jump: float = 0.75,
        max_tracks: int = 256,
        edge_margin: float = 0.05,
        confirm_s: float = CONFIRM_S,
    ) -> None:
        for name, value in (("hold_s", hold_s), ("confirm_s", confirm_s)):
            if not value >= 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        names = [zone.name for zone in zones]
        if len(set(names)) != len(names):
            raise ValueError(f"zone names must be unique, got {names}")
        self.zones = tuple(zones)
        self.hold_s = float(hold_s)
        self.min_misses = max(1, int(min_misses))
        self.match_iou = float(match_iou)
        self.max_jump = float(max_jump)
        self.max_tracks = max(1, int(max_tracks))
        self.edge_margin = float(edge_margin)
        self.confirm_s = float(confirm_s)
        self.tracks: list[Track] = []
        self._next_id = 1
        self._now = -math.inf
        self.interval: float | None = None  # seconds between the last two runs

    def update(self, detections: Sequence[Detection], t: float) -> dict[str, int]:
        """Take one detector run's detections at time ``t`` (seconds, any origin; a time
        earlier than the last is taken as the last); the smoothed counts per zone."""
        now = self._advance(t)
        matched, fresh = self._match([d.box for d in detections])
        need = self._confirm_hits()
        for track in self.tracks:
            box = matched.get(track.id)
            if box is None:
                track.miss()
            else:
                track.hit(box, now, need)
        for box in fresh:
            self._start(box, now)
        self._expire(now)
        self._seen_together([track for track in self.tracks if track.misses == 0])
        self._update_zones(now)
        return self.counts()

    def counts(self) -> dict[str, int]:
        """The smoothed counts as of the last update."""
        counts = {zone.name: 0 for zone in self.zones}
        for track in self._counted():
            for name in track.entered:
                counts[name] += 1
        return counts

    def dwell(self, t: float) -> dict[str, float]:
        """Per zone, how long (seconds, at time ``t``) the person there longest has been in it;
        0.0 for a zone with nobody counted in it."""
        now = max(self._now, t) if math.isfinite(t) else self._now
        dwell = {zone.name: 0.0 for zone in self.zones}
        for track in self._counted():
            for name, since in track.entered.items():
                dwell[name] = max(dwell[name], now - since)
        return dwell

    def reached(self, zone: str, n: int) -> float | None:
        """Since when at least ``n`` of the people counted in ``zone`` now have been in it (the
        n-th earliest entry, from the first run that saw each); None if fewer are counted."""
        entries = sorted(track.entered[zone] for track in self._counted() if zone in track.entered)
        return entries[n - 1] if 1 <= n <= len(entries) else None

    # --- internals ----------------------------------------------------------------------------
    def _advance(self, t: float) -> float:
        before = self._now
        if math.isfinite(t):
            self._now = max(self._now, float(t))
        elif not math.isfinite(self._now):
            self._now = 0.0
        if math.isfinite(before) and self._now > before:
            self.interval = self._now - before
        return self._now

    def _confirm_hits(self) -> int:
        """Matches that confirm a track: seen for ``confirm_s`` at the current rate, at least 2."""
        if self.interval is None:
            return 2
        ratio = self.confirm_s / self.interval  # inf for a sub-normal interval: capped below
        runs = math.ceil(ratio - 1e-6) if ratio < HISTORY else HISTORY
        return min(max(2, 1 + runs), HISTORY * 2 // 3)

    def _counted(self) -> Iterable[Track]:
        confirmed = [track for track in self.tracks if track.confirmed]
        return (track for track in confirmed if not self._duplicate(track, confirmed))

    def _duplicate(self, held: Track, confirmed: Sequence[Track]) -> bool:
        """A held (missed) track near a confirmed one seen more recently (feet within
        ``max_jump`` box heights), one of them started near the other, and hardly ever seen
        together: one person with two tracks (a second box on them, a track lost and found
        again), not two. Two people who crossed started apart."""
        if held.misses == 0:
            return False
        need = self._confirm_hits()
        return any(
            (o.last_seen, o.id) > (held.last_seen, held.id)
            and (o.id in held.born_near or held.id in o.born_near)
            and held.together.get(o.id, 0) < need
            and self._similarity(held.box, o.box) > 0
            for o in confirmed
        )

    def _seen_together(self, live: Sequence[Track]) -> None:
        """Count the runs in which two near tracks were both matched: two people, not one."""
        for i, one in enumerate(live):
            for other in live[i + 1 :]:
                if self._similarity(one.box, other.box) > 0:
                    one.together[other.id] = one.together.get(other.id, 0) + 1
                    other.together[one.id] = other.together.get(one.id, 0) + 1

    def _match(self, boxes: Sequence[Box]) -> tuple[dict[int, Box], list[Box]]:
        """Greedy assignment, most similar pairs first: {track id: box}, unmatched boxes."""
        pairs = []
        for ti, track in enumerate(self.tracks):
            for bi, box in enumerate(boxes):
                similarity = self._similarity(track.box, box)
                if similarity > 0:
                    pairs.append((similarity, ti, bi))
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        matched: dict[int, Box] = {}
        used: set[int] = set()
        for _, ti, bi in pairs:
            track = self.tracks[ti]
            if track.id in matched or bi in used:
                continue
            matched[track.id] = boxes[bi]
            used.add(bi)
        return matched, [box for bi, box in enumerate(boxes) if bi not in used]

    def _similarity(self, old: Box, new: Box) -> float:
        """IoU when it is at least match_iou; else a small value falling with the distance of
        the feet, for boxes within max_jump box heights; else 0 (not the same person)."""
        iou = old.iou(new)
        if iou >= self.match_iou:
            return 1.0 + iou
        (x1, y1), (x2, y2) = old.feet(), new.feet()
        reach = self.max_jump * max(old.h, new.h, 1e-6)
        distance = math.hypot(x2 - x1, y2 - y1)
        return 1.0 - distance / reach if distance < reach else 0.0

    def _start(self, box: Box, now: float) -> None:
        near = frozenset(tr.id for tr in self.tracks if self._similarity(tr.box, box) > 0)
        self.tracks.append(Track(self._next_id, box, now, now, born_near=near))
        self._next_id += 1

    def _expire(self, now: float) -> None:
        kept = [track for track in self.tracks if self._alive(track, now)]
        if len(kept) > self.max_tracks:
            kept.sort(key=lambda tr: (tr.confirmed, tr.last_seen), reverse=True)
            logger.warning("more than %d tracks: dropping the stalest", self.max_tracks)
            kept = kept[: self.max_tracks]
        self.tracks = kept
        ids = {track.id for track in kept}
        for track in kept:
            track.together = {k: n for k, n in track.together.items() if k in ids}

    def _alive(self, track: Track, now: float) -> bool:
        if track.misses == 0:
            return True
        if not track.confirmed:
            need = self._confirm_hits()
            return track.misses <= confirm_window(need) - need
        unseen = now - track.last_seen
        if self._at_edge(track.box):
            return unseen < EDGE_HOLD_S - (self.interval or 0.0) / 2
        return track.misses < self.min_misses or unseen <= self.hold_s

    def _at_edge(self, box: Box) -> bool:
        """Whether the box reaches the left, right or bottom side of the frame: a person last
        seen there and then missed has most likely walked out, not been hidden."""
        margin = self.edge_margin
        return box.x <= margin or box.x2 >= 1 - margin or box.y2 >= 1 - margin

    def _update_zones(self, now: float) -> None:
        """Zone entry times, from each track's last known feet."""
        for track in self.tracks:
            feet = track.box.feet()
            inside = {zone.name for zone in self.zones if in_zone(feet, zone)}
            for name in list(track.entered):
                if name not in inside:
                    del track.entered[name]
            for name in inside:
                track.entered.setdefault(name, now)
