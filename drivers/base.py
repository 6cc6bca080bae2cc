"""The driver contract: config base models, the sink drivers report to, and the base class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from edgeguard.ids import utc_now
from edgeguard.model import (
    DEFAULT_PRIORITY,
    Action,
    AlarmKind,
    DeviceState,
    DeviceStatus,
    InputSignal,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="Identifier: letters, digits, '-' and '_', up to 64 characters; "
        "used in MQTT topics, so no spaces, '/', '+' or '#'.",
    ),
]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class PointConfig(StrictModel):
    """What an alarm point raises: its kind, priority and where it is."""

    location: Name = Field(description="Key of the location (under `locations`) this point is at.")
    kind: AlarmKind = Field(
        default=AlarmKind.PANIC,
        description="Alarm kind raised when the point goes into alarm (panic, duress, intrusion, "
        "test, ...).",
    )
    priority: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="Priority 1-4 (1 = life safety). Default: by kind (panic and duress 1, "
        "intrusion 2, faults 3, test 4).",
    )

    def effective_priority(self) -> int:
        return self.priority if self.priority is not None else DEFAULT_PRIORITY[self.kind]


PointEntry = tuple[str, PointConfig, tuple[str | int, ...]]


class DriverConfig(StrictModel):
    """Fields every input shares."""

    type: str = Field(description="Driver type.")
    name: Name = Field(description="Unique name of this input; also its device name in status.")
    enabled: bool = Field(
        default=True, description="Set false to keep an input configured but off."
    )

    def point_entries(self) -> list[PointEntry]:
        """The alarm sources this input raises: (source name, its point config, the key path of
        that point within this input's config). A single-point input is its own point."""
        if isinstance(self, PointConfig):
            return [(self.name, self, ())]
        return []


class SignalSink(Protocol):
    """Where drivers report. Implementations are thread-safe: call from any thread."""

    def submit(self, signal: InputSignal) -> None: ...

    def device_status(self, status: DeviceStatus) -> None: ...


class SetupFailure(StrEnum):
    """How a driver failed to start (Home Assistant's classification)."""

    RETRY = "retry"  # hardware not there yet, port busy: try again later
    PERMANENT = "permanent"  # configuration cannot work: report, do not retry


class DriverError(Exception):
    """A driver could not start or run; ``failure`` says whether retrying can help."""

    def __init__(self, message: str, failure: SetupFailure = SetupFailure.RETRY) -> None:
        super().__init__(message)
        self.failure = failure


C = TypeVar("C", bound=DriverConfig)


class InputDriver(ABC, Generic[C]):
    """Base class of input drivers.

    ``start`` sets the hardware up and returns quickly (threads for blocking I/O are the
    driver's own); ``stop`` releases everything and is safe to call twice.
    """

    type_name: ClassVar[str]

    def __init__(self, config: C, sink: SignalSink) -> None:
        self.config = config
        self.sink = sink

    @property
    def name(self) -> str:
        return self.config.name

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def points(self) -> dict[str, PointConfig]:
        """The alarm sources this driver can raise, by source name."""

    def signal(self, source: str, action: Action, point: PointConfig | None = None,
               **detail: Any) -> InputSignal:
        """Build a signal for one of this driver's points (or for ``point``), stamped now."""
        point = point if point is not None else self.points()[source]
        return InputSignal(
            source=source,
            action=action,
            kind=point.kind,
            priority=point.effective_priority(),
            location=point.location,
            occurred_at=utc_now(),
            detail={"input": self.name, **detail},
        )

    def report(self, state: DeviceState, **detail: Any) -> None:
        self.sink.device_status(DeviceStatus(device=self.name, state=state, detail=detail))
