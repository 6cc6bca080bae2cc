"""The `contact_id` input's config: an alarm panel's serial output, its zones, users and code
overrides."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from edgeguard.alarm_model import DEFAULT_PRIORITY, AlarmKind
from edgeguard.config_base import Name, PointConfig, PointEntry, StrictModel

from .contact_id_codes import Ccc, CodeInfo, Handling, lookup
from .serial_link_config import SerialLinkConfig

MAX_POINT_NAME = 64 - 4  # "<point>-<code>" must still be a 64-character Name
MAX_INPUT_NAME = MAX_POINT_NAME - 5  # "<input>-z015"
_DIGITS = "0123456789BCDEF"


def _three_digits(value: Any) -> Any:
    """Zone/user keys: 5, "5" and "005" all mean "005"."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 999:
            raise ValueError(f"zone and user numbers are 0-999, not {value}")
        return f"{value:03d}"
    if isinstance(value, str) and value.isdecimal() and len(value) <= 3:
        return value.zfill(3)
    return value


def _code_key(value: Any) -> Any:
    """Event-code keys: 121 and "121" both mean "121"; the digit A is written 0."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 999:
        return f"{value:03d}"
    return value.upper().replace("A", "0") if isinstance(value, str) else value


CccKey = Annotated[str, BeforeValidator(_three_digits), Field(pattern=r"^[0-9]{3}$")]
EventCode = Annotated[str, BeforeValidator(_code_key), Field(pattern=r"^[0-9B-F]{3}$")]
Account = Annotated[
    str,
    BeforeValidator(lambda v: _code_key(v) if isinstance(v, str) else v),
    Field(pattern=r"^[0-9B-F]{4}$"),
]


class ContactIdZoneConfig(PointConfig):
    """One zone (or user) of the panel: where it is, and optionally its source name."""

    kind: AlarmKind = Field(
        default=AlarmKind.PANIC,
        description="Only when given: the kind of this zone's (user's) alarm events (codes whose "
        "kind is panic, duress or intrusion), instead of the code table's. Troubles keep theirs.",
    )
    priority: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="Only when given: the priority of this zone's (user's) alarm events. "
        "Default: the code table's, or that of `kind` when `kind` is given.",
    )
    name: Name | None = Field(
        default=None,
        max_length=MAX_POINT_NAME,
        description="Source name in alarms and status (at most 60 characters). Default: "
        "`<input name>-z<zone>` for zones, `<input name>-u<user>` for users, 3 digits.",
    )


class CodeOverride(StrictModel):
    """Changes to the built-in handling of one event code."""

    handling: Literal["alarm", "log"] | None = Field(
        default=None,
        description="`alarm`: raise (qualifier 1, 6) and restore (3) an alarm; `log`: only log "
        "it. Default: from the code table.",
    )
    kind: AlarmKind | None = Field(
        default=None, description="Alarm kind for this code. Default: from the code table."
    )
    priority: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="Priority 1-4 for this code. Default: the table's, or the default of "
        "`kind` when `kind` is given.",
    )
    ccc: Ccc | None = Field(
        default=None,
        description="Whether the message's CCC field is a `zone` or a `user` number for this "
        "code. Default: user for 121 (duress) and most 4xx codes, zone otherwise.",
    )


class ContactIdInputConfig(SerialLinkConfig):
    """An alarm panel or receiver printing Ademco Contact ID messages on a serial port."""

    implementation: ClassVar[str] = "edgeguard_drivers.contact_id:ContactIdInput"

    type: Literal["contact_id"] = Field(description="Driver type: `contact_id`.")
    bytesize: Literal[7, 8] = Field(default=8, description="Data bits: 7 or 8.")
    parity: Literal["N", "E", "O"] = Field(
        default="N", description="Parity: `N` none, `E` even, `O` odd."
    )
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits: 1 or 2.")
    framing: Literal["plain", "surgard"] = Field(
        default="plain",
        description="`plain`: one 16-digit message per line (CR, LF or CRLF), optionally with "
        "spaces between fields; nothing is sent back. `surgard`: Sur-Gard/MLR2 automation "
        "output (`5RRL 18AAAAQXYZGGCCC` + DC4); each message is answered with ACK (0x06) "
        "after it is recorded, the heartbeat at once.",
    )
    account: Account | None = Field(
        default=None,
        description="Only this account's messages raise alarms (4 digits); others are logged "
        "and ignored. Default: every account is accepted, and the account is in each alarm's "
        "detail (zones of different accounts then share source names).",
    )
    location: Name = Field(
        description="Location key of zones and users not listed under `zones`/`users`. An "
        "alarm from an unlisted zone is still raised, here, marked `unknown_zone`.",
    )
    zones: dict[CccKey, ContactIdZoneConfig] = Field(
        default_factory=dict,
        description='Zones by number (0-999; `5` or `"005"`), each with its location and '
        "optional source name. A zone's `kind`/`priority`, when given, replace the code "
        "table's for its panic, duress and intrusion alarms (not for troubles).",
    )
    users: dict[CccKey, ContactIdZoneConfig] = Field(
        default_factory=dict,
        description="Users by number, for events that report a user in CCC (121 duress).",
    )
    codes: dict[EventCode, CodeOverride] = Field(
        default_factory=dict,
        description='Per event code (3 digits, e.g. `"133"`): changes to the built-in table.',
    )
    test_timeout: float | None = Field(
        default=None,
        ge=1.0,
        le=7 * 86400.0,
        description="Seconds within which the panel must send a periodic test (602); a longer "
        "silence reports the panel `fault`, which raises a `device_fault` alarm at `location`, "
        "until the next test. Set it above the panel's test interval (e.g. 25 h for a daily "
        "test). Default: not supervised.",
    )

    @model_validator(mode="after")
    def check_config(self) -> Self:
        if len(self.name) > MAX_INPUT_NAME:
            raise ValueError(
                f"contact_id input name must be at most {MAX_INPUT_NAME} characters, so that "
                "'<name>-z<zone>-<code>' fits in 64"
            )
        self._check_sources()
        for code in self.codes:
            info = self.code_info(code)
            if info.handling is Handling.ALARM and info.kind is None:
                raise ValueError(f"codes[{code!r}]: handling 'alarm' needs a kind")
        return self

    def _check_sources(self) -> None:
        seen: dict[str, str] = {}
        for ref, table in ((Ccc.ZONE, self.zones), (Ccc.USER, self.users)):
            for number in table:
                source = self.point_source(ref, number)
                what = f"{ref.value} {number}"
                if source in seen:
                    raise ValueError(f"{seen[source]} and {what} share the name {source!r}")
                seen[source] = what
        defaults = re.compile(rf"{re.escape(self.name)}-[zu][0-9B-F]{{3}}(-[0-9B-F]{{3}})?")
        for source, what in seen.items():
            own = f"{self.name}-{what[0]}{what.split()[-1]}"
            if source != own and defaults.fullmatch(source):
                raise ValueError(f"{what}: name {source!r} looks like a default source name")
            base, _, code = source.rpartition("-")
            if base in seen and len(code) == 3 and all(c in _DIGITS for c in code):
                raise ValueError(f"{what}: name {source!r} is a trouble source of {seen[base]}")

    def serial_options(self) -> dict[str, Any]:
        return {"bytesize": self.bytesize, "parity": self.parity, "stopbits": self.stopbits}

    def point_source(self, ref: Ccc, number: str) -> str:
        """Source name of a zone or user: its configured ``name`` or ``<input>-z005``."""
        point = self.point(ref, number)
        if point is not None and point.name is not None:
            return point.name
        return f"{self.name}-{'z' if ref is Ccc.ZONE else 'u'}{number}"

    def point(self, ref: Ccc, number: str) -> ContactIdZoneConfig | None:
        return (self.zones if ref is Ccc.ZONE else self.users).get(number)

    def point_entries(self) -> list[PointEntry]:
        """The listed zones and users (troubles and unlisted zones appear only at run time)."""
        return [
            *((self.point_source(Ccc.ZONE, n), z, ("zones", n)) for n, z in self.zones.items()),
            *((self.point_source(Ccc.USER, n), u, ("users", n)) for n, u in self.users.items()),
        ]

    def code_info(self, code: str) -> CodeInfo:
        """The table's row for ``code`` with this input's override applied."""
        info = lookup(code)
        override = self.codes.get(code)
        if override is None:
            return info
        kind = override.kind if override.kind is not None else info.kind
        priority = override.priority
        if priority is None:
            priority = DEFAULT_PRIORITY[override.kind] if override.kind else info.priority
        handling = Handling(override.handling) if override.handling else info.handling
        if handling is Handling.ALARM and priority is None and kind is not None:
            priority = DEFAULT_PRIORITY[kind]
        return dataclasses.replace(
            info,
            handling=handling,
            kind=kind,
            priority=priority,
            ccc=override.ccc if override.ccc is not None else info.ccc,
        )
