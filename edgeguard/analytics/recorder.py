"""Evidence clips: the last seconds of a camera's stream kept as packets, written as MP4 on alarm.

Runs as threads inside a camera's capture process (one recorder per camera). A reader thread
opens the stream with PyAV (RTSP over TCP) and demuxes it without decoding into a ring of
packets grouped by GOP (the ring always starts at a keyframe; whole GOPs are dropped from the
front) that covers at least ``pre_s`` seconds, bounded by ``max_buffer_bytes``. A clip request
is written by a writer thread once its post window has passed: the packets from the last
keyframe at or before the window's start to its end are stream-copied (no re-encoding) into an
MP4 (faststart) through a temp file, fsynced and renamed into place. Design and figures:
docs/evidence-clips.md.
"""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.container import InputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from edgeguard.cameras.config import redact_url
from edgeguard.cameras.rtsp import TransportChoice
from edgeguard.filemodes import DATA_FILE, fsync_folder, make_dir

logger = logging.getLogger(__name__)

KEEP_MARGIN_S = 1.0  # the ring keeps this much more than pre_s (timing noise)
SETTLE_S = 1.0  # a clip is written this long after its window ends (network latency)
JUMP_S = 5.0  # a timestamp jump larger than this inside one connection starts a new segment
MAX_PENDING = 64  # packets held while a fresh stream has not given a decode timestamp yet
BACKOFF_START_S = 0.5
MP4_CODECS = frozenset({"h264", "hevc"})
USERINFO = re.compile(r"(?<=://)[^/@\s]*@")

ClipDone = Callable[["ClipResult | None", "str | None"], None]


@dataclass(frozen=True)
class RecorderSettings:
    url: str
    pre_s: float = 30.0
    post_s: float = 10.0
    max_buffer_bytes: int = 64 << 20
    open_timeout_s: float = 5.0
    read_timeout_s: float = 2.0
    backoff_max_s: float = 10.0
    rtsp_transport: str = "tcp"  # edgeguard.cameras.rtsp.RTSP_TRANSPORTS


@dataclass(frozen=True)
class ClipResult:
    path: Path  # the clip as written (.mkv instead of .mp4 when MP4 cannot carry the codec)
    start_wall: float  # wall time of the first frame shown
    end_wall: float  # wall time of the end of the last frame
    duration_s: float  # media duration (end_wall - start_wall)
    bytes: int
    sha256: str
    codec: str
    width: int
    height: int
    gaps: int  # stream interruptions inside the clip (reconnects, timestamp jumps)
    packets: int = 0
    container: str = "mp4"
    notes: tuple[str, ...] = ()  # what differs from the request: late start, early end, ...


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

    def span_s(self) -> float:
        if not self.gops:
            return 0.0
        first, last = self.gops[0], self.gops[-1]
        return last.segment.wall(last.packets[-1].dts) - first.segment.wall(first.packets[0].dts)


# --- clip plan (pure apart from the Source template) ------------------------------------------


@dataclass(frozen=True)
class OutPacket:
    data: bytes
    pts: int
    dts: int
    duration: int
    key: bool


@dataclass(frozen=True)
class ClipPlan:
    source: Source
    time_base: Fraction
    packets: list[OutPacket]
    start_wall: float
    end_wall: float
    gaps: int
    notes: tuple[str, ...]


def rescale(ticks: int, src: Fraction, dst: Fraction) -> int:
    return ticks if src == dst else round(ticks * src / dst)


def plan_clip(chosen: Sequence[tuple[Segment, StoredPacket]], alarm_wall: float) -> ClipPlan | None:
    """Timestamps rebased to the clip: the first keyframe is shown at 0; each later segment
    (after a reconnect) is placed at its wall time, so a gap in the stream is a gap in the clip
    (the last frame stays on screen). Segments whose codec parameters differ from those of the
    segment at the alarm time are left out (MP4 has one set per track)."""
    if not chosen:
        return None
    main = _alarm_segment(chosen, alarm_wall)
    notes: list[str] = []
    segments = _split_segments(chosen)
    gaps = len(segments) - 1
    kept = [s for s in segments if s[0][0].source.params == main.source.params]
    if len(kept) < len(segments):
        notes.append(f"{len(segments) - len(kept)} segment(s) with other codec parameters left out")
    tb = main.source.time_base
    first_seg, first_pkt = kept[0][0]
    wall0 = first_seg.wall(first_pkt.pts)
    packets: list[OutPacket] = []
    last_dts: int | None = None
    end_wall = wall0
    for run in kept:
        seg = run[0][0]
        stb = seg.source.time_base
        base_dts = run[0][1].dts
        offset = round((seg.wall(base_dts) - wall0) / tb)
        if last_dts is not None:
            offset = resume_on_frame_grid(offset, last_dts, packets[-1].duration)
        for _, p in run:
            dts = offset + rescale(p.dts - base_dts, stb, tb)
            if last_dts is not None and dts <= last_dts:
                dts = last_dts + 1
            pts = dts + rescale(p.pts - p.dts, stb, tb)
            duration = max(1, rescale(p.duration, stb, tb))
            packets.append(OutPacket(p.data, pts, dts, duration, p.key))
            last_dts = dts
            end_wall = max(end_wall, wall0 + float((pts + duration) * tb))
    return ClipPlan(main.source, tb, packets, wall0, end_wall, gaps, tuple(notes))


