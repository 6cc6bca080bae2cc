"""Camera configuration (pydantic v2; part of the `cameras:` list of the config file)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, model_validator

from edgeguard.alarm_model import AlarmKind
from edgeguard.analytics.config import AnalyticsConfig, ClipConfig
from edgeguard.config_base import Name, PointConfig, StrictModel
from edgeguard.secrets import Secret

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")
OFFLINE_SUFFIX = "-offline"  # a camera's camera_offline alarm has the source f"{camera}-offline"
TAMPER_SUFFIX = "-tamper"  # its camera_tamper alarm from the image f"{camera}-tamper"
ONVIF_TAMPER_SUFFIX = "-onvif-tamper"  # and the one the camera reports itself
MAX_SOURCE = 70  # alarm source names, docs/schema/alarm.json


class OnvifConfig(StrictModel):
    """How to reach the camera's ONVIF service (device information, stream and snapshot URIs,
    events, PTZ). SOAP calls log in with WS-UsernameToken; snapshots with HTTP digest."""

    host: str = Field(min_length=1, description="Camera host name or IP address.")
    port: int = Field(default=80, ge=1, le=65535, description="ONVIF HTTP port.")
    username: str = Field(min_length=1, description="ONVIF user (an operator-level user).")
    password: Secret = Field(
        description="ONVIF password: a string, {env: VAR}, {credential: NAME} or {file: PATH}. "
        "Never logged or printed."
    )
    profile: str | None = Field(
        default=None,
        max_length=64,
        description="Media profile token to analyse; default: the lowest-resolution H.264 "
        "profile (the substream), which costs the least to decode.",
    )
    events: bool = Field(
        default=True,
        description="Subscribe to the camera's events (PullPoint): its motion, tamper and "
        "digital-input events become edgeguard events.",
    )
    timeout: float = Field(
        default=10.0, gt=0, le=60, description="Seconds before an ONVIF request is abandoned."
    )
    max_clock_drift: float = Field(
        default=5.0,
        gt=0,
        description="Warn (log and device status) when the camera's clock is further off "
        "than this many seconds: evidence timestamps would not match.",
    )


class CameraInputConfig(PointConfig):
    """An alarm input wired to the camera (ONVIF digital input), used like any button: a panic
    button on a camera's alarm input latches exactly like a GPIO one."""

    name: Name = Field(description="Alarm source name (unique among all inputs and points).")
    token: str = Field(
        min_length=1,
        max_length=64,
        description="The camera's digital-input token (InputToken in its events), e.g. `1` "
        "or `DI_1`; `edgeguard discover` lists them.",
    )
    active_when: bool = Field(
        default=True,
        description="LogicalState that means 'in alarm': true for a normally-open contact, "
        "false for a normally-closed one.",
    )


class PtzConfig(StrictModel):
    """Move a PTZ camera to a preset when an alarm is raised at a linked location."""

    preset: str = Field(min_length=1, max_length=64, description="Preset token to go to.")
    return_preset: str | None = Field(
        default=None,
        max_length=64,
        description="Preset to return to once every linked alarm is reset; default: the "
        "camera's home position.",
    )
    profile: str | None = Field(
        default=None, max_length=64, description="Profile token for PTZ; default: the first."
    )


class SnapshotConfig(StrictModel):
    """Snapshots taken on alarms."""

    jpeg_quality: int = Field(default=85, ge=30, le=100, description="JPEG quality.")
    max_width: int = Field(
        default=1920, ge=160, le=7680, description="Larger frames are scaled down to this width."
    )
    timeout: float = Field(
        default=3.0, gt=0, le=30, description="Seconds to wait for a snapshot before giving up."
    )


