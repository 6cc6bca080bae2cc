"""Configuration of the police receiver, `edgeguard police -c FILE` (pydantic v2, strict:
unknown keys are errors, every field described)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from edgeguard.config import ClusterEndpoint, LoggingConfig, TlsConfig
from edgeguard.config_base import Name, StrictModel
from edgeguard.config_loader import ConfigError, load_model
from edgeguard.secrets import Secret
from edgeguard.web.config import WebConfig

MAX_LOST_AFTER_S = 17.0  # docs/mqtt-api.md section 8: 3 x heartbeat interval must stay <= 17 s
GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class PoliceMqttConfig(ClusterEndpoint):
    """The receiver's link to the police broker (MQTT 5, persistent session). Its TLS client
    certificate's CN is `police` for the broker's ACL (docs/mqtt-api.md section 10)."""

    keepalive: int = Field(
        default=8,
        ge=2,
        le=8,
        description="Keepalive seconds: at most 8, so that a dead broker link is noticed within "
        "the 20 s supervision target.",
    )
    reconnect_max: float = Field(default=10.0, gt=0, description="Longest reconnect delay (s).")


class PostgresConfig(StrictModel):
    """The city platform's PostgreSQL database (docs/city-platform.md): shared by every
    receiver and dashboard instance; it then also holds the dashboard's users and sessions."""

    dsn: Secret = Field(
        description="libpq connection string or URI, e.g. `host=db.example port=5432 "
        "dbname=edgeguard user=edgeguard sslmode=verify-full` (the password in the string, "
        "or as {file: PATH} / {credential: NAME} of the whole string). Never logged.",
    )
    pool_min: int = Field(default=1, ge=1, le=64, description="Connections kept open.")
    pool_max: int = Field(default=8, ge=1, le=256, description="Most connections at once.")
    connect_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds to wait for a connection."
    )


class AmqpConfig(StrictModel):
    """The city platform's intake: the receiver reads the sites' MQTT messages from the
    RabbitMQ cluster over AMQP (docs/city-platform.md) instead of holding an MQTT session.
    Alarms come from one quorum queue shared by every receiver (each message to one of them,
    acknowledged after the database commit); status, heartbeats and device states come to
    every receiver on a queue of its own; acks and receipts go out to `amq.topic`."""

    nodes: list[str] = Field(
        min_length=1,
        max_length=16,
        description="The cluster's AMQP listeners, `host:port` each, tried in turn; the "
        "receiver moves to the next when its node fails.",
    )
    username: str = Field(default="police", min_length=1, description="AMQP user.")
    password: Secret | None = Field(default=None, description="AMQP password.")
    vhost: str = Field(default="/", description="RabbitMQ virtual host.")
    tls: TlsConfig | None = Field(default=None, description="TLS (amqps); omit for plain TCP.")
    queue_prefix: str = Field(
        default="edgeguard-police.",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Names of the receivers' queues: `{prefix}alarms` (shared, quorum) and "
        "`{prefix}supervision.{receiver_id}` (this receiver's own).",
    )
    prefetch: int = Field(
        default=1000,
        ge=2,
        le=10_000,
        description="Alarm messages a receiver holds unacknowledged at once; it stores them in "
        "transactions of half as many (the next half arrives while one is stored).",
    )
    reconnect_s: float = Field(
        default=1.0, gt=0, le=60, description="Pause before trying the next node (s)."
    )

    @field_validator("nodes")
    @classmethod
    def _host_ports(cls, nodes: list[str]) -> list[str]:
        for node in nodes:
            host, _, port = node.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{node!r} is not host:port")
        if len(set(nodes)) != len(nodes):
            raise ValueError("nodes are listed twice")
        return nodes


class SitePolicy(StrictModel):
    """What the police side knows about one site out of band."""

    name: str | None = Field(
        default=None,
        max_length=128,
        description="Display name; default: the `site_name` the site sends in its alarms.",
    )
    heartbeat_interval: float = Field(
        default=5.0,
        gt=0,
        le=MAX_LOST_AFTER_S / 3,
        description="The site's `mqtt.heartbeat_interval` (s); it is not in the payload. The "
        "site is lost after 3 x this without a heartbeat (at most 17 s).",
    )


