"""The configuration models (pydantic v2). Every field is described: docs/config-reference.md
is generated from these descriptions (`edgeguard config-reference`)."""

from __future__ import annotations

import functools
import operator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from edgeguard.broker_nodes import MAX_NODES, NodeEntry, distinct_nodes, node_addresses
from edgeguard.cameras.config import MAX_SOURCE, CameraConfig
from edgeguard.config_base import Name, PointConfig, StrictModel
from edgeguard.driver_api import DriverConfig
from edgeguard.driver_registry import schemas
from edgeguard.gsm_modem_config import SmsConfig
from edgeguard.outputs_config import ModbusCoilOutputConfig, OutputConfig
from edgeguard.receipts_config import ReceiptsConfig
from edgeguard.secrets import Secret, SecretPath
from edgeguard.web.config import WebConfig

FAULT_SUFFIX = "-fault"  # a device's fault alarm has the source f"{device}-fault"
# the transmission paths as devices (docs/transmission-paths.md), by path
PATH_DEVICES = {"primary": "uplink-primary", "secondary": "uplink-secondary", "sms": "sms-modem"}
DEFAULT_PATHS_LOCATION = "transmission"


class MqttProtocol(StrEnum):
    V5 = "5"
    V311 = "3.1.1"


class SiteConfig(StrictModel):
    """The hospital (site) this appliance serves."""

    id: Name = Field(
        description="Site id, unique among the police station's sites; the MQTT topic root is "
        "`edgeguard/{id}/` and the broker ACL confines the site to it."
    )
    name: str = Field(
        min_length=1, max_length=128, description="The site's name as dispatchers read it."
    )


class TlsConfig(StrictModel):
    """TLS towards the broker. Give cert_file and key_file for client-certificate login."""

    ca_file: SecretPath | None = Field(
        default=None,
        description="CA bundle that signed the broker's certificate; default: the system's CAs.",
    )
    cert_file: SecretPath | None = Field(
        default=None, description="Client certificate (PEM); its CN is the site id for the ACL."
    )
    key_file: SecretPath | None = Field(
        default=None,
        description="Client private key (PEM); a path, {credential: NAME} or {env: VAR}.",
    )
    check_hostname: bool = Field(
        default=True,
        description="Verify the broker's name against its certificate. Turn off "
        "only on a closed network with a private CA, never on the internet.",
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class BrokerEndpoint(StrictModel):
    """Where a broker is and how to log in: shared by the site's links and the police
    receiver's."""

    host: str = Field(default="localhost", min_length=1, description="Broker host name or IP.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Broker port; default 8883 with TLS, 1883 without.",
    )
    username: str | None = Field(default=None, description="Username, when the broker uses them.")
    password: Secret | None = Field(
        default=None,
        description="Password: a string, {env: VAR}, {credential: NAME} or "
        "{file: PATH}. Never logged or printed.",
    )
    tls: TlsConfig | None = Field(default=None, description="TLS settings; omit for plain TCP.")
    session_expiry: int = Field(
        default=7 * 86400,
        ge=0,
        description="MQTT 5 session expiry (s): how long the broker keeps this client's "
        "session, and the messages queued for it, while it is away.",
    )
    reconnect_min: float = Field(
        default=0.5, gt=0, description="First reconnect delay (s); doubles up to reconnect_max."
    )

    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883


class ClusterEndpoint(BrokerEndpoint):
    """A broker endpoint with the further addresses of the same broker (`nodes`)."""

    nodes: list[NodeEntry] = Field(
        default_factory=list,
        max_length=MAX_NODES,
        description="More addresses of the same broker (the nodes of a cluster): `host`, "
        "`host:port` or `[IPv6]:port`, the port by default this endpoint's. `host:port` is "
        "tried first; after a failed connect or a dropped connection the next reconnect goes "
        "to the next node, in turn. Same login, TLS (each node's certificate must match its "
        "name), client id and persistent session on all: the nodes must share sessions "
        "(a RabbitMQ cluster keeps them in quorum queues). At most 16, none twice.",
    )
    _distinct_nodes = field_validator("nodes")(distinct_nodes)

    def addresses(self) -> list[tuple[str, int]]:
        """`host:port`, then the `nodes`: the order the link tries them in."""
        return node_addresses(self.host, self.effective_port(), self.nodes)


class BrokerConfig(ClusterEndpoint):
    """A link to a police broker (the primary `mqtt`, or `mqtt.secondary`)."""

    protocol: Annotated[MqttProtocol, BeforeValidator(str)] = Field(
        default=MqttProtocol.V5,
        description="MQTT version: `5` (default) or `3.1.1` for brokers that speak only 3.1.1.",
    )
    client_id: str | None = Field(
        default=None,
        max_length=128,
        description="MQTT client id; default `edgeguard-{site id}`. "
        "Must be stable: the persistent session is keyed on it.",
    )
    keepalive: int = Field(
        default=8,
        ge=2,
        le=60,
        description="Keepalive seconds. The broker declares the site lost "
        "after 1.5x this, the site sees a dead link within 2x: 8 keeps both under 20 s "
        "(EN 50136-1 SP6).",
    )
    reconnect_max: float = Field(default=15.0, gt=0, description="Longest reconnect delay (s).")
    inflight_window: int = Field(
        default=100, ge=1, le=1000, description="Outbox messages published ahead of their PUBACKs."
    )


class SecondaryMqttConfig(BrokerConfig):
    """The second transmission path (EN 50136-1 dual path): another police broker, with its
    own session, Will, status and heartbeats (docs/transmission-paths.md). Heartbeats go to
    both brokers at the primary's `heartbeat_interval` and `heartbeat_qos`."""

    failover_after_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="A message the primary broker has not PUBACKed within this many seconds "
        "(or any message while the primary link is down) is also sent on this broker; the "
        "primary link down this long is reported as the `uplink-primary` device fault.",
    )


