"""One camera seen from the daemon: its capture process, its health and its snapshots."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeguard.analytics.spec import pipeline_spec
from edgeguard.cameras.child import ChildProcess, ChildUnavailableError
from edgeguard.cameras.config import CameraConfig, redact_url, with_credentials
from edgeguard.cameras.wire import CaptureSettings, encode

logger = logging.getLogger(__name__)

CAPTURE_MODULE = "edgeguard.cameras.capture"
LIVE_FRAME_AGE_S = 2.0  # a frame at most this old means the stream is live
SNAPSHOT_MAX_AGE_S = 2.0


class SnapshotUnavailableError(RuntimeError):
    """No snapshot could be taken from this camera now."""


@dataclass(frozen=True)
class Snapshot:
    camera: str
    jpeg: bytes
    taken_at: float  # epoch seconds
    via: str  # "stream" or "onvif"


# Called with the camera name, its new state ("online" or "offline") and the detail.
HealthCallback = Callable[[str, str, dict[str, Any]], None]
# Called with the camera name and an analytics message from its capture process.
AnalyticsCallback = Callable[[str, dict[str, Any]], None]
CLIP_GRACE_S = 60.0  # beyond post_s: writing the file, a slow disk


class CameraRunner:
    def __init__(
        self,
        config: CameraConfig,
        on_health: HealthCallback,
        *,
        on_analytics: AnalyticsCallback | None = None,
        detector_socket: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        nice: int = 0,
    ) -> None:
        self.detector_socket = detector_socket
        self.nice = nice
        self.config = config
        self.on_health = on_health
        self.on_analytics = on_analytics
        self.clock = clock
        self.state = "starting"
        self.stats: dict[str, Any] = {}
        self.url: str | None = None
        self.child: ChildProcess | None = None
        self.started = clock()
        self.offline_since: float | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def start(self, url: str | None) -> None:
        """Start capturing ``url`` (None: wait for ONVIF to give the stream URI)."""
        self.started = self.clock()
        if url is not None:
            self.set_url(url)

    def set_url(self, url: str) -> None:
        if url == self.url and self.child is not None:
            return
        old = self.child
        self.url = url
        settings = self.capture_settings(url)
        self.child = ChildProcess(
            f"camera {self.name}",
            CAPTURE_MODULE,
            encode(settings.to_dict()),
            self._on_message,
            silence_s=10.0,
            nice=self.nice,
        )
        logger.info("camera %s: capturing %s", self.name, redact_url(url))
        self.child.start()
        if old is not None:
            asyncio.get_running_loop().create_task(old.stop())

    def capture_settings(self, url: str) -> CaptureSettings:
        config = self.config
        user, password = config.stream_credentials()
        analytics = config.analytics if config.analytics and config.analytics.enabled else None
        clips = config.clips
        return CaptureSettings(
            name=self.name,
            url=with_credentials(url, user, password),
            analysis_fps=config.analysis_fps,
            open_timeout_s=config.open_timeout,
            rtsp_transport=config.rtsp_transport,
            analytics=pipeline_spec(analytics).to_dict() if analytics else None,
            model=str(analytics.detection.model)
            if analytics and analytics.detection.model
            else None,
            min_score=analytics.detection.min_score if analytics else 0.5,
            detector_socket=self.detector_socket,
            clip_url=with_credentials(clips.stream_url or url, user, password)
            if clips.enabled
            else None,
            clip_pre_s=clips.pre_s or 0.1,
            clip_post_s=clips.post_s or 0.1,
        )

    async def stop(self) -> None:
        if self.child is not None:
            await self.child.stop()

    # --- messages from the capture process --------------------------------------------------
    def _on_message(self, message: dict[str, Any], blob: bytes | None) -> None:
        kind = message.get("type")
        if kind == "stats":
            self.stats = message
        elif kind in ("analytics", "analytics_error", "clips_error"):
            if kind != "analytics":
                logger.error("camera %s: %s", self.name, message.get("error"))
            if self.on_analytics is not None:
                self.on_analytics(self.name, message)

    # --- health -----------------------------------------------------------------------------
    def last_frame(self) -> float | None:
        """Monotonic time (system-wide clock) of the latest frame of the current child."""
        last = self.stats.get("last_frame_mono")
        child = self.child
        if isinstance(last, int | float) and child is not None and last >= child.started_at:
            return float(last)
        return None

    def frame_age(self, now: float) -> float:
        last = self.last_frame()
        return max(0.0, now - last) if last is not None else now - self.started

    def evaluate(self, now: float) -> None:
        age = self.frame_age(now)
        if self.state != "offline" and age >= self.config.offline_after:
            self.state = "offline"
            self.offline_since = now
            self.on_health(self.name, "offline", self.health_detail(now))
        elif self.state != "online" and self.last_frame() is not None and age < LIVE_FRAME_AGE_S:
            self.state = "online"
            self.offline_since = None
            self.on_health(self.name, "online", self.health_detail(now))

    def health_detail(self, now: float) -> dict[str, Any]:
        """What status, the retained device topic and the console show of this camera."""
        stats = self.stats
        age = self.frame_age(now)
        return {
            "kind": "camera",
            "location": self.config.location,
            "fps_in": stats.get("fps_in", 0.0),
            "fps_out": stats.get("fps_out", 0.0),
            "width": stats.get("width"),
            "height": stats.get("height"),
            "last_frame_age_s": round(age, 1),
            "reconnects_1h": stats.get("reconnects_1h", 0) + self.restarts,
            "last_error": stats.get("last_error") if age >= LIVE_FRAME_AGE_S else None,
            "stream": redact_url(self.url) if self.url else None,
        }

    @property
    def restarts(self) -> int:
        return self.child.restarts if self.child is not None else 0

    # --- requests to the capture process ---------------------------------------------------
    async def _request(
        self, command: dict[str, Any], timeout: float
    ) -> tuple[dict[str, Any], bytes | None]:
        if self.child is None:
            raise SnapshotUnavailableError("camera not started")
        try:
            return await self.child.request(command, timeout)
        except ChildUnavailableError as exc:
            raise SnapshotUnavailableError(str(exc)) from exc

    async def clip(self, alarm_wall: float, path: str) -> dict[str, Any]:
        """An evidence clip around ``alarm_wall`` (epoch seconds), written by the capture
        process's recorder once the post-alarm window has passed; its description."""
        clips = self.config.clips
        message, _ = await self._request(
            {
                "cmd": "clip",
                "alarm_wall": alarm_wall,
                "path": path,
                "pre_s": clips.pre_s,
                "post_s": clips.post_s,
            },
            clips.post_s + CLIP_GRACE_S,
        )
        if message.get("error"):
            raise SnapshotUnavailableError(str(message["error"]))
        return message

    # --- snapshots --------------------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        """The latest frame as JPEG, encoded by the capture process."""
        if self.state == "offline":
            raise SnapshotUnavailableError("camera offline")
        command = {
            "cmd": "snapshot",
            "quality": self.config.snapshot.jpeg_quality,
            "max_width": self.config.snapshot.max_width,
            "max_age": SNAPSHOT_MAX_AGE_S,
        }
        message, blob = await self._request(command, self.config.snapshot.timeout)
        if message.get("error") or not blob:
            raise SnapshotUnavailableError(str(message.get("error") or "empty snapshot"))
        return Snapshot(self.name, blob, float(message.get("taken_at", time.time())), "stream")