def resume_on_frame_grid(offset: int, last_dts: int, frame: int) -> int:
    """The first dts of a segment after a gap, a whole number of frames after the last one:
    a gap of 29.3 frames makes FFmpeg guess the clip's rate as 240 fps (its r_frame_rate
    fits every dts step), which players and ``ffmpeg -i clip`` then trip over. Rounding the
    gap to whole frames moves the resumed video by at most half a frame."""
    frames = max(1, round((offset - last_dts) / frame))
    return last_dts + frames * frame


def _alarm_segment(chosen: Sequence[tuple[Segment, StoredPacket]], alarm_wall: float) -> Segment:
    best = chosen[0][0]
    for seg, p in chosen:
        if seg.wall(p.dts) <= alarm_wall:
            best = seg
    return best


def _split_segments(
    chosen: Sequence[tuple[Segment, StoredPacket]],
) -> list[list[tuple[Segment, StoredPacket]]]:
    runs: list[list[tuple[Segment, StoredPacket]]] = []
    for item in chosen:
        if runs and runs[-1][0][0] is item[0]:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def window_notes(plan: ClipPlan, start: float, end: float, tolerance: float) -> list[str]:
    notes = []
    if plan.start_wall > start + tolerance:
        notes.append(f"starts {plan.start_wall - start:.1f} s after the requested start")
    if plan.end_wall < end - tolerance:
        notes.append(f"ends {end - plan.end_wall:.1f} s before the requested end")
    if plan.gaps:
        notes.append(f"{plan.gaps} stream interruption(s) inside the clip")
    return notes


# --- writing ----------------------------------------------------------------------------------


def mux(plan: ClipPlan, target: Path, fmt: str) -> None:
    options = {"movflags": "+faststart"} if fmt == "mp4" else {}
    with av.open(str(target), "w", format=fmt, options=options) as out:
        # opaque: the template's own (decoder) codec, so no encoder has to exist in this build
        stream = out.add_stream_from_template(plan.source.template_stream(), opaque=True)
        stream.time_base = plan.time_base
        for op in plan.packets:
            packet = Packet(op.data)
            packet.pts = op.pts
            packet.dts = op.dts
            packet.duration = op.duration
            packet.time_base = plan.time_base
            packet.is_keyframe = op.key
            packet.stream = stream
            out.mux(packet)


def write_plan(plan: ClipPlan, path: Path) -> tuple[Path, str, int, str]:
    """Mux into a temp file beside ``path``, fsync, rename, fsync the folder.
    Returns (final path, container, bytes, sha256). MP4 first; Matroska when MP4 refuses the
    codec (the path then ends in .mkv)."""
    make_dir(path.parent)
    attempts = [("mp4", path)]
    if plan.source.codec not in MP4_CODECS:
        attempts.append(("matroska", path.with_suffix(".mkv")))
    for fmt, target in attempts:
        partial = target.with_name(f".{target.name}.part")
        try:
            mux(plan, partial, fmt)
        except ValueError:  # "format does not support codec"
            partial.unlink(missing_ok=True)
            if target is attempts[-1][1]:
                raise
            continue
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.chmod(DATA_FILE)  # PyAV creates it through the umask
        size, digest = _fsync_and_hash(partial)
        partial.replace(target)
        fsync_folder(target.parent)
        return target, fmt, size, digest
    raise AssertionError("unreachable")


def _fsync_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb+") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
        os.fsync(f.fileno())
    return size, digest.hexdigest()