class MqttConfig(BrokerConfig):
    """The link to the police station's broker (the primary path)."""

    heartbeat_interval: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds between heartbeats on `edgeguard/{site}/heartbeat`.",
    )
    heartbeat_qos: Literal[0, 1] = Field(default=0, description="QoS of heartbeats.")
    secondary: SecondaryMqttConfig | None = Field(
        default=None,
        description="A second police broker used when the primary fails "
        "(docs/transmission-paths.md); omit for a single path.",
    )
    paths_location: Name | None = Field(
        default=None,
        description="Location key given to the device_fault alarms of the transmission paths "
        "(`uplink-primary`, `uplink-secondary`, `sms-modem`); default `transmission`.",
    )


class SigningConfig(StrictModel):
    """The site's Ed25519 key: every message is signed so the police can verify its origin."""

    private_key: SecretPath = Field(
        description="PEM private key made by `edgeguard keygen`; a path, {credential: NAME} or "
        "{env: VAR}. The police side holds the matching public key."
    )


class StoreConfig(StrictModel):
    """The local tamper-evident event log (SQLite)."""

    path: Path = Field(
        default=Path("/var/lib/edgeguard/edgeguard.db"), description="SQLite database file."
    )
    evidence_dir: Path | None = Field(
        default=None,
        description="Where snapshots (and later clips) are kept, one folder per alarm; "
        "default: `evidence/` beside the database.",
    )

    evidence_quota_mb: int = Field(
        default=20_000,
        ge=10,
        description="Disk quota of the evidence folder (MB). Beyond it the oldest evidence is "
        "deleted: motion and other non-alarm evidence first, then low-priority alarms' (P4, "
        "P3), P1/P2 alarms' last.",
    )
    evidence_keep_days: float = Field(
        default=90.0,
        ge=1,
        description="Evidence younger than this is kept unless the quota forces otherwise "
        "(the policy asks for at least 30 days; the design target is 90).",
    )
    evidence_max_days: float | None = Field(
        default=None, ge=1, description="Delete evidence older than this regardless; default never."
    )
    evidence_grace_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="Evidence younger than this is never deleted for the quota (an alarm's "
        "clip may still be written into its folder). The quota is checked after every write, "
        "so the folder exceeds it by at most what is written within this time.",
    )

    def evidence_path(self) -> Path:
        return self.evidence_dir or self.path.parent / "evidence"


class ControlConfig(StrictModel):
    """The local control socket used by `edgeguard reset`, `status` and `simulate`."""

    socket: Path = Field(
        default=Path("/run/edgeguard/control.sock"), description="Unix socket path."
    )