class PoliceConfig(StrictModel):
    """The whole police receiver configuration file."""

    receiver_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="MQTT client id of this receiver. Must be stable: the broker keeps the "
        "persistent session (alarms queued while the receiver is down) under it. Two receivers "
        "must have different ids.",
    )
    mqtt: PoliceMqttConfig = Field(
        default_factory=PoliceMqttConfig, description="The police broker."
    )
    mqtt_secondary: PoliceMqttConfig | None = Field(
        default=None,
        description="A second police broker, for sites with a second transmission path "
        "(docs/transmission-paths.md): a second link into the same handler, so an alarm sent "
        "on both paths is stored and shown once (dedupe by site, event_id, seq).",
    )
    shared_group: str | None = Field(
        default=None,
        pattern=GROUP_PATTERN,
        description="MQTT 5 shared subscription group: receivers with the same group share the "
        "alarm and snapshot load (each message goes to one of them). They must share one "
        "database file (same host). Status, heartbeats and device states are always "
        "subscribed by every receiver.",
    )
    keys_dir: Path = Field(
        description="Folder of the sites' public keys, `{site id}.pub` (made by "
        "`edgeguard keygen` at each site). Messages of a site without a key are rejected."
    )
    receipt_key: Path | None = Field(
        default=None,
        description="The police platform's Ed25519 private key (made by `edgeguard keygen`): "
        "with it, every alarm message gets a signed receipt on `edgeguard/{site}/receipt` "
        "once it is stored (docs/mqtt-api.md, Receipts); give its `.pub` to the sites. Every "
        "receiver of one platform uses the same key. Default: no receipts.",
    )
    sites: dict[Name, SitePolicy] = Field(
        default_factory=dict,
        description="Per-site settings (display name, heartbeat interval), by site id; sites "
        "not listed use the defaults and lost_after_s.",
    )
    database: Path = Field(
        default=Path("/var/lib/edgeguard-police/police.db"),
        description="SQLite database of alarms, sites, police actions and security warnings.",
    )
    postgres: PostgresConfig | None = Field(
        default=None,
        description="Keep the police store in PostgreSQL instead of the SQLite `database` "
        "(the city platform; needs the `city` extra). `database`'s folder still holds the "
        "snapshots unless `snapshots_dir` says otherwise.",
    )
    amqp: AmqpConfig | None = Field(
        default=None,
        description="Receive from a RabbitMQ cluster over AMQP as one of several competing "
        "receivers (the city platform; needs `postgres` and the `city` extra) instead of the "
        "MQTT link `mqtt`.",
    )
    snapshots_dir: Path | None = Field(
        default=None,
        description="Where received snapshots are kept as {site}/{event_id}/{camera}.jpg; "
        "default: `snapshots/` beside the database.",
    )
    lost_after_s: float = Field(
        default=15.0,
        gt=0,
        le=MAX_LOST_AFTER_S,
        description="A site not listed under `sites` is lost after this many seconds without a "
        "heartbeat: 3 x its heartbeat interval (5 s by default), at most 17 s.",
    )
    web: WebConfig = Field(
        default_factory=lambda: WebConfig(port=8090), description="The police dashboard."
    )
    logging: LoggingConfig = Field(
        default_factory=LoggingConfig, description="Where and how much the receiver logs."
    )

    @model_validator(mode="after")
    def _amqp_needs_postgres(self) -> PoliceConfig:
        if self.amqp is not None and self.postgres is None:
            raise ValueError("`amqp` needs `postgres`: competing receivers share one database")
        return self

    @field_validator("sites")
    @classmethod
    def _no_police_site(cls, sites: dict[str, SitePolicy]) -> dict[str, SitePolicy]:
        if "police" in sites:
            raise ValueError("site ids must not be `police` (the receiver's broker user)")
        return sites

    def snapshots_path(self) -> Path:
        return self.snapshots_dir or self.database.parent / "snapshots"

    def lost_after(self, site: str) -> float:
        """Seconds without a heartbeat after which ``site`` is lost."""
        policy = self.sites.get(site)
        return 3 * policy.heartbeat_interval if policy is not None else self.lost_after_s


def load_police_config(path: Path | str) -> PoliceConfig:
    """Read and validate a police config file; raise ConfigError listing every problem with
    its file:line and key path."""
    return load_model(PoliceConfig, path)


__all__ = [
    "AmqpConfig",
    "ConfigError",
    "PoliceConfig",
    "PoliceMqttConfig",
    "PostgresConfig",
    "SitePolicy",
    "load_police_config",
]