def describe_error(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "disk full"
    if code == errno.EFBIG:
        return "file too large"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write the clip: {os.strerror(code)}"
    return f"cannot write the clip: {exc}"


def make_template(stream: VideoStream, key: RawPacket) -> InputContainer:
    """A private NUT file in memory with the stream's parameters and one keyframe, re-opened
    for reading (a header alone is not enough for the NUT demuxer)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="nut") as out:
        tstream = out.add_stream_from_template(stream)
        packet = Packet(key.data)
        packet.pts = packet.dts = 0
        packet.time_base = stream.time_base or Fraction(1, 90000)
        packet.is_keyframe = True
        packet.stream = tstream
        out.mux(packet)
    buffer.seek(0)
    return av.open(buffer, "r", format="nut")


# --- the recorder -----------------------------------------------------------------------------


@dataclass(eq=False)
class ClipRequest:
    alarm_wall: float
    start: float
    end: float
    path: Path
    done: ClipDone


class ClipRecorder:
    """One camera's recorder: a reader thread (demux into the ring, reconnect with back-off)
    and a writer thread (clips, and the ``done`` callbacks). Neither ever raises."""

    def __init__(
        self, settings: RecorderSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._safe_url = redact_url(settings.url)
        self._transport = TransportChoice(settings.rtsp_transport)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._ring = PacketRing(settings.max_buffer_bytes)
        self._pending: list[ClipRequest] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connected = False
        self._sessions = 0
        self._last_error: str | None = None
        self._source: Source | None = None
        self._reader_tid: int | None = None
        self._writer_tid: int | None = None
        self._clips_written = 0

    # public ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        for name, target in (("reader", self._reader_loop), ("writer", self._writer_loop)):
            thread = threading.Thread(target=target, name=f"clip-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop reading; clips still waiting are written now with what was received."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        limit = timeout_s if timeout_s is not None else self.settings.read_timeout_s + 10.0
        deadline = time.monotonic() + limit
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("clip recorder thread %s did not stop in time", thread.name)
        self._threads = []

    def request_clip(
        self,
        alarm_wall: float,
        path: Path,
        *,
        pre_s: float | None = None,
        post_s: float | None = None,
        done: ClipDone,
    ) -> None:
        pre = self.settings.pre_s if pre_s is None else max(0.0, pre_s)
        post = self.settings.post_s if post_s is None else max(0.0, post_s)
        request = ClipRequest(alarm_wall, alarm_wall - pre, alarm_wall + post, path, done)
        if self._stopping.is_set():  # no writer thread any more: answer at once
            done(None, "recorder stopped")
            return
        with self._wake:
            self._pending.append(request)
            self._wake.notify_all()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            source = self._source
            return {
                "buffered_s": round(self._ring.span_s(), 3),
                "buffered_bytes": self._ring.bytes,
                "buffered_packets": self._ring.packets,
                "buffered_gops": len(self._ring.gops),
                "connected": self._connected,
                "reconnects": max(0, self._sessions - 1),
                "last_error": self._last_error,
                "pending_clips": len(self._pending),
                "clips_written": self._clips_written,
                "dropped_for_memory": self._ring.dropped_for_memory,
                "codec": source.codec if source else None,
                "width": source.width if source else None,
                "height": source.height if source else None,
                "reader_tid": self._reader_tid,
                "writer_tid": self._writer_tid,
            }

    # reader ------------------------------------------------------------------------------------

    def _reader_loop(self) -> None:
        self._reader_tid = threading.get_native_id()
        backoff = BACKOFF_START_S
        failures = 0
        while not self._stopping.is_set():
            try:
                received = self._session()
                if not self._stopping.is_set():
                    self._note_error(EOFError("the stream ended"), failures)
            except Exception as exc:  # noqa: BLE001 - the thread must never die
                received = False
                self._note_error(exc, failures)
            finally:
                with self._lock:
                    self._connected = False
            if self._stopping.is_set():
                break
            if not received:
                self._transport.failed()
            failures = 0 if received else failures + 1
            backoff = BACKOFF_START_S if received else min(backoff * 2, self.settings.backoff_max_s)
            self._stopping.wait(BACKOFF_START_S if received else backoff)

    def _note_error(self, exc: BaseException, failures: int) -> None:
        text = self._scrub(f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._last_error = text
        log = logger.warning if failures == 0 else logger.debug
        log("clip recorder for %s: stream lost or unavailable: %s", self._safe_url, text)

    def _scrub(self, text: str) -> str:
        return USERINFO.sub("***@", text.replace(self.settings.url, self._safe_url))

    def _session(self) -> bool:
        """One connection: open, demux until it fails. True if packets were kept."""
        s = self.settings
        options = {
            "rtsp_transport": self._transport.current,
            "timeout": str(int(s.read_timeout_s * 1_000_000)),
            "analyzeduration": "500000",
            "probesize": "65536",
        }
        container = av.open(s.url, options=options, timeout=(s.open_timeout_s, s.read_timeout_s))
        try:
            return self._demux(container)
        finally:
            container.close()

    def _demux(self, container: InputContainer) -> bool:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        tb = stream.time_base or Fraction(1, 90000)
        rate = stream.guessed_rate or stream.average_rate or Fraction(25)
        frame = max(1, round(1 / (rate * tb)))
        source = Source(ctx.name, ctx.width, ctx.height, bytes(ctx.extradata or b""), tb)
        reorder = frame if ctx.has_b_frames else 0
        fixer = TimestampFixer(frame, reorder, round(JUMP_S / tb))
        segment = Segment(source)
        with self._lock:
            self._connected = True
            self._sessions += 1
            self._source = source
            self._last_error = None
        logger.info(
            "clip recorder connected to %s (%s %dx%d)",
            self._safe_url,
            source.codec,
            source.width,
            source.height,
        )
        kept = False
        for packet in container.demux(stream):
            if self._stopping.is_set():
                break
            if packet.size == 0:
                continue
            raw = RawPacket(
                bytes(packet),
                packet.pts,
                packet.dts,
                packet.is_keyframe,
                packet.duration or 0,
                self.clock(),
            )
            if source.template is None:
                if not raw.key:
                    continue
                source.template = make_template(stream, raw)
            done = fixer.push(raw)
            if done is None:  # timestamp jump: a new segment from the next keyframe
                fixer = TimestampFixer(frame, reorder, round(JUMP_S / tb))
                segment = Segment(source)
                done = fixer.push(raw) or []
            kept = self._store(segment, done) or kept
        return kept

    def _store(self, segment: Segment, done: Iterable[tuple[RawPacket, int, int]]) -> bool:
        kept = False
        with self._lock:
            for raw, pts, dts in done:
                segment.observe(raw.arrival, dts)
                stored = StoredPacket(raw.data, pts, dts, raw.key, raw.duration or 1)
                kept = self._ring.add(segment, stored, segment.wall(dts)) or kept
            self._ring.trim(self._horizon())
        return kept

    def _horizon(self) -> float:
        horizon = self.clock() - self.settings.pre_s - KEEP_MARGIN_S
        for request in self._pending:
            horizon = min(horizon, request.start - KEEP_MARGIN_S)
        return horizon

    # writer ------------------------------------------------------------------------------------

    def _writer_loop(self) -> None:
        self._writer_tid = threading.get_native_id()
        while True:
            with self._wake:
                due = self._take_due()
                if not due:
                    if self._stopping.is_set():
                        return
                    self._wake.wait(self._wait_s())
                    continue
            for request in due:
                self._complete(request)

    def _take_due(self) -> list[ClipRequest]:
        now = self.clock()
        stopping = self._stopping.is_set()
        due = [r for r in self._pending if stopping or now >= r.end + SETTLE_S]
        self._pending = [r for r in self._pending if r not in due]
        return due

    def _wait_s(self) -> float:
        if not self._pending:
            return 1.0
        soonest = min(r.end for r in self._pending) + SETTLE_S - self.clock()
        return min(1.0, max(0.02, soonest))

    def _complete(self, request: ClipRequest) -> None:
        try:
            result, error = self._write(request)
        except Exception as exc:
            logger.exception("clip %s failed", request.path)
            result, error = None, describe_error(exc)
        try:
            request.done(result, error)
        except Exception:
            logger.exception("clip callback for %s failed", request.path)

    def _write(self, request: ClipRequest) -> tuple[ClipResult | None, str | None]:
        started = time.monotonic()
        with self._lock:
            chosen = self._ring.select(request.start, request.end)
        plan = plan_clip(chosen, request.alarm_wall)
        if plan is None:
            logger.warning("no clip for %s: stream offline for the whole window", request.path)
            return None, "stream offline for the whole window"
        try:
            path, fmt, size, digest = write_plan(plan, request.path)
        except (OSError, av.FFmpegError, ValueError) as exc:
            logger.error("clip %s not written: %s", request.path, self._scrub(str(exc)))
            return None, describe_error(exc)
        notes = list(plan.notes) + window_notes(plan, request.start, request.end, 1.5)
        if plan.source.codec not in MP4_CODECS:
            notes.append(f"codec {plan.source.codec} stored as sent (no re-encoding) in {fmt}")
        if self._stopping.is_set() and self.clock() < request.end:
            notes.append("recorder stopped before the window ended")
        result = ClipResult(
            path,
            plan.start_wall,
            plan.end_wall,
            plan.end_wall - plan.start_wall,
            size,
            digest,
            plan.source.codec,
            plan.source.width,
            plan.source.height,
            plan.gaps,
            len(plan.packets),
            fmt,
            tuple(notes),
        )
        with self._lock:
            self._clips_written += 1
        logger.info(
            "clip %s: %.1f s, %d bytes, %d gap(s), written in %.3f s",
            path,
            result.duration_s,
            size,
            plan.gaps,
            time.monotonic() - started,
        )
        return result, None
