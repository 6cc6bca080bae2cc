"""The Contact ID driver over a real pty: lines written to the master side as a panel would."""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edgeguard.alarm_model import Action, AlarmKind, DeviceState, InputSignal
from edgeguard.driver_api import DriverError, SetupFailure
from edgeguard.lab.serial_box_sim import open_pty, repoint_symlink
from edgeguard.lab.sinks import RecordingSink
from edgeguard_drivers.contact_id import ContactIdInput
from edgeguard_drivers.contact_id_config import ContactIdInputConfig
from edgeguard_drivers.contact_id_protocol import ACK, NAK, make_message, make_surgard_message

WAIT = 3.0
LOGGER = "edgeguard_drivers.contact_id"


class Panel:
    """The master side of the pty: what the panel or receiver writes, and what it reads back."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.received = bytearray()
        self.closed = False

    def send(self, data: bytes | str) -> None:
        os.write(self.fd, data.encode() if isinstance(data, str) else data)

    def line(self, text: str) -> None:
        self.send(text + "\r\n")

    def read_replies(self, count: int, timeout: float = WAIT) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                self.received += os.read(self.fd, 64)
        return bytes(self.received)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


@dataclass
class Rig:
    driver: ContactIdInput
    sink: RecordingSink
    panel: Panel
    port: str


ZONES: dict[Any, Any] = {
    5: {"location": "er-triage"},
    "012": {"location": "pharmacy", "name": "pharmacy-holdup", "kind": "duress"},
}
USERS: dict[Any, Any] = {3: {"location": "front-desk", "name": "nurse-3"}}


def make_config(port: str, **overrides: Any) -> ContactIdInputConfig:
    fields: dict[str, Any] = {
        "type": "contact_id",
        "name": "cid",
        "port": port,
        "location": "lobby",
        "zones": ZONES,
        "users": USERS,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
    }
    return ContactIdInputConfig.model_validate(fields | overrides)


@pytest.fixture
def make_rig(cleanup: list[Callable[[], None]]) -> Callable[..., Rig]:
    def make(*, auto_record: bool = True, **overrides: Any) -> Rig:
        master, port = open_pty()
        panel = Panel(master)
        cleanup.append(panel.close)
        sink = RecordingSink(auto_record=auto_record)
        driver = ContactIdInput(make_config(port, **overrides), sink)
        driver.start()
        cleanup.append(driver.stop)  # runs before panel.close
        assert sink.states() == [DeviceState.ONLINE]
        return Rig(driver, sink, panel, port)

    return make


def summary(signal: InputSignal) -> tuple[str, Action, AlarmKind, int, str]:
    return (signal.source, signal.action, signal.kind, signal.priority, signal.location)


# -- alarms -----------------------------------------------------------------------------------


def test_panic_then_restore_on_a_listed_zone(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    new = make_message(1234, 120, 5, group=1)
    rig.panel.line(new)
    rig.panel.line(make_message(1234, 120, 5, group=1, qualifier=3, spaces=True))
    assert rig.sink.wait_signals(2)
    assert [summary(s) for s in rig.sink.signals] == [
        ("cid-z005", Action.ACTIVE, AlarmKind.PANIC, 1, "er-triage"),
        ("cid-z005", Action.NORMAL, AlarmKind.PANIC, 1, "er-triage"),
    ]
    assert rig.sink.signals[0].detail == {
        "input": "cid",
        "port": rig.port,
        "account": "1234",
        "message_type": "18",
        "event_code": "120",
        "event": "Panic",
        "category": "panic",
        "qualifier": "new",
        "group": "01",
        "zone": "005",
        "raw": new,
    }
    assert rig.sink.signals[1].detail["qualifier"] == "restore"


def test_status_report_is_a_re_trigger(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.panel.line(make_message(1234, 130, 5, qualifier=6))
    assert rig.sink.wait_signals(1)
    signal = rig.sink.signals[0]
    assert summary(signal) == ("cid-z005", Action.ACTIVE, AlarmKind.INTRUSION, 2, "er-triage")
    assert signal.detail["qualifier"] == "status"


def test_duress_by_user(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.panel.line(make_message(1234, 121, 3, group=1))
    rig.panel.line(make_message(1234, 121, 9, group=1))  # an unlisted user
    assert rig.sink.wait_signals(2)
    assert [summary(s) for s in rig.sink.signals] == [
        ("nurse-3", Action.ACTIVE, AlarmKind.DURESS, 1, "front-desk"),
        ("cid-u009", Action.ACTIVE, AlarmKind.DURESS, 1, "lobby"),
    ]
    assert rig.sink.signals[0].detail["user"] == "003"
    assert "zone" not in rig.sink.signals[0].detail
    assert rig.sink.signals[1].detail["unknown_user"] is True


def test_zone_kind_replaces_the_code_kind_for_alarms(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.panel.line(make_message(1234, 133, 12))  # a hold-up button on a 24 h burglary zone
    assert rig.sink.wait_signals(1)
    assert summary(rig.sink.signals[0]) == (
        "pharmacy-holdup",
        Action.ACTIVE,
        AlarmKind.DURESS,
        1,
        "pharmacy",
    )


def test_unlisted_zone_still_raises(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rig = make_rig()
    rig.panel.line(make_message(1234, 130, 44))
    assert rig.sink.wait_signals(1)
    [signal] = rig.sink.signals
    assert summary(signal) == ("cid-z044", Action.ACTIVE, AlarmKind.INTRUSION, 2, "lobby")
    assert signal.detail["unknown_zone"] is True
    assert "unlisted zone 044" in caplog.text
    assert rig.driver.points()["cid-z044"].location == "lobby"


def test_troubles_have_their_own_source_per_code(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.panel.line(make_message(1234, 301, 0))  # AC loss
    rig.panel.line(make_message(1234, 302, 0))  # low battery
    rig.panel.line(make_message(1234, 301, 0, qualifier=3))  # AC restored
    rig.panel.line(make_message(1234, 376, 5))  # hold-up zone trouble on a listed zone
    assert rig.sink.wait_signals(4)
    assert [summary(s) for s in rig.sink.signals] == [
        ("cid-z000-301", Action.ACTIVE, AlarmKind.DEVICE_FAULT, 3, "lobby"),
        ("cid-z000-302", Action.ACTIVE, AlarmKind.DEVICE_FAULT, 3, "lobby"),
        ("cid-z000-301", Action.NORMAL, AlarmKind.DEVICE_FAULT, 3, "lobby"),
        ("cid-z005-376", Action.ACTIVE, AlarmKind.DEVICE_FAULT, 2, "er-triage"),
    ]
    assert rig.sink.signals[0].detail["category"] == "power"


def test_code_override(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(
        codes={"130": {"kind": "panic"}, 461: {"handling": "alarm", "kind": "intrusion"}}
    )
    rig.panel.line(make_message(1234, 130, 5))
    rig.panel.line(make_message(1234, 461, 5))  # wrong code entry: logged only by default
    assert rig.sink.wait_signals(2)
    assert [summary(s) for s in rig.sink.signals] == [
        ("cid-z005", Action.ACTIVE, AlarmKind.PANIC, 1, "er-triage"),
        ("cid-z005", Action.ACTIVE, AlarmKind.INTRUSION, 2, "er-triage"),
    ]


# -- no alarm -----------------------------------------------------------------------------------


def test_periodic_test_and_open_close_raise_nothing(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    rig = make_rig()
    rig.panel.line(make_message(1234, 602, 0))
    rig.panel.line(make_message(1234, 401, 3, qualifier=3))  # closing (armed) by user 3
    rig.panel.line(make_message(1234, 120, 5))  # in order: once this is here, so were the others
    assert rig.sink.wait_signals(1)
    assert [s.detail["event_code"] for s in rig.sink.signals] == ["120"]
    assert rig.driver.last_test is not None
    assert "Periodic test report" in caplog.text
    assert "Open/close by user 401 (closing)" in caplog.text
    assert rig.sink.states() == [DeviceState.ONLINE]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (make_message(1234, 120, 5)[:-1] + "0", "checksum: digit sum"),
        (make_message(1234, 120, 5)[:-1], "length: expected 16 digits"),
        ("\x00\xff line noise \x1b[2J", "chars"),
        (make_message(1234, 120, 5, message_type="28"), "message_type"),
        ("9" * 300, "length: line longer"),
    ],
    ids=["checksum", "short", "garbage", "message-type", "overlong"],
)
def test_rejected_lines_warn_and_raise_nothing(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture, raw: str, words: str
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rig = make_rig()
    rig.panel.send(raw.encode("latin-1") + b"\r\n")
    rig.panel.line(make_message(1234, 120, 5))
    assert rig.sink.wait_signals(1)
    time.sleep(0.05)
    assert len(rig.sink.signals) == 1  # only the good one
    [record] = [r for r in caplog.records if "rejected" in r.message]
    assert record.levelno == logging.WARNING
    assert words in record.message
    assert rig.port in record.message
    assert "\x00" not in caplog.text


def test_rejection_warnings_are_rate_limited(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rig = make_rig()
    bad = make_message(1234, 120, 5)[:-1] + "0"
    rig.panel.send((bad + "\n") * 30)
    rig.panel.line(make_message(1234, 120, 5))
    assert rig.sink.wait_signals(1)
    assert 1 <= len([r for r in caplog.records if "rejected" in r.message]) <= 5


def test_account_filter(make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rig = make_rig(account="1234")
    rig.panel.line(make_message(4321, 120, 5))
    rig.panel.line(make_message(1234, 120, 5))
    assert rig.sink.wait_signals(1)
    time.sleep(0.05)
    assert [s.detail["account"] for s in rig.sink.signals] == ["1234"]
    assert "account 4321" in caplog.text


# -- Sur-Gard framing ----------------------------------------------------------------------------


def test_surgard_ack_only_after_the_durable_write(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(auto_record=False, framing="surgard", bytesize=7, parity="E", baudrate=19200)
    line = make_surgard_message(1234, 121, 3, group=1)
    rig.panel.send(line)
    assert rig.sink.wait_signals(1)
    rig.panel.send(line)  # the receiver repeats: still being recorded, not raised again
    time.sleep(0.2)
    assert rig.panel.read_replies(1, timeout=0.1) == b""
    assert len(rig.sink.signals) == 1
    signal = rig.sink.signals[0]
    assert summary(signal) == ("nurse-3", Action.ACTIVE, AlarmKind.DURESS, 1, "front-desk")
    assert (signal.detail["receiver"], signal.detail["line"]) == ("01", "1")
    assert signal.on_recorded is not None
    signal.on_recorded()
    assert rig.panel.read_replies(1) == ACK


def test_surgard_heartbeat_garbage_and_failed_write(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(auto_record=False, framing="surgard")
    rig.panel.send(b"1011" + b" " * 11 + b"@    \x14")
    assert rig.panel.read_replies(1) == ACK  # at once: nothing to record
    rig.panel.send(b"5011 18zz\x14")
    assert rig.panel.read_replies(2) == ACK + NAK
    rig.panel.send(make_surgard_message(1234, 602, 0))
    assert rig.panel.read_replies(3) == ACK + NAK + ACK
    rig.panel.send(make_surgard_message(1234, 130, 5))
    assert rig.sink.wait_signals(1)
    on_failed = rig.sink.signals[0].on_failed
    assert on_failed is not None
    on_failed(OSError("disk full"))
    assert rig.panel.read_replies(4) == ACK + NAK + ACK + NAK  # the receiver will repeat it


def test_plain_framing_never_writes(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.panel.line(make_message(1234, 120, 5))
    rig.panel.line("garbage")
    assert rig.sink.wait_signals(1)
    assert rig.panel.read_replies(1, timeout=0.2) == b""


# -- the port ------------------------------------------------------------------------------------


def test_port_that_disappears_and_comes_back(
    tmp_path: Path, cleanup: list[Callable[[], None]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    link = tmp_path / "ttyPANEL"
    master, slave_path = open_pty()
    panel1 = Panel(master)
    cleanup.append(panel1.close)
    repoint_symlink(link, slave_path)
    sink = RecordingSink()
    driver = ContactIdInput(make_config(str(link)), sink)
    driver.start()
    cleanup.append(driver.stop)
    panel1.line(make_message(1234, 120, 5))
    assert sink.wait_signals(1)

    panel1.close()  # unplugged: the driver's reads fail with EIO
    assert sink.wait_states(DeviceState.ONLINE, DeviceState.OFFLINE)
    assert "lost" in caplog.text
    time.sleep(0.3)  # a few failed reopen attempts
    assert sink.states() == [DeviceState.ONLINE, DeviceState.OFFLINE]

    master2, slave_path2 = open_pty()
    panel2 = Panel(master2)
    cleanup.append(panel2.close)
    repoint_symlink(link, slave_path2)
    assert sink.wait_states(DeviceState.ONLINE, DeviceState.OFFLINE, DeviceState.ONLINE)
    panel2.line(make_message(1234, 120, 5, qualifier=3))
    assert sink.wait_signals(2)
    assert [s.action for s in sink.signals] == [Action.ACTIVE, Action.NORMAL]


def test_absent_port_at_start_is_offline(tmp_path: Path, cleanup: list[Callable[[], None]]) -> None:
    sink = RecordingSink()
    driver = ContactIdInput(make_config(str(tmp_path / "nothing")), sink)
    driver.start()
    cleanup.append(driver.stop)
    assert sink.states() == [DeviceState.OFFLINE]


def test_invalid_port_url_is_a_permanent_failure() -> None:
    sink = RecordingSink()
    driver = ContactIdInput(make_config("nosuchscheme://x"), sink)
    with pytest.raises(DriverError) as info:
        driver.start()
    assert info.value.failure is SetupFailure.PERMANENT
    assert sink.states() == [DeviceState.FAULT]
    driver.stop()


def test_stop_is_quick_and_idempotent(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(framing="surgard")
    assert len([t for t in threading.enumerate() if t.name.startswith("contact_id-cid-")]) == 2
    started = time.monotonic()
    rig.driver.stop()
    assert time.monotonic() - started < 1.0
    assert [t for t in threading.enumerate() if t.name.startswith("contact_id-cid-")] == []
    rig.driver.stop()
    rig.driver.start()  # and it restarts
    rig.panel.send(make_surgard_message(1234, 120, 5))
    assert rig.sink.wait_signals(1)


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"zones": {1000: {"location": "x"}}}, "0-999"),
        ({"zones": {"5a": {"location": "x"}}}, "should match pattern"),
        ({"name": "n" * 56}, "at most 55"),
        ({"reconnect_min": 5.0, "reconnect_max": 1.0}, "reconnect_max"),
        (
            {"zones": {1: {"location": "x", "name": "s"}, 2: {"location": "x", "name": "s"}}},
            "share",
        ),
        ({"zones": {1: {"location": "x", "name": "cid-z002"}}}, "default source name"),
        (
            {"zones": {1: {"location": "x", "name": "d"}, 2: {"location": "x", "name": "d-301"}}},
            "trouble source",
        ),
        ({"codes": {"401": {"handling": "alarm"}}}, "needs a kind"),
        ({"codes": {"1234": {"kind": "panic"}}}, "should match pattern"),
        ({"account": "12345"}, "should match pattern"),
        ({"framing": "sia"}, "Input should be"),
        ({"zones": {1: {"location": "x", "pin": 4}}}, "Extra inputs"),
    ],
)
def test_config_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_config("/dev/ttyUSB0", **overrides)


def test_config_defaults_and_names() -> None:
    config = ContactIdInputConfig.model_validate(
        {"type": "contact_id", "name": "panel", "port": "/dev/ttyUSB0", "location": "lobby"}
    )
    assert (config.baudrate, config.bytesize, config.parity, config.stopbits) == (9600, 8, "N", 1)
    assert (config.framing, config.account, config.zones, config.codes) == ("plain", None, {}, {})
    cfg = make_config("p", account="12a4")
    assert cfg.account == "1204"
    assert set(cfg.zones) == {"005", "012"}
    assert {source for source, _, _ in cfg.point_entries()} == {
        "cid-z005",
        "pharmacy-holdup",
        "nurse-3",
    }


def test_every_config_field_is_described() -> None:
    schema = ContactIdInputConfig.model_json_schema()
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
    for model in ("ContactIdZoneConfig", "CodeOverride"):
        for name, prop in schema["$defs"][model]["properties"].items():
            assert prop.get("description"), f"{model}.{name}"


def test_panel_without_periodic_test_is_a_fault(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(test_timeout=1.0)
    time.sleep(0.5)
    rig.panel.line(make_message(1234, 602, 0))  # a periodic test within the interval
    time.sleep(0.7)
    assert rig.sink.states() == [DeviceState.ONLINE]
    assert rig.sink.wait_states(DeviceState.ONLINE, DeviceState.FAULT)  # then silence
    assert "no periodic test" in str(rig.sink.statuses[-1].detail["error"])
    rig.panel.line(make_message(1234, 602, 0))
    assert rig.sink.wait_states(DeviceState.ONLINE, DeviceState.FAULT, DeviceState.ONLINE)
