"""Config of the SIA DC-09 receiver input (`type: sia_dc09`, docs/drivers/sia-dc09.md)."""

from __future__ import annotations

import binascii
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from edgeguard.alarm_model import AlarmKind
from edgeguard.config_base import Name, PointConfig, PointEntry, StrictModel
from edgeguard.driver_api import DriverConfig
from edgeguard.secrets import Secret

from .sia_dc09_protocol import KEY_SIZES

MAX_INPUT_NAME = 20  # "<input>-<account up to 16>-z<zone up to 6>-<code>" fits in 64
MAX_ACCOUNT_NAME = 64 - 12  # room for "-z123456-BA"


def _upper(value: Any) -> Any:
    """Account keys: 1234 and "1234" mean "1234"; hex digits in upper case."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.upper() if isinstance(value, str) else value


def _zone(value: Any) -> Any:
    """Zone keys: 5, "5" and "005" all mean zone 5."""
    if isinstance(value, str) and value.isdecimal():
        return int(value)
    return value


AccountKey = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[0-9A-F]{3,16}$")]
ZoneKey = Annotated[int, BeforeValidator(_zone), Field(ge=0, le=999999)]


class SiaZoneConfig(PointConfig):
    """One zone of an account: where it is, and optionally its source name."""

    kind: AlarmKind = Field(
        default=AlarmKind.PANIC,
        description="Only when given: the kind of this zone's panic, duress and intrusion "
        "events, instead of the code's. Troubles keep theirs.",
    )
    priority: int | None = Field(
        default=None, ge=1, le=4,
        description="Only when given: the priority of this zone's alarm events.",
    )
    name: Name | None = Field(
        default=None, max_length=MAX_ACCOUNT_NAME,
        description="Source name in alarms. Default: `<account source>-z<zone>`.",
    )


class SiaAccountConfig(StrictModel):
    """One communicator account (the `#acct` of its frames)."""

    location: Name = Field(
        description="Location of the account: of its supervision fault and of zones not "
        "listed under `zones` (those alarms are marked `unknown_zone`).",
    )
    name: Name | None = Field(
        default=None, max_length=MAX_ACCOUNT_NAME,
        description="Source name of the account. Default: `<input name>-<account>`.",
    )
    key: Secret | None = Field(
        default=None,
        description="AES key of the account: a secret ({env}, {credential} or {file} "
        "recommended), never logged. With a key, only encrypted frames (`*SIA-DCS`, ...) are "
        "accepted from the account; without, only clear ones.",
    )
    key_encoding: Literal["hex", "ascii"] = Field(
        default="hex",
        description="`hex`: the key is 32, 48 or 64 hex digits (AES-128/192/256). `ascii`: the "
        "key's 16, 24 or 32 characters are the key bytes (how Ajax hubs and pysiaalarm take it).",
    )
    supervision: float | None = Field(
        default=None, ge=10.0, le=7 * 86400.0,
        description="Seconds within which the account must send something (a NULL poll or "
        "any event); a longer silence raises `device_fault` at `location` until it is heard "
        "again. Set it above the communicator's poll interval. Default: not supervised.",
    )
    zones: dict[ZoneKey, SiaZoneConfig] = Field(
        default_factory=dict,
        description="Zones by number (SIA address or Contact ID zone), each with its location "
        "and optional source name.",
    )

    def key_bytes(self) -> bytes | None:
        if self.key is None:
            return None
        text = self.key.get_secret_value()
        if self.key_encoding == "ascii":
            return text.encode("utf-8")
        try:
            return binascii.unhexlify(text)
        except (binascii.Error, ValueError):
            raise ValueError("key: not hex digits (or set key_encoding: ascii)") from None

    @model_validator(mode="after")
    def check_key(self) -> Self:
        key = self.key_bytes()
        if key is not None and len(key) not in KEY_SIZES:
            raise ValueError(
                f"key: {len(key)} bytes; AES keys are 16, 24 or 32 bytes "
                "(32, 48 or 64 hex digits with key_encoding hex)"
            )
        return self


class SiaDc09InputConfig(DriverConfig):
    """A SIA DC-09 receiver: IP alarm communicators report to it over TCP and UDP."""

    implementation: ClassVar[str] = "edgeguard_drivers.sia_dc09:SiaDc09Input"

    type: Literal["sia_dc09"] = Field(description="Driver type: `sia_dc09`.")
    name: Name = Field(
        max_length=MAX_INPUT_NAME,
        description="Unique name of this input (at most 20 characters); also its device name.",
    )
    host: str = Field(
        min_length=1,
        description="Address to listen on (TCP and UDP): the LAN address the communicators "
        "reach, or 0.0.0.0 for every interface.",
    )
    port: int = Field(ge=0, le=65535, description="Port to listen on (TCP and UDP).")
    tcp: bool = Field(default=True, description="Listen on TCP.")
    udp: bool = Field(default=True, description="Listen on UDP.")
    max_connections: int = Field(
        default=32, ge=1, le=1024, description="Open TCP connections at most; more are closed."
    )
    idle_timeout: float = Field(
        default=120.0, ge=1.0, le=86400.0,
        description="Seconds after which a silent TCP connection is closed.",
    )
    max_age: float = Field(
        default=40.0, ge=1.0, le=3600.0,
        description="Frames stamped more than this many seconds in the past are refused with a "
        "NAK carrying our time (DC-09: 40 s).",
    )
    max_ahead: float = Field(
        default=20.0, ge=1.0, le=3600.0,
        description="Frames stamped more than this many seconds in the future are refused the "
        "same way (DC-09: 20 s).",
    )
    accounts: dict[AccountKey, SiaAccountConfig] = Field(
        min_length=1,
        description='Accounts by their hex number (3-16 digits, quote leading zeros: "0123"). '
        "Frames of other accounts are answered DUH and raise nothing.",
    )

    @model_validator(mode="after")
    def check_config(self) -> Self:
        if not (self.tcp or self.udp):
            raise ValueError("sia_dc09: enable tcp, udp or both")
        seen: dict[str, str] = {}
        for source, _, path in self.point_entries():
            what = "/".join(str(p) for p in path)
            if source in seen:
                raise ValueError(f"{seen[source]} and {what} share the source name {source!r}")
            seen[source] = what
        return self

    def account_source(self, account: str) -> str:
        config = self.accounts.get(account)
        if config is not None and config.name is not None:
            return config.name
        return f"{self.name}-{account}"

    def zone_source(self, account: str, zone: int) -> str:
        point = self.accounts[account].zones.get(zone)
        if point is not None and point.name is not None:
            return point.name
        return f"{self.account_source(account)}-z{zone}"

    def point_entries(self) -> list[PointEntry]:
        """Each account (kind device_fault: its supervision) and each listed zone."""
        entries: list[PointEntry] = []
        for account, config in self.accounts.items():
            point = PointConfig(location=config.location, kind=AlarmKind.DEVICE_FAULT)
            entries.append((self.account_source(account), point, ("accounts", account)))
            for zone, zone_config in config.zones.items():
                path = ("accounts", account, "zones", zone)
                entries.append((self.zone_source(account, zone), zone_config, path))
        return entries
