"""One camera seen from the daemon: its capture process, its health and its snapshots."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeguard.cameras.child import ChildProcess
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


class CameraRunner:
    def __init__(
        self,
        config: CameraConfig,
        on_health: HealthCallback,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.on_health = on_health
        self.clock = clock
        self.state = "starting"
        self.stats: dict[str, Any] = {}
        self.url: str | None = None
        self.child: ChildProcess | None = None
        self.started = clock()
        self.offline_since: float | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[tuple[dict[str, Any], bytes | None]]] = {}

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
        user, password = self.config.stream_credentials()
        settings = CaptureSettings(
            name=self.name,
            url=with_credentials(url, user, password),
            analysis_fps=self.config.analysis_fps,
            open_timeout_s=self.config.open_timeout,
        )
        self.child = ChildProcess(
            f"camera {self.name}",
            CAPTURE_MODULE,
            encode(settings.to_dict()),
            self._on_message,
            silence_s=10.0,
        )
        logger.info("camera %s: capturing %s", self.name, redact_url(url))
        self.child.start()
        if old is not None:
            asyncio.get_running_loop().create_task(old.stop())

    async def stop(self) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(SnapshotUnavailableError("camera stopping"))
        if self.child is not None:
            await self.child.stop()

    # --- messages from the capture process --------------------------------------------------
    def _on_message(self, message: dict[str, Any], blob: bytes | None) -> None:
        kind = message.get("type")
        if kind == "stats":
            self.stats = message
        elif kind == "snapshot":
            future = self._waiting.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result((message, blob))

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

    # --- snapshots --------------------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        """The latest frame as JPEG, encoded by the capture process."""
        child = self.child
        if child is None or self.state == "offline":
            raise SnapshotUnavailableError("camera offline")
        request_id = next(self._ids)
        future: asyncio.Future[tuple[dict[str, Any], bytes | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting[request_id] = future
        command = {
            "cmd": "snapshot",
            "id": request_id,
            "quality": self.config.snapshot.jpeg_quality,
            "max_width": self.config.snapshot.max_width,
            "max_age": SNAPSHOT_MAX_AGE_S,
        }
        if not child.send(command):
            self._waiting.pop(request_id, None)
            raise SnapshotUnavailableError("capture process not running")
        try:
            message, blob = await asyncio.wait_for(future, self.config.snapshot.timeout)
        except TimeoutError as exc:
            raise SnapshotUnavailableError("capture process did not answer in time") from exc
        finally:
            self._waiting.pop(request_id, None)
        if message.get("error") or not blob:
            raise SnapshotUnavailableError(str(message.get("error") or "empty snapshot"))
        return Snapshot(self.name, blob, float(message.get("taken_at", time.time())), "stream")
