"""Cameras as first-class devices, on the daemon's loop: their capture processes and health,
the ONVIF process (events, PTZ, snapshot URIs), and the linkage of alarms to cameras
(snapshots published after the alarm, PTZ presets). Nothing here is on the alarm path: the
alarm is recorded and queued before any of this runs, and every camera call has a timeout."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeguard.alarm_model import (
    DEFAULT_PRIORITY,
    Action,
    AlarmKind,
    AlarmState,
    DeviceState,
    DeviceStatus,
    InputSignal,
)
from edgeguard.alarms import AlarmChange
from edgeguard.cameras.child import ChildProcess
from edgeguard.cameras.config import CameraConfig
from edgeguard.cameras.evidence import EvidenceFiles, evidence_folder
from edgeguard.cameras.onvif_link import OnvifLink
from edgeguard.cameras.runner import CameraRunner, Snapshot, SnapshotUnavailableError
from edgeguard.cameras.wire import encode
from edgeguard.config import EdgeguardConfig
from edgeguard.filemodes import make_dir
from edgeguard.ids import iso_ms, parse_iso, utc_now
from edgeguard.service import AlarmService
from edgeguard.store import AlarmRecord

logger = logging.getLogger(__name__)

_ENDED = (AlarmChange.RESET, AlarmChange.RESTORED)  # the alarm may have ended: PTZ back

TICK_S = 0.5
STATS_PUBLISH_S = 30.0
DETECTOR_MODULE = "edgeguard.analytics.detector_service"
MAX_SOCKET_PATH = 100

# Publishes a retained device payload now if the link is up (camera statistics): not queued,
# the next one supersedes it. State changes go through the store and the outbox instead.
StatsPublisher = Callable[[str, dict[str, Any]], None]


class CameraManager:
    def __init__(
        self,
        config: EdgeguardConfig,
        service: AlarmService,
        publish_stats: StatsPublisher,
    ) -> None:
        self.config = config
        self.service = service
        self.publish_stats = publish_stats
        self.evidence = EvidenceFiles(config.store.evidence_path())
        self.runners: dict[str, CameraRunner] = {}
        self.onvif = OnvifLink(self._submit, self._on_motion, self._set_stream)
        self.detector_child: ChildProcess | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tick: asyncio.Task[None] | None = None
        self._offline_open: set[str] = set()  # cameras with an open camera_offline alarm
        self.analytics_errors: dict[str, str] = {}
        self.detector_stats: dict[str, Any] = {}

    @property
    def cameras(self) -> dict[str, CameraConfig]:
        return {c.name: c for c in self.config.cameras if c.enabled}

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        open_alarms = await self.service.writer.run(lambda s: s.open_alarms())
        self._offline_open = {
            a.source.removesuffix("-offline")
            for a in open_alarms
            if a.kind == AlarmKind.CAMERA_OFFLINE.value
        }
        socket_path = self._start_detector()
        for camera in self.cameras.values():
            runner = CameraRunner(
                camera,
                self._on_health,
                on_analytics=self._on_analytics,
                detector_socket=socket_path,
                nice=self.config.video_nice,
            )
            self.runners[camera.name] = runner
            runner.start(camera.stream_url)
        self.onvif.start(self.cameras)
        self.service.listeners.append(self.on_alarm)
        self._tick = asyncio.get_running_loop().create_task(self._tick_loop())
        if self.runners:
            logger.info("cameras started: %s", ", ".join(sorted(self.runners)))

    async def stop(self) -> None:
        if self.on_alarm in self.service.listeners:
            self.service.listeners.remove(self.on_alarm)
        if self._tick is not None:
            self._tick.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(r.stop() for r in self.runners.values()))
        self.runners.clear()
        await self.onvif.stop()
        if self.detector_child is not None:
            await self.detector_child.stop()
            self.detector_child = None

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tick_loop(self) -> None:
        last_stats = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            for runner in list(self.runners.values()):
                runner.evaluate(now)
            if now - last_stats >= STATS_PUBLISH_S:
                last_stats = now
                for runner in self.runners.values():
                    self.publish_stats(runner.name, self.device_detail(runner.name, now))

    # --- health -----------------------------------------------------------------------------
    def _on_health(self, camera: str, state: str, detail: dict[str, Any]) -> None:
        config = self.cameras.get(camera)
        if config is None:
            return
        online = state == "online"
        detail = {**detail, **self.onvif.detail(camera)}
        device_state = DeviceState.ONLINE if online else DeviceState.OFFLINE
        self._spawn(self.service.handle_status(DeviceStatus(camera, device_state, detail)))
        if online and camera not in self._offline_open:
            return
        if online:
            self._offline_open.discard(camera)
            logger.info("camera %s: frames again", camera)
        else:
            self._offline_open.add(camera)
            logger.warning("camera %s: no frame for %.0f s", camera, config.offline_after)
        self._spawn(
            self.service.handle_signal(
                InputSignal(
                    source=config.offline_source(),
                    action=Action.NORMAL if online else Action.ACTIVE,
                    kind=AlarmKind.CAMERA_OFFLINE,
                    priority=DEFAULT_PRIORITY[AlarmKind.CAMERA_OFFLINE],
                    location=config.location,
                    occurred_at=utc_now(),
                    detail={"camera": camera, **_brief(detail)},
                )
            )
        )

    def device_detail(self, camera: str, now: float | None = None) -> dict[str, Any]:
        runner = self.runners.get(camera)
        if runner is None:
            return {"kind": "camera", "state": "disabled"}
        detail = runner.health_detail(time.monotonic() if now is None else now)
        return {**detail, "state": runner.state, **self.onvif.detail(camera)}

    # --- video analytics (events from the capture processes) -------------------------------
    def _on_analytics(self, camera: str, message: dict[str, Any]) -> None:
        config = self.cameras.get(camera)
        if config is None:
            return
        if message.get("type") != "analytics":
            self.analytics_errors[camera] = str(message.get("error"))[:300]
            return
        kind, active = message.get("kind"), message.get("active")
        zone_name = message.get("zone")
        raw = message.get("detail")
        detail: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if not isinstance(active, bool):
            return
        if kind == "motion_event":
            self._spawn(self._record_motion(config, active, {"zone": zone_name, "via": "image"}))
            return
        target = self._analytics_target(config, str(kind), zone_name)
        if target is None:
            return
        source, alarm_kind, location = target
        self._submit(
            source,
            alarm_kind,
            DEFAULT_PRIORITY[alarm_kind],
            location,
            active=active,
            detail={"camera": camera, "zone": zone_name, "via": "image", **detail},
        )

    def _analytics_target(
        self, config: CameraConfig, kind: str, zone_name: Any
    ) -> tuple[str, AlarmKind, str] | None:
        """The alarm source, kind and location of an analytics event; None if unknown."""
        if kind == "tamper":
            return config.tamper_source(), AlarmKind.CAMERA_TAMPER, config.location
        zones = {z.name: z for z in (config.analytics.zones if config.analytics else [])}
        zone = zones.get(str(zone_name))
        if zone is None:
            return None
        location = zone.location or config.location
        if kind == "crowd":
            return config.zone_source(zone.name, "crowd"), AlarmKind.CROWD, location
        if kind == "loitering":
            return config.zone_source(zone.name, "dwell"), AlarmKind.LOITERING, location
        if kind == "motion":
            return config.zone_source(zone.name, "motion"), zone.motion_kind, location
        return None

    # --- the shared person detector --------------------------------------------------------
    def _start_detector(self) -> str | None:
        """One detector process for every camera that counts people (its model: the first
        camera's `detection.model`, else the search path); None when no camera counts."""
        counting = [
            c.analytics
            for c in self.cameras.values()
            if c.analytics is not None and c.analytics.enabled and c.analytics.zones
        ]
        if not counting:
            return None
        path = detector_socket_path(self.config.control.socket)
        model = next((a.detection.model for a in counting if a.detection.model), None)
        settings = {"socket": str(path), "model": str(model) if model else None, "threads": 1}
        self.detector_child = ChildProcess(
            "detector",
            DETECTOR_MODULE,
            encode(settings),
            self._on_detector,
            silence_s=15.0,
            nice=self.config.video_nice,
        )
        self.detector_child.start()
        return str(path)

    def _on_detector(self, message: dict[str, Any], _blob: bytes | None) -> None:
        self.detector_stats = message

    # --- signals and records from cameras (analytics, ONVIF) --------------------------------
    def _set_stream(self, camera: str, url: str) -> None:
        runner = self.runners.get(camera)
        if runner is not None:
            runner.set_url(url)

    def _on_motion(self, config: CameraConfig, active: bool, message: dict[str, Any]) -> None:
        self._spawn(self._record_motion(config, active, message))

    def _submit(
        self,
        source: str,
        kind: AlarmKind,
        priority: int,
        location: str,
        *,
        active: bool,
        detail: dict[str, Any],
    ) -> None:
        signal = InputSignal(
            source=source,
            action=Action.ACTIVE if active else Action.NORMAL,
            kind=kind,
            priority=priority,
            location=location,
            occurred_at=utc_now(),
            detail=detail,
        )
        self._spawn(self.service.handle_signal(signal))

    async def _record_motion(
        self, config: CameraConfig, active: bool, message: dict[str, Any]
    ) -> None:
        data = {"active": active, "via": message.get("via", "onvif")}
        for key in ("topic", "zone"):
            if message.get(key) is not None:
                data[key] = message[key]

        def write(store: Any) -> None:
            store.append_event(
                "camera.motion",
                source=config.name,
                location=config.location,
                occurred_at=str(message.get("at") or "") or None,
                data=data,
            )

        await self.service.writer.run(write)

    # --- alarm linkage ----------------------------------------------------------------------
    def on_alarm(self, what: AlarmChange, record: AlarmRecord | None) -> None:
        """Service listener (on the loop, after the alarm is recorded and queued)."""
        if record is None:
            return
        linked = [name for name in record.cameras if name in self.runners]
        if record.kind == AlarmKind.CAMERA_OFFLINE.value:  # no snapshot from the dead camera
            linked = [name for name in linked if name != record.detail.get("camera")]
        if what == AlarmChange.NEW and linked:
            self._spawn(self._link_new_alarm(record, linked))
        elif what in _ENDED and record.state == AlarmState.RESET.value:
            self._spawn(self._ptz_return(record, linked))

    async def _link_new_alarm(self, record: AlarmRecord, cameras: list[str]) -> None:
        self._ptz_go(cameras)
        for camera in cameras:
            if self.cameras[camera].clips.enabled:
                self._spawn(self._clip(record, camera))
        results = await asyncio.gather(*(self.take_snapshot(c) for c in cameras))
        items: list[tuple[dict[str, Any], bytes | None]] = []
        for camera, result in zip(cameras, results, strict=True):
            if isinstance(result, Snapshot):
                item = await asyncio.to_thread(
                    self.evidence.save_snapshot,
                    record.event_id,
                    camera,
                    result.jpeg,
                    result.taken_at,
                    result.via,
                )
                items.append((item, result.jpeg))
            else:
                items.append(({"camera": camera, "kind": "snapshot", "error": result}, None))
        try:
            await self.service.add_evidence(record.event_id, items)
        except Exception:
            logger.exception("snapshots of alarm %s could not be recorded", record.event_id)

    async def _clip(self, record: AlarmRecord, camera: str) -> None:
        """The linked camera's clip around the alarm: written by its capture process once the
        post-alarm window has passed, then recorded and listed in the alarm's evidence."""
        runner = self.runners.get(camera)
        if runner is None:
            return
        alarm_wall = parse_iso(record.occurred_at).timestamp()
        folder = self.evidence.root / evidence_folder(record.event_id)
        path = folder / f"{evidence_folder(camera)}-clip.mp4"
        try:
            await asyncio.to_thread(make_dir, folder)
            result = await runner.clip(alarm_wall, str(path))
        except (SnapshotUnavailableError, OSError) as exc:
            logger.warning("no clip from %s for %s: %s", camera, record.event_id, exc)
            item: dict[str, Any] = {"camera": camera, "kind": "clip", "error": str(exc)[:300]}
        else:
            item = clip_item(camera, result)
        try:
            await self.service.add_evidence(record.event_id, [(item, None)])
        except Exception:
            logger.exception("clip of %s for %s could not be recorded", camera, record.event_id)

    async def take_snapshot(self, camera: str) -> Snapshot | str:
        """The live stream's latest frame, else the camera's ONVIF snapshot URI; or why not."""
        runner = self.runners[camera]
        reasons = []
        try:
            return await runner.snapshot()
        except SnapshotUnavailableError as exc:
            reasons.append(f"stream: {exc}")
        if self.onvif.connected(camera):
            try:
                message, blob = await asyncio.wait_for(
                    self.onvif.request({"cmd": "snapshot", "camera": camera}),
                    runner.config.snapshot.timeout,
                )
                if blob and blob[:2] == b"\xff\xd8":
                    return Snapshot(camera, blob, time.time(), "onvif")
                reasons.append(f"onvif: {message.get('error') or 'not a JPEG'}")
            except (SnapshotUnavailableError, TimeoutError) as exc:
                reasons.append(f"onvif: {exc or 'timed out'}")
        logger.warning("no snapshot from %s: %s", camera, "; ".join(reasons))
        return "; ".join(reasons)[:300]

    def _ptz_go(self, cameras: list[str]) -> None:
        for camera in cameras:
            config = self.cameras.get(camera)
            if config is not None and config.ptz is not None:
                self._spawn(self.onvif.ptz(camera, config.ptz.preset, config.ptz.profile))

    async def _ptz_return(self, record: AlarmRecord, cameras: list[str]) -> None:
        ptz_cameras = [c for c in cameras if (cfg := self.cameras.get(c)) and cfg.ptz]
        if not ptz_cameras:
            return
        still_open = await self.service.writer.run(lambda s: s.open_alarms())
        busy = {c for a in still_open if a.event_id != record.event_id for c in a.cameras}
        for camera in ptz_cameras:
            config = self.cameras[camera]
            if camera not in busy and config.ptz is not None:
                await self.onvif.ptz(camera, config.ptz.return_preset, config.ptz.profile)

    # --- reports ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {name: self.device_detail(name, now) for name in sorted(self.runners)}

    def coverage(self) -> list[dict[str, Any]]:
        """Each key area, the cameras covering it and whether one of them is live now."""
        return coverage_report(self.config, {n: r.state for n, r in self.runners.items()})


def coverage_report(config: EdgeguardConfig, live: dict[str, str]) -> list[dict[str, Any]]:
    areas: dict[str, dict[str, Any]] = {}
    for key, location in config.locations.items():
        if location.zone:
            area = areas.setdefault(location.zone, {"locations": [], "cameras": []})
            area["locations"].append(key)
    for camera in config.cameras:
        zone = camera.key_area or getattr(config.locations.get(camera.location), "zone", None)
        if zone is None:
            continue
        area = areas.setdefault(zone, {"locations": [], "cameras": []})
        state = live.get(camera.name, "disabled" if not camera.enabled else "stopped")
        area["cameras"].append({"name": camera.name, "state": state})
    report = []
    for zone in sorted(areas):
        area = areas[zone]
        live_count = sum(1 for c in area["cameras"] if c["state"] == "online")
        report.append(
            {
                "key_area": zone,
                "locations": area["locations"],
                "cameras": area["cameras"],
                "live": live_count,
                "covered": live_count > 0,
            }
        )
    return report


def detector_socket_path(control_socket: Path) -> Path:
    """Beside the control socket; in the temp folder when that path would be too long for a
    Unix socket (108 bytes on Linux), named after it so that two daemons do not collide."""
    path = control_socket.parent / "detector.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    tag = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"edgeguard-detector-{tag}.sock"


def clip_item(camera: str, result: dict[str, Any]) -> dict[str, Any]:
    """An evidence item describing a clip the capture process wrote."""
    return {
        "camera": camera,
        "kind": "clip",
        "path": str(result.get("path")),
        "sha256": str(result.get("sha256")),
        "bytes": int(result.get("bytes") or 0),
        "taken_at": iso_ms(datetime.fromtimestamp(float(result.get("start_wall") or 0), UTC)),
        "duration_s": float(result.get("duration_s") or 0),
        "via": "stream",
    }


def _brief(detail: dict[str, Any]) -> dict[str, Any]:
    keys = ("last_frame_age_s", "last_error", "reconnects_1h")
    return {k: detail[k] for k in keys if k in detail}
