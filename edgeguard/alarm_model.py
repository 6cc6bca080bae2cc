"""The event model: alarm kinds, lifecycle states, priorities and input signals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1


class AlarmKind(StrEnum):
    PANIC = "panic"
    DURESS = "duress"
    CROWD = "crowd"
    LOITERING = "loitering"
    INTRUSION = "intrusion"
    CAMERA_OFFLINE = "camera_offline"
    CAMERA_TAMPER = "camera_tamper"
    DEVICE_FAULT = "device_fault"
    TEST = "test"


# 1 = life safety, same scale as GB/T 28181 alarm priority.
DEFAULT_PRIORITY: dict[AlarmKind, int] = {
    AlarmKind.PANIC: 1,
    AlarmKind.DURESS: 1,
    AlarmKind.INTRUSION: 2,
    AlarmKind.CROWD: 2,
    AlarmKind.LOITERING: 3,
    AlarmKind.CAMERA_TAMPER: 3,
    AlarmKind.CAMERA_OFFLINE: 3,
    AlarmKind.DEVICE_FAULT: 3,
    AlarmKind.TEST: 4,
}

# Kinds that stay active after their input returns to normal until a person resets them
# (GB 50394 5.2.3). Technical alarms clear themselves when the condition clears.
LATCHING_KINDS = frozenset({AlarmKind.PANIC, AlarmKind.DURESS, AlarmKind.INTRUSION})


class AlarmState(StrEnum):
    """Lifecycle of an alarm. The order of the members is the order of progress."""

    ACTIVE = "active"
    DELIVERED = "delivered"  # the broker has it (its PUBACK)
    RECEIVED = "received"  # the police platform stored it (its signed receipt)
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    RESET = "reset"

    @property
    def rank(self) -> int:
        return list(AlarmState).index(self)


class MessageType(StrEnum):
    """What an alarm message on the wire says about its alarm."""

    NEW = "new"
    UPDATE = "update"
    RESTORED = "restored"
    RESET = "reset"
    EVIDENCE = "evidence"


class PoliceAction(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"


class Action(StrEnum):
    """What an input reports: its contact went into alarm, or returned to normal."""

    ACTIVE = "active"
    NORMAL = "normal"


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class InputSignal:
    """One observation from an input driver, handed to the alarm path through the bridge.

    ``on_recorded`` is called on the event loop after the signal is durably written
    (serial boxes answer their ACK from it); ``on_failed`` if it could not be written.
    """

    source: str
    action: Action
    kind: AlarmKind
    priority: int
    location: str
    occurred_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    on_recorded: Callable[[], None] | None = None
    on_failed: Callable[[BaseException], None] | None = None


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """Health of a device (an input driver, a serial box, a camera), published retained."""

    device: str
    state: DeviceState
    detail: dict[str, Any] = field(default_factory=dict)
