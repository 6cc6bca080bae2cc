"""The recorder's packets: timestamps completed as they arrive (pure), the stream's sources and
segments (one per connection or timestamp jump), and the ring of whole GOPs that holds the
last seconds of a camera (docs/evidence-clips.md)."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction

from av.container import InputContainer
from av.video.stream import VideoStream

MAX_PENDING = 64  # packets held while a fresh stream has not given a decode timestamp yet


# --- timestamps (pure) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawPacket:
    """A demuxed packet as it came: timestamps may be missing."""

    data: bytes
    pts: int | None
    dts: int | None
    key: bool
    duration: int
    arrival: float


@dataclass(frozen=True, slots=True)
class StoredPacket:
    """A packet in the ring: timestamps complete, dts strictly increasing in its segment."""

    data: bytes
    pts: int
    dts: int
    key: bool
    duration: int


class TimestampFixer:
    """Completes the timestamps of one continuous stretch of a stream (time base ticks).

    - dts missing at the start (FFmpeg's RTSP probe burst): the packets are held until the
      first dts arrives, then given dts backwards one frame apart; if none comes within
      MAX_PENDING packets, dts are counted from the first pts.
    - dts missing later: previous dts + frame duration. dts not increasing: previous + 1.
    - pts missing: dts + the reorder delay (one frame when the stream has B-frames); pts is
      never below dts.
    - a jump of more than ``jump`` ticks either way is a discontinuity: ``push`` returns
      ``None`` and the caller starts a new segment with a new fixer.
    """

    def __init__(self, frame_ticks: int, reorder_ticks: int, jump_ticks: int) -> None:
        self.frame = max(1, frame_ticks)
        self.reorder = max(0, reorder_ticks)
        self.jump = max(self.frame, jump_ticks)
        self.last_dts: int | None = None
        self.pending: list[RawPacket] = []

    def push(self, raw: RawPacket) -> list[tuple[RawPacket, int, int]] | None:
        """The packets now complete as (packet, pts, dts), or None on a discontinuity."""
        if self.last_dts is None:
            return self._push_first(raw)
        dts = self.last_dts + raw_duration(raw, self.frame) if raw.dts is None else raw.dts
        if abs(dts - self.last_dts) > self.jump:
            return None
        return [self._complete(raw, dts)]

    def _push_first(self, raw: RawPacket) -> list[tuple[RawPacket, int, int]]:
        if raw.dts is None:
            self.pending.append(raw)
            if len(self.pending) < MAX_PENDING:
                return []
            held, self.pending = self.pending, []
            first = next((p.pts for p in held if p.pts is not None), 0) - self.reorder
            return [self._complete(p, first + i * self.frame) for i, p in enumerate(held)]
        held, self.pending = self.pending, []
        count = len(held)
        out = [self._complete(p, raw.dts - (count - i) * self.frame) for i, p in enumerate(held)]
        out.append(self._complete(raw, raw.dts))
        return out

    def _complete(self, raw: RawPacket, dts: int) -> tuple[RawPacket, int, int]:
        if self.last_dts is not None and dts <= self.last_dts:
            dts = self.last_dts + 1
        pts = dts + self.reorder if raw.pts is None else max(raw.pts, dts)
        self.last_dts = dts
        return raw, pts, dts


def raw_duration(raw: RawPacket, frame: int) -> int:
    return raw.duration if raw.duration > 0 else frame


# --- sources, segments and the ring -----------------------------------------------------------


@dataclass(eq=False)
class Source:
    """One connection's stream parameters and a template for output streams.

    The template is a private in-memory NUT file holding the stream's codec parameters and its
    first keyframe, opened for reading: it lives as long as packets refer to it, unlike the
    RTSP input, which is closed on every reconnect."""

    codec: str
    width: int
    height: int
    extradata: bytes
    time_base: Fraction
    template: InputContainer | None = None

    @property
    def params(self) -> tuple[str, int, int, bytes]:
        return (self.codec, self.width, self.height, self.extradata)

    def template_stream(self) -> VideoStream:
        assert self.template is not None
        return self.template.streams.video[0]


_segment_ids = itertools.count(1)


@dataclass(eq=False)
class Segment:
    """A continuous stretch of one connection. Wall time of a timestamp = anchor + ticks * tb,
    the anchor following the lower envelope of (arrival - stream time)."""

    source: Source
    anchor: float | None = None
    ident: int = field(default_factory=lambda: next(_segment_ids))

    def observe(self, arrival: float, dts: int) -> None:
        lateness = arrival - float(dts * self.source.time_base)
        if self.anchor is None or lateness < self.anchor:
            self.anchor = lateness
        else:  # follow a drifting camera clock slowly (1 ms per packet at most)
            self.anchor = min(lateness, self.anchor + 0.001)

    def wall(self, ticks: int) -> float:
        return (self.anchor or 0.0) + float(ticks * self.source.time_base)


@dataclass(eq=False)
class Gop:
    segment: Segment
    start_wall: float
    packets: list[StoredPacket] = field(default_factory=list)
    bytes: int = 0


class PacketRing:
    """Packets grouped by GOP; the front is always a keyframe. Not thread-safe (caller locks)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.gops: deque[Gop] = deque()
        self.bytes = 0
        self.packets = 0
        self.dropped_for_memory = 0

    def add(self, segment: Segment, packet: StoredPacket, wall: float) -> bool:
        """Append; a packet that does not follow a keyframe of its segment is refused."""
        if packet.key:
            self.gops.append(Gop(segment, wall))
        elif not self.gops or self.gops[-1].segment is not segment:
            return False
        gop = self.gops[-1]
        gop.packets.append(packet)
        gop.bytes += len(packet.data)
        self.bytes += len(packet.data)
        self.packets += 1
        while self.bytes > self.max_bytes and self.gops:
            self._pop()
            self.dropped_for_memory += 1
        return True

    def trim(self, horizon: float) -> None:
        """Drop whole GOPs from the front while the next GOP still starts at or before
        ``horizon``: the first kept keyframe is the last one at or before it."""
        while len(self.gops) >= 2 and self.gops[1].start_wall <= horizon:
            self._pop()

    def _pop(self) -> None:
        gop = self.gops.popleft()
        self.bytes -= gop.bytes
        self.packets -= len(gop.packets)

    def select(self, start: float, end: float) -> list[tuple[Segment, StoredPacket]]:
        """From the last keyframe at or before ``start`` (else the first one after it) to the
        last packet whose dts is at or before ``end``, in decode order."""
        gops = list(self.gops)
        first = 0
        for i, gop in enumerate(gops):
            if gop.segment.wall(gop.packets[0].dts) <= start:
                first = i
        chosen: list[tuple[Segment, StoredPacket]] = []
        for gop in gops[first:]:
            if gop.segment.wall(gop.packets[0].dts) > end:
                break
            chosen.extend((gop.segment, p) for p in gop.packets if gop.segment.wall(p.dts) <= end)
        return chosen

    def newest_wall(self) -> float | None:
        if not self.gops:
            return None
        last = self.gops[-1]
        return last.segment.wall(last.packets[-1].dts)

    def span_s(self) -> float:
        if not self.gops:
            return 0.0
        first, last = self.gops[0], self.gops[-1]
        return last.segment.wall(last.packets[-1].dts) - first.segment.wall(first.packets[0].dts)