class LoggingConfig(StrictModel):
    """Where and how much the daemon logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level."
    )
    journald: Literal["auto", "yes", "no"] = Field(
        default="auto", description="Log to the journal: `auto` when started by systemd."
    )


class LocationConfig(StrictModel):
    """A place, in the installer's own words (Chinese welcome). All parts are optional but a
    dispatcher must be able to find it: give at least a label."""

    label: str = Field(
        min_length=1, max_length=200, description="How the place is called, e.g. 急诊分诊台."
    )
    building: str | None = Field(default=None, max_length=100, description="Building, e.g. 门诊楼.")
    floor: str | None = Field(default=None, max_length=50, description="Floor, e.g. 1F or 一层.")
    room: str | None = Field(default=None, max_length=100, description="Room or area.")
    zone: str | None = Field(
        default=None,
        max_length=100,
        description="Key area class: ER, registration, cashier, entrance, corridor, ...",
    )
    cameras: list[Name] = Field(
        default_factory=list,
        description="Cameras linked to this place: listed in its alarms; those configured "
        "under `cameras` also give snapshots (and PTZ). A name not configured there is "
        "only listed (e.g. a camera recorded by the hospital's NVR).",
    )


if TYPE_CHECKING:
    InputConfig = DriverConfig
else:
    # one member per registered driver, selected by `type` (edgeguard.driver_registry)
    InputConfig = Annotated[
        functools.reduce(operator.or_, schemas().values()), Field(discriminator="type")
    ]


class EdgeguardConfig(StrictModel):
    """The whole configuration file."""

    version: Literal[1] = Field(default=1, description="Config format version.")
    site: SiteConfig = Field(description="This site.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="Police uplink.")
    signing: SigningConfig = Field(description="Message signing key.")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Event log.")
    control: ControlConfig = Field(default_factory=ControlConfig, description="Control socket.")
    receipts: ReceiptsConfig | None = Field(
        default=None,
        description="The police platform's receipts; default: none awaited (an alarm is "
        "done at the broker's PUBACK).",
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")
    locations: dict[Name, LocationConfig] = Field(
        default_factory=dict, description="Places, by key; inputs refer to them."
    )
    inputs: list[InputConfig] = Field(
        default_factory=list, description="Alarm inputs (drivers), each selected by `type`."
    )
    outputs: list[OutputConfig] = Field(
        default_factory=list,
        description="Sounders, strobes and relays switched by alarms "
        "(GPIO pins or Modbus coils), each with its rule.",
    )
    cameras: list[CameraConfig] = Field(
        default_factory=list,
        description="Cameras (RTSP or ONVIF): supervised, linked to alarm locations for "
        "snapshots and PTZ, their digital inputs usable as alarm inputs.",
    )
    video_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness added to each camera's capture process (decoding, analysis, "
        "clips) and to the person detector, so that video yields the CPU to the alarm path. "
        "0: the daemon's own priority. The ONVIF process (camera digital inputs) keeps it.",
    )
    console: WebConfig = Field(
        default_factory=WebConfig,
        description="The control-room web console served by `edgeguard run` (live alarms, "
        "reset, history, health); by default on http://127.0.0.1:8080/ only.",
    )
    sms: SmsConfig | None = Field(
        default=None,
        description="A GSM/4G modem that texts alarms (P1 by default) when no police broker "
        "has them within the failover time (docs/transmission-paths.md); omit for none.",
    )

    @model_validator(mode="after")
    def _cross_references(self) -> EdgeguardConfig:
        problems = self.reference_problems()
        if problems:
            raise ReferenceProblemsError(problems)
        return self

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Names used twice and locations that are not defined, with the path of each."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        sources: set[str] = set()
        for index, item in enumerate(self.inputs):
            here: tuple[str | int, ...] = ("inputs", index)
            if item.name in {i.name for i in self.inputs[:index]}:
                problems.append(((*here, "name"), f"input name {item.name!r} is used twice"))
            own_location = getattr(item, "location", None)
            if own_location is not None and own_location not in self.locations:
                problems.append(((*here, "location"), _undefined(own_location)))
            for source, point, path in _points_with_paths(item, here):
                if source.endswith(FAULT_SUFFIX):
                    problems.append(
                        (
                            path,
                            f"{source!r}: names ending in {FAULT_SUFFIX!r} are kept for "
                            "device-fault alarms",
                        )
                    )
                if source in sources:
                    problems.append((path, f"alarm source {source!r} is defined twice"))
                sources.add(source)
                if point.location not in self.locations and path != (*here,):
                    problems.append(((*path, "location"), _undefined(point.location)))
        problems.extend(self._output_problems())
        problems.extend(self._camera_problems(sources))
        return problems

    def _camera_problems(self, sources: set[str]) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        inputs = {item.name for item in self.inputs}
        for index, camera in enumerate(self.cameras):
            here: tuple[str | int, ...] = ("cameras", index)
            if camera.name in {c.name for c in self.cameras[:index]} or camera.name in inputs:
                problems.append(((*here, "name"), f"device name {camera.name!r} is used twice"))
            if camera.location not in self.locations:
                problems.append(((*here, "location"), _undefined(camera.location)))
            for key in camera.linked_locations:
                if key not in self.locations:
                    problems.append(((*here, "linked_locations"), _undefined(key)))
            for source, path in camera.own_sources():
                if source in sources:
                    problems.append(((*here, *path), f"alarm source {source!r} is defined twice"))
                if len(source) > MAX_SOURCE:
                    problems.append(
                        ((*here, *path), f"alarm source {source!r} is longer than {MAX_SOURCE}")
                    )
                sources.add(source)
            for i, point in enumerate(camera.inputs):
                if point.location not in self.locations:
                    problems.append(((*here, "inputs", i, "location"), _undefined(point.location)))
            zones = camera.analytics.zones if camera.analytics is not None else []
            for i, zone in enumerate(zones):
                if zone.location is not None and zone.location not in self.locations:
                    path = (*here, "analytics", "zones", i, "location")
                    problems.append((path, _undefined(zone.location)))
        return problems

    def cameras_for(self, location_key: str) -> list[str]:
        """Cameras linked to a location: its own `cameras` list, then the cameras that name it
        in `linked_locations`."""
        location = self.locations.get(location_key)
        linked = list(location.cameras) if location is not None else []
        for camera in self.cameras:
            if location_key in camera.linked_locations and camera.name not in linked:
                linked.append(camera.name)
        return linked

    def unconfigured_cameras(self) -> list[str]:
        """Camera names used by locations but not configured (listed only, no snapshots)."""
        known = {camera.name for camera in self.cameras}
        return sorted({name for loc in self.locations.values() for name in loc.cameras} - known)

    def _output_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        modbus = {item.name for item in self.inputs if item.has_coils}
        for index, output in enumerate(self.outputs):
            here: tuple[str | int, ...] = ("outputs", index)
            if output.name in {o.name for o in self.outputs[:index]}:
                problems.append(((*here, "name"), f"output name {output.name!r} is used twice"))
            if output.location is not None and output.location not in self.locations:
                problems.append(((*here, "location"), _undefined(output.location)))
            for key in output.rule.locations:
                if key not in self.locations:
                    problems.append(((*here, "rule", "locations"), _undefined(key)))
            if isinstance(output, ModbusCoilOutputConfig) and output.input not in modbus:
                problems.append(((*here, "input"), f"no `modbus` input named {output.input!r}"))
        return problems

    def points(self) -> dict[str, PointConfig]:
        """Every alarm source the inputs can raise, by source name."""
        found: dict[str, PointConfig] = {}
        for item in self.inputs:
            for source, point in input_points(item).items():
                if source in found:
                    raise ValueError(f"alarm source {source!r} is defined twice")
                found[source] = point
        return found

    def client_id(self) -> str:
        return self.mqtt.client_id or f"edgeguard-{self.site.id}"


class ReferenceProblemsError(ValueError):
    """Cross-reference errors, each with the key path it belongs to (mapped to YAML lines)."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def _undefined(location: str) -> str:
    return f"location {location!r} is not defined under `locations`"


def _points_with_paths(
    item: DriverConfig, here: tuple[str | int, ...]
) -> list[tuple[str, PointConfig, tuple[str | int, ...]]]:
    return [(source, point, (*here, *path)) for source, point, path in item.point_entries()]


def input_points(item: DriverConfig) -> dict[str, PointConfig]:
    """The sources an input config raises, without starting its driver."""
    return {source: point for source, point, _ in _points_with_paths(item, ())}
