"""The GPIO button driver on gpiozero's MockFactory: first-edge firing, lockout, NO/NC, and a
press through the whole daemon to the police subscriber."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from edgeguard.alarm_model import Action, DeviceStatus, InputSignal
from edgeguard.driver_api import DriverError
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import InProcessDaemon, PoliceSubscriber, make_site
from edgeguard_drivers.gpio import GpioButton
from edgeguard_drivers.gpio_config import GpioInputConfig


class Sink:
    def __init__(self) -> None:
        self.signals: list[InputSignal] = []
        self.statuses: list[DeviceStatus] = []
        self.changed = threading.Event()

    def submit(self, signal: InputSignal) -> None:
        self.signals.append(signal)
        self.changed.set()

    def device_status(self, status: DeviceStatus) -> None:
        self.statuses.append(status)

    def actions(self) -> list[Action]:
        return [s.action for s in self.signals]


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    yield mock
    mock.close()


def _button(factory: MockFactory, sink: Sink, **overrides: object) -> GpioButton:
    config = GpioInputConfig.model_validate(
        {"type": "gpio", "name": "er-button", "pin": 17, "location": "er", **overrides}
    )
    button = GpioButton(config, sink, pin_factory=factory)
    button.start()
    return button


def test_no_contact_fires_on_first_edge(factory: MockFactory) -> None:
    sink = Sink()
    button = _button(factory, sink, lockout=0.2)
    pin = factory.pin(17)
    assert sink.statuses[-1].state.value == "online"
    assert sink.actions() == [Action.NORMAL]  # the state found at start is reported
    pin.drive_low()  # NO contact to ground with pull-up: pressed
    assert sink.actions() == [Action.NORMAL, Action.ACTIVE]  # synchronously, no debounce delay
    for _ in range(5):  # contact bounce within the lockout is ignored
        pin.drive_high()
        pin.drive_low()
    assert sink.actions() == [Action.NORMAL, Action.ACTIVE]
    pin.drive_high()  # released during the lockout: reported when it ends
    deadline = time.monotonic() + 2
    while len(sink.signals) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.actions() == [Action.NORMAL, Action.ACTIVE, Action.NORMAL]
    assert sink.signals[1].kind.value == "panic"
    assert sink.signals[1].priority == 1
    button.stop()


def test_nc_contact_open_at_start_then_cut_wire(factory: MockFactory) -> None:
    """An NC loop found open at start-up (nothing wired, or cut) is reported at once."""
    sink = Sink()
    button = _button(factory, sink, pin=18, contact="NC", lockout=0)
    pin = factory.pin(18)
    assert sink.actions() == [Action.ACTIVE]  # pull-up, contact open: in alarm
    pin.drive_low()  # the loop is closed: normal
    assert sink.actions() == [Action.ACTIVE, Action.NORMAL]
    pin.drive_high()  # pressed, or the wire was cut
    assert sink.actions() == [Action.ACTIVE, Action.NORMAL, Action.ACTIVE]
    button.stop()


def test_pull_down_no_contact(factory: MockFactory) -> None:
    sink = Sink()
    button = _button(factory, sink, pin=19, pull="down", lockout=0)
    factory.pin(19).drive_high()  # contact to 3.3 V closes
    assert sink.actions() == [Action.NORMAL, Action.ACTIVE]
    button.stop()


def test_press_through_daemon_to_police(
    tmp_path: Path, broker: Mosquitto, factory: MockFactory
) -> None:
    site = make_site(
        tmp_path / "gpio",
        broker,
        inputs=[
            {"type": "gpio", "name": "er-button", "pin": 17, "location": "er", "lockout": 0.01}
        ],
    )
    with (
        PoliceSubscriber(broker, {site.site_id: site.public_key}) as police,
        InProcessDaemon(site.config(), pin_factory=factory) as daemon,
    ):
        daemon.wait_connected()
        factory.pin(17).drive_low()
        (alarm,) = police.wait_alarms(1)
        assert (alarm["source"], alarm["kind"], alarm["detail"]["pin"]) == (
            "er-button",
            "panic",
            "17",
        )
        time.sleep(0.05)
        factory.pin(17).drive_high()
        assert police.wait_alarms(2)[1]["message"] == "restored"


def test_supervision_loop_reports_a_cut_cable(factory: MockFactory) -> None:
    """A second pin on a normally closed loop: open (cut, box opened) → fault; closed → online.
    The button itself keeps working while the loop is open."""
    sink = Sink()
    button = _button(factory, sink, supervision_pin=27, lockout=0)
    loop = factory.pin(27)
    assert sink.statuses[-1].state.value == "fault"  # pulled up, nothing wired: open
    assert sink.statuses[-1].detail["reason"] == "supervision loop open"
    loop.drive_low()  # the loop is closed (to ground)
    assert sink.statuses[-1].state.value == "online"
    count = len(sink.statuses)
    loop.drive_low()  # no edge, no report
    assert len(sink.statuses) == count
    loop.drive_high()  # cut
    assert sink.statuses[-1].state.value == "fault"
    factory.pin(17).drive_low()  # the button still fires
    assert sink.actions() == [Action.NORMAL, Action.ACTIVE]
    button.stop()


def test_bad_supervision_pin_is_a_driver_error(factory: MockFactory) -> None:
    sink = Sink()
    with pytest.raises(DriverError, match="supervision pin"):
        _button(factory, sink, supervision_pin=17)  # the button's own pin, already in use
    assert sink.statuses[-1].state.value == "fault"


def test_cut_supervision_loop_reaches_the_police_as_device_fault(
    tmp_path: Path, broker: Mosquitto, factory: MockFactory
) -> None:
    button = {"type": "gpio", "name": "er-button", "pin": 17, "location": "er",
              "supervision_pin": 27, "lockout": 0.01}  # fmt: skip
    site = make_site(tmp_path / "gpio", broker, inputs=[button])
    factory.pin(27).drive_low()  # wired and closed before the daemon starts
    with (
        PoliceSubscriber(broker, {site.site_id: site.public_key}) as police,
        InProcessDaemon(site.config(), pin_factory=factory) as daemon,
    ):
        daemon.wait_connected()
        factory.pin(27).drive_high()  # the cable is cut
        (fault,) = police.wait_alarms(1)
        assert (fault["kind"], fault["source"]) == ("device_fault", "er-button-fault")
        assert fault["location"]["label"] == "急诊分诊台"
        factory.pin(27).drive_low()  # repaired
        assert police.wait_alarms(2)[1]["message"] in ("restored", "reset")
