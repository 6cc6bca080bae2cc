"""The driver contract, the only part of the core a driver needs (with edgeguard.config_base and
edgeguard.alarm_model): the config base model, the sink drivers report to, the base class, and the
capabilities the core looks for. Drivers depend on this module; the core never imports a
concrete driver (they are found through edgeguard.driver_registry)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar, runtime_checkable

from pydantic import Field

from edgeguard.alarm_model import Action, DeviceState, DeviceStatus, InputSignal
from edgeguard.config_base import Name, PointConfig, PointEntry, StrictModel
from edgeguard.ids import utc_now


class DriverConfig(StrictModel):
    """Fields every input shares. A driver's schema narrows ``type`` to ``Literal["its name"]``
    and names its driver class in ``implementation`` ("module:Class"), which is imported only
    when such an input starts: a schema stays light to import."""

    implementation: ClassVar[str]
    has_coils: ClassVar[bool] = False  # its driver is a CoilDriver (`modbus_coil` outputs)

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

    @classmethod
    def from_config(cls, config: C, sink: SignalSink, hardware: Mapping[str, Any]) -> Self:
        """How the daemon builds a driver. ``hardware`` holds what the daemon was given for
        devices by name (e.g. gpiozero's ``pin_factory`` in tests); a driver takes what it
        knows and ignores the rest."""
        return cls(config, sink)

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


OnRecorded = Callable[[], None]
OnFailed = Callable[[BaseException], None]


@runtime_checkable
class SoftwareButton(Protocol):
    """A driver pressed over the control socket (`edgeguard simulate press NAME`)."""

    def press(self, on_recorded: OnRecorded | None = None,
              on_failed: OnFailed | None = None) -> None: ...

    def release(self, on_recorded: OnRecorded | None = None,
                on_failed: OnFailed | None = None) -> None: ...


@runtime_checkable
class CoilDriver(Protocol):
    """A driver whose device has coils that `modbus_coil` outputs switch (blocking call)."""

    def set_coil(self, address: int, value: bool) -> None: ...
