"""MQTT topics and payloads of the contract in docs/mqtt-api.md (schemas in docs/schema/)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from edgeguard import __version__
from edgeguard.alarm_model import SCHEMA_VERSION, MessageType, PoliceAction
from edgeguard.config import LocationConfig
from edgeguard.ids import iso_ms, utc_now
from edgeguard.store import AlarmRecord

TOPIC_ROOT = "edgeguard"


def alarm_topic(site: str, source: str) -> str:
    return f"{TOPIC_ROOT}/{site}/alarm/{source}"


def snapshot_topic(site: str, event_id: str, camera: str) -> str:
    return f"{TOPIC_ROOT}/{site}/snapshot/{event_id}/{camera}"


def device_topic(site: str, device: str) -> str:
    return f"{TOPIC_ROOT}/{site}/device/{device}"


def status_topic(site: str) -> str:
    return f"{TOPIC_ROOT}/{site}/status"


def heartbeat_topic(site: str) -> str:
    return f"{TOPIC_ROOT}/{site}/heartbeat"


def ack_topic(site: str) -> str:
    return f"{TOPIC_ROOT}/{site}/ack"


def location_payload(key: str, location: LocationConfig | None) -> dict[str, Any]:
    """The ``location`` object: the installer's words for where an alarm came from."""
    if location is None:
        return {"id": key, "label": key}
    out: dict[str, Any] = {"id": key, "label": location.label}
    for part in ("building", "floor", "room", "zone"):
        value = getattr(location, part)
        if value is not None:
            out[part] = value
    return out


def alarm_payload(
    record: AlarmRecord, message: MessageType, seq: int, site: str, site_name: str
) -> dict[str, Any]:
    """The unsigned alarm message for ``record`` as it stands now."""
    return {
        "v": SCHEMA_VERSION,
        "type": "alarm",
        "message": message.value,
        "event_id": record.event_id,
        "site": site,
        "site_name": site_name,
        "seq": seq,
        "kind": record.kind,
        "state": record.state,
        "priority": record.priority,
        "source": record.source,
        "location": record.location,
        "occurred_at": record.occurred_at,
        "updated_at": iso_ms(utc_now()),
        "input_active": record.input_active,
        "trigger_count": record.trigger_count,
        "restored_at": record.restored_at,
        "reset_at": record.reset_at,
        "reset_by": record.reset_by,
        "detail": record.detail,
        "cameras": record.cameras,
        "evidence": record.evidence,
    }


def status_payload(
    site: str, state: Literal["online", "offline"], started_at: datetime, uptime_s: float
) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "status",
        "site": site,
        "state": state,
        "version": __version__,
        "started_at": iso_ms(started_at),
        "uptime_s": round(uptime_s, 3),
        "at": iso_ms(utc_now()),
    }


def heartbeat_payload(
    site: str,
    counter: int,
    *,
    uptime_s: float,
    open_alarms: int,
    pending: int,
    log_head: tuple[int, str],
) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "heartbeat",
        "site": site,
        "counter": counter,
        "at": iso_ms(utc_now()),
        "uptime_s": round(uptime_s, 3),
        "open_alarms": open_alarms,
        "outbox_pending": pending,
        "log_head": {"id": log_head[0], "hash": log_head[1]},
    }


def device_payload(site: str, device: str, state: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "device",
        "site": site,
        "device": device,
        "state": state,
        "at": iso_ms(utc_now()),
        "detail": detail,
    }


class PoliceAck(BaseModel):
    """A police acknowledgement received on ``edgeguard/{site}/ack`` (validated input)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Annotated[str, AfterValidator(str.lower)] = Field(
        min_length=1, max_length=64, pattern=r"^[0-9a-fA-F-]+$"
    )
    state: PoliceAction
    by: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    at: AwareDatetime


class AckError(ValueError):
    """A police ack that is not UTF-8 JSON of a valid :class:`PoliceAck`."""


def parse_police_ack(payload: bytes) -> PoliceAck:
    """The ack in an MQTT payload, or :class:`AckError` saying why not."""
    try:
        return PoliceAck.model_validate(json.loads(payload.decode("utf-8")))
    # ValueError: also a number too long for int(); RecursionError: JSON nested too deep
    except (ValueError, RecursionError, ValidationError) as exc:
        raise AckError(str(exc)) from exc