class CameraConfig(StrictModel):
    """A camera: a plain RTSP URL, or an ONVIF device (which also gives events and PTZ)."""

    name: Name = Field(description="Unique camera name; also its device name in status.")
    enabled: bool = Field(default=True, description="Set false to keep it configured but off.")
    location: Name = Field(
        description="Key of the location (under `locations`) the camera watches; its "
        "camera_offline and tamper alarms are raised there."
    )
    key_area: str | None = Field(
        default=None,
        max_length=100,
        description="Key area it covers for the coverage report (ER, registration, cashier, "
        "entrance, corridor, ...); default: its location's `zone`.",
    )
    linked_locations: list[Name] = Field(
        default_factory=list,
        description="Alarm locations this camera is linked to (snapshots and PTZ on their "
        "alarms), in addition to the locations that list it under `cameras`.",
    )
    stream_url: str | None = Field(
        default=None,
        description="Stream URL (rtsp://, rtsps://, http:// for MJPEG). Default with `onvif`: "
        "the URI the camera gives for the analysed profile.",
    )
    username: str | None = Field(
        default=None, description="Stream user; default: the ONVIF user, if any."
    )
    password: Secret | None = Field(
        default=None, description="Stream password; default: the ONVIF password. Never logged."
    )
    onvif: OnvifConfig | None = Field(default=None, description="ONVIF access; optional.")
    analysis_fps: float = Field(
        default=5.0,
        gt=0,
        le=30,
        description="Frames per second kept for analysis and snapshots; the rest are decoded "
        "but not converted (saves CPU).",
    )
    offline_after: float = Field(
        default=10.0,
        ge=2,
        le=3600,
        description="Seconds without a frame before a `camera_offline` alarm is raised; it "
        "clears itself when frames return.",
    )
    rtsp_transport: Literal["tcp", "udp", "auto"] = Field(
        default="tcp",
        description="How RTP reaches us from an rtsp:// stream (capture and clips): `tcp` "
        "(interleaved in the RTSP connection: no loss, one port), `udp` (for cameras that "
        "refuse TCP), or `auto`: TCP first, then the other after each failed open, keeping "
        "the one that worked.",
    )
    open_timeout: float = Field(
        default=5.0,
        ge=1,
        le=60,
        description="Seconds to wait for the stream to open (RTSP handshake and the first "
        "frame's probe; ~0.5 s on a LAN) before trying again with back-off.",
    )
    snapshot: SnapshotConfig = Field(default_factory=SnapshotConfig, description="Snapshots.")
    ptz: PtzConfig | None = Field(default=None, description="PTZ preset on linked alarms.")
    inputs: list[CameraInputConfig] = Field(
        default_factory=list,
        description="Alarm inputs wired to the camera's digital inputs (needs `onvif`).",
    )
    onvif_motion: Literal["event", "ignore"] = Field(
        default="event",
        description="The camera's own motion events: recorded in the ledger (`event`) or not.",
    )
    onvif_tamper: Literal["alarm", "ignore"] = Field(
        default="alarm",
        description="The camera's own tamper events: a `camera_tamper` alarm (`alarm`, source "
        "`{camera}-onvif-tamper`) or not.",
    )
    analytics: AnalyticsConfig | None = Field(
        default=None,
        description="Video analytics in the capture process: motion, people counting per zone, "
        "crowd and loitering alarms, view tampering.",
    )
    clips: ClipConfig = Field(
        default_factory=ClipConfig,
        description="Evidence clips (H.264 MP4, no re-encoding) kept with each linked alarm.",
    )

    @model_validator(mode="after")
    def _source(self) -> CameraConfig:
        if self.stream_url is None and self.onvif is None:
            raise ValueError("give `stream_url` or `onvif` (or both)")
        if self.stream_url is not None:
            scheme = urlsplit(self.stream_url).scheme.lower()
            if scheme not in STREAM_SCHEMES:
                raise ValueError(
                    f"stream_url: scheme {scheme or '(none)'!r} not supported "
                    f"(use {', '.join(STREAM_SCHEMES)})"
                )
        if self.inputs and (self.onvif is None or not self.onvif.events):
            raise ValueError("camera `inputs` need `onvif` with `events: true`")
        if self.ptz is not None and self.onvif is None:
            raise ValueError("`ptz` needs `onvif`")
        return self

    def offline_source(self) -> str:
        return f"{self.name}{OFFLINE_SUFFIX}"

    def tamper_source(self) -> str:
        return f"{self.name}{TAMPER_SUFFIX}"

    def onvif_tamper_source(self) -> str:
        return f"{self.name}{ONVIF_TAMPER_SUFFIX}"

    def zone_source(self, zone: str, rule: str) -> str:
        """Alarm source of a zone rule: f"{camera}-{zone}-{rule}" (crowd, dwell, motion)."""
        return f"{self.name}-{zone}-{rule}"

    def own_sources(self) -> list[tuple[str, tuple[str | int, ...]]]:
        """Every alarm source this camera can raise, with the key path that names it."""
        sources: list[tuple[str, tuple[str | int, ...]]] = [
            (self.offline_source(), ("name",)),
            (self.tamper_source(), ("name",)),
            (self.onvif_tamper_source(), ("name",)),
        ]
        sources += [(p.name, ("inputs", i, "name")) for i, p in enumerate(self.inputs)]
        if self.analytics is not None:
            for i, zone in enumerate(self.analytics.zones):
                for rule in ("crowd", "dwell", "motion"):
                    sources.append((self.zone_source(zone.name, rule), ("analytics", "zones", i)))
        return sources

    def stream_credentials(self) -> tuple[str | None, str | None]:
        user = self.username or (self.onvif.username if self.onvif else None)
        secret = self.password or (self.onvif.password if self.onvif else None)
        return user, secret.get_secret_value() if secret is not None else None


def with_credentials(url: str, user: str | None, password: str | None) -> str:
    """``url`` with user and password in its authority (FFmpeg's way to pass RTSP credentials),
    unless the URL carries its own."""
    parts = urlsplit(url)
    if user is None or parts.username is not None:
        return url
    auth = quote(user, safe="")
    if password is not None:
        auth += ":" + quote(password, safe="")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """A URL fit for logs: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


CAMERA_ALARM_KINDS = (AlarmKind.CAMERA_OFFLINE, AlarmKind.CAMERA_TAMPER)
