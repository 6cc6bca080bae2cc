"""The capture process of one camera: ``python -m edgeguard.cameras.capture`` (started and
supervised by edgeguard.cameras.supervisor; the daemon process itself never imports cv2).

It reads the stream with OpenCV's FFmpeg backend (RTSP over the camera's `rtsp_transport`,
TCP by default; short probe), decodes every frame (H.264 needs it) but converts only those
due at the analysis rate, keeps the latest for snapshots and hands it to in-process
consumers (analysis) without a copy. A frame watchdog notices a stream that stalls while its
connection stays open; the capture re-opens with back-off. The parent talks to it over
stdin/stdout (edgeguard.cameras.wire)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Before cv2 is imported. FFmpeg's capture options are set before each open (Capture._open).
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2
import numpy as np
import numpy.typing as npt

from edgeguard.cameras.rtsp import TransportChoice
from edgeguard.cameras.wire import CaptureSettings, ChildChannel, child_start

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]
FrameConsumer = Callable[[Frame, float], None]
STATS_INTERVAL_S = 0.5
STALL_FRACTION = 0.9  # a read this close to the read timeout means the stream stalled
HOUR_S = 3600.0
CAPTURE_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


def capture_options(transport: str) -> str:
    """OpenCV's FFmpeg options (read from the environment at each open): the RTSP transport
    and a short probe, so that opening takes ~0.5 s."""
    return f"rtsp_transport;{transport}|analyzeduration;500000|probesize;65536"


@dataclass
class CaptureStats:
    frames_in: int = 0
    frames_out: int = 0
    opened: bool = False
    width: int | None = None
    height: int | None = None
    last_frame_mono: float | None = None
    last_error: str | None = None
    open_seconds: float | None = None
    reconnects: deque[float] = field(default_factory=deque)

    def reconnects_last_hour(self, now: float) -> int:
        while self.reconnects and now - self.reconnects[0] > HOUR_S:
            self.reconnects.popleft()
        return len(self.reconnects)


class Capture:
    """The read loop. ``consumers`` get each kept frame (BGR, native size) and its wall time."""

    def __init__(self, settings: CaptureSettings, channel: ChildChannel) -> None:
        self.settings = settings
        self.channel = channel
        self.stop = threading.Event()
        self.stats = CaptureStats()
        self.consumers: list[FrameConsumer] = []
        self._latest: tuple[Frame, float, float] | None = None  # frame, wall time, monotonic
        self._lock = threading.Lock()
        self._grab_started: float | None = None
        self._ever_opened = False
        self.analysis: Any = None  # capture_extras.AnalysisWorker, when configured
        self.clips: Any = None  # capture_extras.Clips, when configured
        self.transport = TransportChoice(settings.rtsp_transport)

    # --- the read loop ----------------------------------------------------------------------
    def run(self) -> None:
        backoff = self.settings.backoff_min
        while not self.stop.is_set():
            cap = self._open()
            if cap is None:
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max)
                continue
            backoff = self.settings.backoff_min
            try:
                self._read_until_failure(cap)
            finally:
                cap.release()
                self.stats.opened = False
            if not self.stop.is_set():
                self.stop.wait(self.settings.backoff_min)

    def _open(self) -> Any:
        started = time.monotonic()
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.settings.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.settings.read_timeout_s * 1000),
        ]
        # one camera per process, so the process-wide variable is this camera's own
        os.environ[CAPTURE_OPTIONS] = capture_options(self.transport.current)
        cap = cv2.VideoCapture(self.settings.url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            took = time.monotonic() - started
            self._lost(
                f"could not open the stream (RTSP over {self.transport.current}) in {took:.1f} s"
                f" (open timeout {self.settings.open_timeout_s:g} s)"
            )
            self.transport.failed()
            return None
        self.stats.open_seconds = round(time.monotonic() - started, 3)
        self.stats.opened = True
        self.stats.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
        self.stats.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
        if self._ever_opened:
            self.stats.reconnects.append(time.monotonic())
        self._ever_opened = True
        logger.info(
            "camera %s: stream open in %.2f s (%sx%s)",
            self.settings.name,
            self.stats.open_seconds,
            self.stats.width,
            self.stats.height,
        )
        return cap

    def _read_until_failure(self, cap: Any) -> None:
        period = 1.0 / self.settings.analysis_fps
        next_due = time.monotonic()
        while not self.stop.is_set():
            started = self._grab_started = time.monotonic()
            grabbed = cap.grab()
            self._grab_started = None
            if not grabbed:
                self._lost("stream ended or read timed out")
                return
            now = time.monotonic()
            if now - started >= self.settings.read_timeout_s * STALL_FRACTION:
                # The stream stalled: FFmpeg's read timed out and now hands over the 2-3
                # frames its decoder held back. They are old; re-open instead of using them.
                self._lost(f"stream stalled ({now - started:.1f} s without data)")
                return
            self.stats.frames_in += 1
            if now + period * 0.25 < next_due:
                continue  # decoded (H.264 needs every frame) but not converted: not due yet
            next_due = max(next_due + period, now)
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                self._lost("frame could not be decoded")
                return
            self._keep(frame, now)

    def _keep(self, frame: Frame, mono: float) -> None:
        wall = time.time()
        with self._lock:
            self._latest = (frame, wall, mono)
        self.stats.frames_out += 1
        self.stats.last_frame_mono = mono
        self.stats.last_error = None
        for consumer in self.consumers:
            try:
                consumer(frame, wall)
            except Exception:
                logger.exception("camera %s: frame consumer failed", self.settings.name)

    def _lost(self, reason: str) -> None:
        if self.stats.last_error != reason:
            logger.warning("camera %s: %s", self.settings.name, reason)
        self.stats.last_error = reason

    # --- the frame watchdog (own thread) ----------------------------------------------------
    def grab_stuck_for(self, now: float) -> float:
        started = self._grab_started
        return 0.0 if started is None else now - started

    # --- snapshots (command thread) ---------------------------------------------------------
    def snapshot(self, quality: int, max_width: int, max_age_s: float) -> tuple[bytes, float]:
        with self._lock:
            latest = self._latest
        if latest is None:
            raise SnapshotError("no frame received yet")
        frame, wall, mono = latest
        if time.monotonic() - mono > max_age_s:
            raise SnapshotError(f"latest frame is {time.monotonic() - mono:.1f} s old")
        height, width = frame.shape[:2]
        image: Any = frame
        if width > max_width:
            size = (max_width, round(height * max_width / width))
            image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise SnapshotError("JPEG encoding failed")
        return jpeg.tobytes(), wall

    def stats_message(self, previous: tuple[int, int, float]) -> dict[str, Any]:
        now = time.monotonic()
        frames_in, frames_out, since = previous
        elapsed = max(now - since, 1e-6)
        last = self.stats.last_frame_mono
        return {
            "type": "stats",
            "opened": self.stats.opened,
            "width": self.stats.width,
            "height": self.stats.height,
            "fps_in": round((self.stats.frames_in - frames_in) / elapsed, 2),
            "fps_out": round((self.stats.frames_out - frames_out) / elapsed, 2),
            "frames_in": self.stats.frames_in,
            "frames_out": self.stats.frames_out,
            "last_frame_mono": last,
            "last_frame_age": None if last is None else round(now - last, 3),
            "reconnects_1h": self.stats.reconnects_last_hour(now),
            "open_seconds": self.stats.open_seconds,
            "rtsp_transport": self.transport.current,
            "last_error": self.stats.last_error,
        }


class SnapshotError(RuntimeError):
    """No snapshot can be made now."""


def _stats_loop(capture: Capture) -> None:
    previous = (0, 0, time.monotonic())
    while not capture.stop.wait(STATS_INTERVAL_S):
        message = capture.stats_message(previous)
        if capture.analysis is not None:
            message["analysis"] = capture.analysis.stats()
        if capture.clips is not None:
            message["recorder"] = capture.clips.recorder.stats()
        previous = (capture.stats.frames_in, capture.stats.frames_out, time.monotonic())
        capture.channel.send(message)
        stuck = capture.grab_stuck_for(time.monotonic())
        if stuck > capture.settings.stall_exit_s:
            # The FFmpeg read ignored its timeout: only a new process gets us out.
            logger.error(
                "camera %s: a read has been stuck for %.0f s; exiting to be restarted",
                capture.settings.name,
                stuck,
            )
            capture.channel.send({"type": "exit", "reason": "read stuck"})
            os._exit(3)


def _command_loop(capture: Capture) -> None:
    for command in capture.channel.commands():
        if command.get("cmd") == "stop":
            break
        if command.get("cmd") == "snapshot":
            _answer_snapshot(capture, command)
        elif command.get("cmd") == "clip":
            if capture.clips is None:
                capture.channel.send(
                    {"type": "clip", "id": command.get("id"), "error": "clips are off"}
                )
            else:
                capture.clips.request(command)
    capture.stop.set()  # stop asked, or stdin closed: the parent is gone


def _answer_snapshot(capture: Capture, command: dict[str, Any]) -> None:
    request_id = command.get("id")
    try:
        jpeg, wall = capture.snapshot(
            int(command.get("quality", 85)),
            int(command.get("max_width", 1920)),
            float(command.get("max_age", 2.0)),
        )
    except (SnapshotError, cv2.error) as exc:
        capture.channel.send({"type": "snapshot", "id": request_id, "error": str(exc)})
        return
    capture.channel.send(
        {"type": "snapshot", "id": request_id, "taken_at": wall, "size": len(jpeg)}, jpeg
    )


def _start_extras(capture: Capture) -> None:
    """Analysis and clip recording, when configured. A failure here (no model, a broken
    analysis config) is reported and leaves capture, snapshots and health running."""
    from edgeguard.cameras import capture_extras

    settings = capture.settings
    if settings.analytics is not None:
        try:
            worker = capture_extras.AnalysisWorker(settings, capture.channel)
        except Exception as exc:
            logger.exception("camera %s: analytics not started", settings.name)
            capture.channel.send({"type": "analytics_error", "error": str(exc)[:300]})
        else:
            capture.analysis = worker
            capture.consumers.append(worker.offer)
            threading.Thread(
                target=worker.run, args=(capture.stop,), daemon=True, name="analysis"
            ).start()
    if settings.clip_url is not None:
        try:
            capture.clips = capture_extras.Clips(settings, capture.channel)
        except Exception as exc:
            logger.exception("camera %s: clip recorder not started", settings.name)
            capture.channel.send({"type": "clips_error", "error": str(exc)[:300]})


def main() -> int:
    channel, raw = child_start("capture", "EDGEGUARD_CAPTURE_LOG")
    capture = Capture(CaptureSettings.from_dict(raw), channel)
    _start_extras(capture)
    threading.Thread(target=_command_loop, args=(capture,), daemon=True, name="commands").start()
    threading.Thread(target=_stats_loop, args=(capture,), daemon=True, name="stats").start()
    channel.send({"type": "hello", "pid": os.getpid()})
    try:
        capture.run()
    finally:
        if capture.clips is not None:
            capture.clips.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
