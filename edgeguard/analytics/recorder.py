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

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.container import InputContainer

from edgeguard.analytics.clip_packets import (
    PacketRing,
    RawPacket,
    Segment,
    Source,
    StoredPacket,
    TimestampFixer,
)
from edgeguard.analytics.clip_plan import (
    MP4_CODECS,
    describe_error,
    make_template,
    plan_clip,
    window_notes,
    write_plan,
)
from edgeguard.cameras.config import redact_url
from edgeguard.cameras.rtsp import TransportChoice

logger = logging.getLogger(__name__)

KEEP_MARGIN_S = 1.0  # the ring keeps this much more than pre_s (timing noise)
SETTLE_S = 1.0  # a clip is written this long after its window ends (network latency)
CATCH_UP_S = 15.0  # a connected reader that lags (a busy machine) is waited for this much longer
JUMP_S = 5.0  # a timestamp jump larger than this inside one connection starts a new segment
BACKOFF_START_S = 0.5
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
        due = [r for r in self._pending if stopping or self._is_due(r, now)]
        self._pending = [r for r in self._pending if r not in due]
        return due

    def _is_due(self, request: ClipRequest, now: float) -> bool:
        """Once the window has ended and settled, and the ring holds the window's end: a
        reader that is still connected but behind (the whole machine busy) is waited for up
        to CATCH_UP_S, so that the clip is not cut short by the lag."""
        if now < request.end + SETTLE_S:
            return False
        newest = self._ring.newest_wall()
        caught_up = newest is not None and newest >= request.end
        return caught_up or not self._connected or now >= request.end + SETTLE_S + CATCH_UP_S

    def _wait_s(self) -> float:
        if not self._pending:
            return 1.0
        soonest = min(r.end for r in self._pending) + SETTLE_S - self.clock()
        return min(1.0, max(0.2, soonest))

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
