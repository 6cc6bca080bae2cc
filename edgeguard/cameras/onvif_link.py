"""The daemon's side of the ONVIF process (one for all ONVIF cameras, on the loop): its state
per camera, its events turned into signals (digital inputs, tamper) and motion records, and
its requests (snapshots, PTZ). Every request has a timeout; nothing here is on the alarm path."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from edgeguard.alarm_model import DEFAULT_PRIORITY, AlarmKind
from edgeguard.cameras.child import ChildProcess, ChildUnavailableError
from edgeguard.cameras.config import CameraConfig
from edgeguard.cameras.runner import SnapshotUnavailableError
from edgeguard.cameras.wire import encode

logger = logging.getLogger(__name__)

ONVIF_MODULE = "edgeguard.cameras.onvif_worker"
ONVIF_REPLY_S = 15.0


@dataclass
class OnvifState:
    connected: bool = False
    info: dict[str, Any] | None = None
    error: str | None = None
    auth_error: bool = False


class SignalSubmitter(Protocol):
    def __call__(
        self,
        source: str,
        kind: AlarmKind,
        priority: int,
        location: str,
        *,
        active: bool,
        detail: dict[str, Any],
    ) -> None: ...


class OnvifLink:
    """``submit`` raises a signal, ``record_motion`` writes a motion event, ``set_stream`` gives
    a camera without a configured URL the stream URI its ONVIF profile names."""

    def __init__(
        self,
        submit: SignalSubmitter,
        record_motion: Callable[[CameraConfig, bool, dict[str, Any]], None],
        set_stream: Callable[[str, str], None],
    ) -> None:
        self.submit = submit
        self.record_motion = record_motion
        self.set_stream = set_stream
        self.states: dict[str, OnvifState] = {}
        self.child: ChildProcess | None = None
        self._cameras: dict[str, CameraConfig] = {}
        self._input_states: dict[str, bool] = {}

    def start(self, cameras: Mapping[str, CameraConfig]) -> None:
        self._cameras = {n: c for n, c in cameras.items() if c.onvif is not None}
        if not self._cameras:
            return
        settings = {"cameras": [_settings(c) for c in self._cameras.values()]}
        self.states = {name: OnvifState() for name in self._cameras}
        self.child = ChildProcess(
            "onvif", ONVIF_MODULE, encode(settings), self._on_message, silence_s=15.0
        )
        self.child.start()

    async def stop(self) -> None:
        if self.child is not None:
            await self.child.stop()
            self.child = None

    def connected(self, camera: str) -> bool:
        state = self.states.get(camera)
        return state is not None and state.connected

    def detail(self, camera: str) -> dict[str, Any]:
        """The camera's ONVIF part of its device status (empty for a camera without ONVIF)."""
        state = self.states.get(camera)
        if state is None:
            return {}
        info = state.info or {}
        return {
            "onvif": {
                "connected": state.connected,
                "error": state.error,
                "model": " ".join(filter(None, [info.get("manufacturer"), info.get("model")])),
                "clock_drift_s": info.get("clock_drift_s"),
            }
        }

    async def request(self, command: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
        if self.child is None:
            raise SnapshotUnavailableError("no ONVIF process")
        try:
            return await self.child.request(command, ONVIF_REPLY_S)
        except ChildUnavailableError as exc:
            raise SnapshotUnavailableError(str(exc)) from exc

    async def ptz(self, camera: str, preset: str | None, profile: str | None) -> None:
        """To ``preset`` (None: home); a failure is logged, never raised."""
        try:
            message, _ = await self.request(
                {"cmd": "ptz", "camera": camera, "preset": preset, "profile": profile}
            )
        except SnapshotUnavailableError as exc:
            logger.warning("camera %s: PTZ to %s failed: %s", camera, preset or "home", exc)
            return
        if message.get("error"):
            logger.warning(
                "camera %s: PTZ to %s failed: %s", camera, preset or "home", message["error"]
            )
        else:
            logger.info("camera %s: PTZ moved to %s", camera, preset or "home")

    # --- the process's messages -------------------------------------------------------------
    def _on_message(self, message: dict[str, Any], _blob: bytes | None) -> None:
        kind = message.get("type")
        camera = str(message.get("camera"))
        config = self._cameras.get(camera)
        state = self.states.get(camera)
        if config is None or state is None:
            return
        if kind == "info":
            self._on_info(config, state, message.get("info") or {})
        elif kind == "error":
            state.connected, state.error = False, str(message.get("error"))[:300]
            state.auth_error = bool(message.get("auth"))
            logger.warning("camera %s: ONVIF: %s", camera, state.error)
        elif kind == "event":
            self._on_event(config, message)

    def _on_info(self, config: CameraConfig, state: OnvifState, info: dict[str, Any]) -> None:
        state.connected, state.info, state.error = True, info, None
        drift = info.get("clock_drift_s")
        assert config.onvif is not None
        if isinstance(drift, int | float) and abs(drift) > config.onvif.max_clock_drift:
            logger.warning(
                "camera %s: its clock is %+.1f s off; evidence times would not match (set NTP)",
                config.name,
                drift,
            )
        stream = info.get("stream_uri")
        if config.stream_url is None and isinstance(stream, str) and stream:
            self.set_stream(config.name, stream)

    def _on_event(self, config: CameraConfig, message: dict[str, Any]) -> None:
        kind, active = message.get("kind"), message.get("active")
        if not isinstance(active, bool):
            return
        if kind == "digital_input":
            self._digital_input(config, str(message.get("source")), active)
        elif kind == "tamper" and config.onvif_tamper == "alarm":
            self._tamper(config, active, message)
        elif kind == "motion" and config.onvif_motion == "event":
            self.record_motion(config, active, message)

    def _tamper(self, config: CameraConfig, active: bool, message: dict[str, Any]) -> None:
        source = config.onvif_tamper_source()
        if self._input_states.get(source) == active:
            return  # the same state again (reported anew on each subscription)
        self._input_states[source] = active
        self.submit(
            source,
            AlarmKind.CAMERA_TAMPER,
            DEFAULT_PRIORITY[AlarmKind.CAMERA_TAMPER],
            config.location,
            active=active,
            detail={"camera": config.name, "via": "onvif", "topic": message.get("topic")},
        )

    def _digital_input(self, config: CameraConfig, token: str, state: bool) -> None:
        for point in config.inputs:
            if point.token != token:
                continue
            active = state == point.active_when
            previous = self._input_states.get(point.name)
            self._input_states[point.name] = active
            if previous == active:
                continue  # a repeat (e.g. the state reported again on a new subscription)
            self.submit(
                point.name,
                point.kind,
                point.effective_priority(),
                point.location,
                active=active,
                detail={"input": config.name, "camera": config.name, "token": token},
            )


def _settings(camera: CameraConfig) -> dict[str, Any]:
    onvif = camera.onvif
    assert onvif is not None
    return {
        "name": camera.name,
        "host": onvif.host,
        "port": onvif.port,
        "username": onvif.username,
        "password": onvif.password.get_secret_value(),
        "profile": onvif.profile,
        "events": onvif.events,
        "timeout": onvif.timeout,
    }
