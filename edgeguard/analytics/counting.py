"""People per zone: a person is in a zone when the bottom-centre of its box (where it stands) is
inside the zone's polygon.

``count_in_zones`` counts one frame's detections. ``ZoneCounter`` smooths the counts over time
with a small IoU tracker, so that a person the detector misses for a moment is not lost and one
false detection is not counted:

- a track is **confirmed** once it has been matched in 2 of its last 3 detector runs;
- a confirmed track **persists** while unseen for ``hold_s`` seconds (and at least
  ``min_misses`` detector runs), at its last known place, unless it was last seen at the left,
  right or bottom side of the frame (within ``edge_margin``): then it has walked out and goes at
  its first miss;
- the smoothed count of a zone is the number of confirmed tracks standing in it;
- each track remembers when it entered each zone, which gives the dwell time of the person who
  has stayed longest (``dwell``), for the loitering rule.

Memory is bounded: unconfirmed tracks go after two misses, confirmed ones after ``hold_s``, and
never more than ``max_tracks`` are kept."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edgeguard.analytics.detector import Detection
from edgeguard.analytics.geometry import Box, Point, Polygon, point_in_polygon

logger = logging.getLogger(__name__)

CONFIRM_HITS = 2  # matched in this many ...
CONFIRM_WINDOW = 3  # ... of the last this many detector runs


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
    hits: deque[bool] = field(default_factory=lambda: deque([True], maxlen=CONFIRM_WINDOW))
    confirmed: bool = False
    misses: int = 0
    entered: dict[str, float] = field(default_factory=dict)  # zone -> time the feet got in

    def hit(self, box: Box, t: float) -> None:
        self.box, self.last_seen, self.misses = box, t, 0
        self.hits.append(True)
        self.confirmed = self.confirmed or sum(self.hits) >= CONFIRM_HITS

    def miss(self) -> None:
        self.misses += 1
        self.hits.append(False)


class ZoneCounter:
    """Smoothed people counts per zone over time; feed it every detector run.

    ``hold_s``: a confirmed person unseen for up to this long (and fewer than ``min_misses``
    runs) is still counted at its last place. ``match_iou``: the overlap that makes a detection
    the same person as a track; a detection overlapping no track still continues the nearest
    one whose box is within ``max_jump`` box heights (people walk between two runs).
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
    ) -> None:
        if not hold_s >= 0 or not math.isfinite(hold_s):
            raise ValueError(f"hold_s must be a finite number >= 0, got {hold_s}")
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
        self.tracks: list[Track] = []
        self._next_id = 1
        self._now = -math.inf

    def update(self, detections: Sequence[Detection], t: float) -> dict[str, int]:
        """Take one detector run's detections at time ``t`` (seconds, any origin; a time
        earlier than the last is taken as the last); the smoothed counts per zone."""
        now = self._advance(t)
        matched, fresh = self._match([d.box for d in detections])
        for track in self.tracks:
            box = matched.get(track.id)
            if box is None:
                track.miss()
            else:
                track.hit(box, now)
        for box in fresh:
            self._start(box, now)
        self._expire(now)
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

    # --- internals ----------------------------------------------------------------------------
    def _advance(self, t: float) -> float:
        if math.isfinite(t):
            self._now = max(self._now, float(t))
        elif not math.isfinite(self._now):
            self._now = 0.0
        return self._now

    def _counted(self) -> Iterable[Track]:
        return (track for track in self.tracks if track.confirmed)

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
        self.tracks.append(Track(self._next_id, box, now, now))
        self._next_id += 1

    def _expire(self, now: float) -> None:
        kept = [track for track in self.tracks if self._alive(track, now)]
        if len(kept) > self.max_tracks:
            kept.sort(key=lambda tr: (tr.confirmed, tr.last_seen), reverse=True)
            logger.warning("more than %d tracks: dropping the stalest", self.max_tracks)
            kept = kept[: self.max_tracks]
        self.tracks = kept

    def _alive(self, track: Track, now: float) -> bool:
        if not track.confirmed:
            return track.misses < CONFIRM_WINDOW - CONFIRM_HITS + 1
        if self._at_edge(track.box):
            return track.misses == 0
        return track.misses < self.min_misses or now - track.last_seen <= self.hold_s

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
