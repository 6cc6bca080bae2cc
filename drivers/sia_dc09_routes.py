"""Where the events of a DC-09 frame go: source, location, kind, priority, action. Tests
(RP, RX, Contact ID 602), openings, closings and unknown codes raise nothing and are logged."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from edgeguard.alarm_model import DEFAULT_PRIORITY, LATCHING_KINDS, Action, AlarmKind

from .contact_id_codes import Ccc, Handling, lookup
from .contact_id_protocol import Qualifier
from .sia_dc09_config import SiaDc09InputConfig
from .sia_dc09_events import CidEvent, SiaEvent, parse_adm, parse_sia, sia_code
from .sia_dc09_protocol import Frame

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    source: str
    location: str
    kind: AlarmKind
    priority: int
    action: Action
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Event:
    """A SIA or Contact ID event, reduced to what routing needs."""

    code: str  # the alarm code the event raises or restores (BA for BR; 130 for 3130)
    description: str
    category: str
    kind: AlarmKind
    priority: int
    restore: bool
    zone: int | None  # None: the account itself (no address, or a user event)
    detail: dict[str, Any]
    raw_zone: str | None = None  # a Contact ID zone with hex digits: no configured zone matches


def routes(config: SiaDc09InputConfig, frame: Frame, data: str, account: str) -> list[Route]:
    """The alarm routes of a frame's data (FrameError for data that cannot be read)."""
    base = {"account": account, "seq": frame.seq, "protocol": frame.ident, "line": frame.line}
    if frame.receiver is not None:
        base["receiver"] = frame.receiver
    if frame.ident == "NULL":
        logger.debug("sia_dc09 %s: NULL poll from %s", config.name, account)
        return []
    if frame.ident == "ADM-CID":
        _, cid = parse_adm(data, frame)
        events = [e for e in [_cid_event(config, cid, account)] if e is not None]
    else:
        _, sia = parse_sia(data, frame)
        events = [e for e in (_sia_event(config, s, account) for s in sia) if e is not None]
    return [_route(config, account, event, base) for event in events]


def _sia_event(config: SiaDc09InputConfig, event: SiaEvent, account: str) -> _Event | None:
    info = sia_code(event.code)
    if info.handling is not Handling.ALARM or info.kind is None:
        level = logging.WARNING if info.category == "unknown" else logging.INFO
        if info.handling is Handling.SUPERVISION:
            level = logging.DEBUG
        logger.log(level, "sia_dc09 %s: %s %s, account %s, area %s, zone %s", config.name,
                   info.description, event.code, account, event.area, event.address)
        return None
    detail: dict[str, Any] = {"sia_code": event.code, "event": info.description,
                              "category": info.category}
    if event.area:
        detail["area"] = event.area
    if event.user:
        detail["user"] = event.user
    return _Event(
        code=info.restores or info.code, description=info.description, category=info.category,
        kind=info.kind, priority=info.priority or DEFAULT_PRIORITY[info.kind],
        restore=info.restores is not None,
        zone=int(event.address) if event.address else None, detail=detail,
    )


def _cid_event(config: SiaDc09InputConfig, event: CidEvent, account: str) -> _Event | None:
    info = lookup(event.event_code)
    if info.handling is not Handling.ALARM or info.kind is None:
        level = logging.DEBUG if info.handling is Handling.SUPERVISION else logging.INFO
        logger.log(level, "sia_dc09 %s: %s %s (%s), account %s, %s %s", config.name,
                   info.description, event.event_code, event.qualifier.value, account,
                   info.ccc.value, event.ccc)
        return None
    detail: dict[str, Any] = {
        "event_code": event.event_code, "event": info.description, "category": info.category,
        "qualifier": event.qualifier.value, "group": event.group, info.ccc.value: event.ccc,
    }
    zone, raw_zone = None, None
    if info.ccc is Ccc.ZONE:
        if event.ccc.isdecimal():
            zone = int(event.ccc)
        else:
            raw_zone = event.ccc  # legal in Contact ID (hex digits B-F), never in our config
    return _Event(
        code=event.event_code, description=info.description, category=info.category,
        kind=info.kind, priority=info.priority or DEFAULT_PRIORITY[info.kind],
        restore=event.qualifier is Qualifier.RESTORE, zone=zone, detail=detail,
        raw_zone=raw_zone,
    )


def _route(config: SiaDc09InputConfig, account: str, event: _Event,
           base: dict[str, Any]) -> Route:
    acct = config.accounts[account]
    point = acct.zones.get(event.zone) if event.zone is not None else None
    kind, priority = event.kind, event.priority
    if event.raw_zone is not None:
        source, location = f"{config.account_source(account)}-z{event.raw_zone}", acct.location
    elif event.zone is None:
        source, location = config.account_source(account), acct.location
    else:
        source, location = config.zone_source(account, event.zone), acct.location
    if point is not None:
        location = point.location
        if kind in LATCHING_KINDS and "kind" in point.model_fields_set:
            kind, priority = point.kind, point.effective_priority()
        elif kind in LATCHING_KINDS and point.priority is not None:
            priority = point.priority
    if kind not in LATCHING_KINDS:
        source = f"{source}-{event.code}"
    detail = {**base, **event.detail}
    if event.zone is not None or event.raw_zone is not None:
        detail["zone"] = event.zone if event.zone is not None else event.raw_zone
        if point is None:
            detail["unknown_zone"] = True
    action = Action.NORMAL if event.restore else Action.ACTIVE
    return Route(source, location, kind, priority, action, detail)
