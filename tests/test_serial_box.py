"""The serial button-box driver over a real pty, against the simulated box."""

from __future__ import annotations

import logging
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
from edgeguard.lab.serial_box_sim import SerialBoxSim, open_pty, repoint_symlink
from edgeguard.lab.sinks import RecordingSink
from edgeguard_drivers import serial_box
from edgeguard_drivers.serial_box import SerialButtonBox
from edgeguard_drivers.serial_box_config import SerialInputConfig
from edgeguard_drivers.serial_protocol import encode_ack, encode_frame, seal

REPEAT = 0.1  # the simulated box repeats un-ACKed frames this often
WAIT = 3.0  # upper bound for anything that should happen "at once"
LOGGER = "edgeguard_drivers.serial_box"


@dataclass
class Rig:
    driver: SerialButtonBox
    sink: RecordingSink
    box: SerialBoxSim
    port: str


DEVICES: dict[str, Any] = {
    "b1": {"location": "er-triage"},
    "desk": {"location": "icu", "kind": "duress", "priority": 2, "name": "icu-desk"},
}


def make_config(port: str, **overrides: Any) -> SerialInputConfig:
    fields: dict[str, Any] = {
        "type": "serial",
        "name": "box",
        "port": port,
        "location": "lobby",
        "devices": DEVICES,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
    }
    return SerialInputConfig.model_validate(fields | overrides)


@pytest.fixture
def make_rig(cleanup: list[Callable[[], None]]) -> Callable[..., Rig]:
    def make(*, auto_record: bool = True) -> Rig:
        master, port = open_pty()
        box = SerialBoxSim(master, repeat_interval=REPEAT)
        cleanup.append(box.close)
        sink = RecordingSink(auto_record=auto_record)
        driver = SerialButtonBox(make_config(port), sink)
        driver.start()
        cleanup.append(driver.stop)  # runs before box.close: no "port lost" at teardown
        assert sink.states() == [DeviceState.ONLINE]
        return Rig(driver, sink, box, port)

    return make


# -- the alarm path ------------------------------------------------------------------------------


def test_press_is_acked_only_after_the_durable_write(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(auto_record=False)
    seq = rig.box.press("b1")
    assert rig.sink.wait_signals(1)
    time.sleep(4 * REPEAT)  # the box repeats meanwhile; the write is "still going on"
    assert rig.box.acked == {}
    assert rig.box.sends[("b1", seq)] >= 3
    assert len(rig.sink.signals) == 1  # the repeats raised nothing

    signal = rig.sink.signals[0]
    assert signal.source == "box-b1"
    assert signal.action is Action.ACTIVE
    assert signal.kind is AlarmKind.PANIC
    assert signal.priority == 1
    assert signal.location == "er-triage"
    assert signal.detail == {
        "input": "box",
        "dev": "b1",
        "seq": seq,
        "port": rig.port,
        "event": "press",
    }
    assert signal.on_recorded is not None
    recorded_at = time.perf_counter()
    signal.on_recorded()
    assert rig.box.wait_acked(WAIT)
    assert rig.box.acked[("b1", seq)] > recorded_at
    assert rig.box.naks == []


def test_press_release_and_heartbeat(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.box.press("desk")
    rig.box.release("desk")
    rig.box.heartbeat("desk")
    assert rig.box.wait_acked(WAIT)
    assert [(s.source, s.action, s.kind, s.priority, s.location) for s in rig.sink.signals] == [
        ("icu-desk", Action.ACTIVE, AlarmKind.DURESS, 2, "icu"),
        ("icu-desk", Action.NORMAL, AlarmKind.DURESS, 2, "icu"),
    ]
    assert [s.detail["seq"] for s in rig.sink.signals] == [0, 1]


def test_heartbeat_is_acked_at_once_and_raises_nothing(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(auto_record=False)
    rig.box.heartbeat("b1")
    assert rig.box.wait_acked(WAIT)
    assert rig.sink.signals == []


def test_repeats_of_a_recorded_frame_are_acked_again_and_raise_once(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    frame = encode_frame("b1", 7, "PRESS")
    for count in (1, 2, 3):
        rig.box.send_raw(frame)
        assert rig.box.wait_replies(count, WAIT)
    assert [(r.kind, r.dev, r.seq) for r in rig.box.replies] == [("ACK", "b1", 7)] * 3
    assert len(rig.sink.signals) == 1


def test_repeats_during_the_write_are_ignored_until_it_completes(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(auto_record=False)
    frame = encode_frame("b1", 9, "PRESS")
    rig.box.send_raw(frame)
    assert rig.sink.wait_signals(1)
    rig.box.send_raw(frame)
    rig.box.send_raw(frame)
    time.sleep(3 * REPEAT)
    assert rig.box.replies == []
    on_recorded = rig.sink.signals[0].on_recorded
    assert on_recorded is not None
    on_recorded()
    assert rig.box.wait_replies(1, WAIT)
    time.sleep(3 * REPEAT)
    assert [(r.kind, r.dev, r.seq) for r in rig.box.replies] == [("ACK", "b1", 9)]
    assert len(rig.sink.signals) == 1


def test_failed_write_is_not_acked_and_the_repeat_is_raised_again(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    rig = make_rig(auto_record=False)
    seq = rig.box.press("b1")
    assert rig.sink.wait_signals(1)
    first = rig.sink.signals[0]
    assert first.on_failed is not None
    first.on_failed(OSError("disk full"))
    assert rig.sink.wait_signals(2)  # the box's next repeat
    assert rig.box.acked == {}
    second = rig.sink.signals[1]
    assert (second.source, second.detail["seq"]) == ("box-b1", seq)
    assert second.on_recorded is not None
    second.on_recorded()
    assert rig.box.wait_acked(WAIT)
    assert "could not be recorded (disk full)" in caplog.text


def test_submit_raising_is_logged_and_retried_on_the_repeat(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    rig = make_rig()
    calls = 0
    original = rig.sink.submit

    def flaky(signal: InputSignal) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bridge down")
        original(signal)

    rig.sink.submit = flaky  # type: ignore[method-assign]
    rig.box.press("b1")
    assert rig.box.wait_acked(WAIT)
    assert calls == 2
    assert len(rig.sink.signals) == 1
    assert "could not submit" in caplog.text


def test_unknown_device_still_raises_a_panic_alarm(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rig = make_rig()
    seq = rig.box.press("zz9")
    assert rig.box.wait_acked(WAIT)
    [signal] = rig.sink.signals
    assert signal.source == "box-zz9"
    assert (signal.action, signal.kind, signal.priority) == (Action.ACTIVE, AlarmKind.PANIC, 1)
    assert signal.location == "lobby"
    assert signal.detail["unknown_device"] is True
    assert (signal.detail["dev"], signal.detail["seq"]) == ("zz9", seq)
    assert "unlisted device 'zz9'" in caplog.text
    assert "box-zz9" in rig.driver.points()


# -- rejected lines ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "nak", "words"),
    [
        (b"$EGB1,b1,5,PRESS*0000\r\n", ("b1", 5, "crc"), "NAK crc: checksum 0000"),
        (b"$EGB1,b1,5,PRESS\r\n", (None, None, "format"), "NAK format"),
        (b"$EGB1,b1,5,PRESS*14\n", ("b1", 5, "format"), "4 hex digits"),
        (b"$EGB1,b\xe91,5,PRESS*1234\r\n", (None, None, "format"), "non-ASCII"),
        (seal("EGB1,b1,5,TAMPER"), ("b1", 5, "event"), "unsupported event 'TAMPER'"),
        (b"$EGB1," + b"A" * 300 + b"\r\n", (None, None, "length"), "NAK length"),
    ],
    ids=["crc", "no-star", "short-crc", "non-ascii", "event", "overlong"],
)
def test_rejected_lines_get_a_nak_and_one_warning(
    make_rig: Callable[..., Rig],
    caplog: pytest.LogCaptureFixture,
    raw: bytes,
    nak: tuple[str | None, int | None, str],
    words: str,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rig = make_rig()
    rig.box.send_raw(raw)
    rig.box.press("b1")  # the stream is in order: once this is ACKed, the NAK came before
    assert rig.box.wait_acked(WAIT)
    assert [(r.dev, r.seq, r.reason) for r in rig.box.naks] == [nak]
    assert len(rig.sink.signals) == 1  # only the press
    [record] = [r for r in caplog.records if r.name == LOGGER and "rejected" in r.message]
    assert record.levelno == logging.WARNING
    assert rig.port in record.message
    assert words in record.message
    assert "$EGB1," in record.message  # the line itself, through safe_text.preview
    assert not any(ord(ch) < 0x20 for ch in record.message)


def test_garbage_is_dropped_without_nak(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rig = make_rig()
    rig.box.send_raw(b"\x00\xff line noise \x1b[2J\r\n")
    rig.box.send_raw(encode_ack("b1", 3))  # our own ACK echoed back: no NAK ping-pong
    rig.box.press("b1")
    assert rig.box.wait_acked(WAIT)
    assert rig.box.naks == []
    assert len(rig.sink.signals) == 1
    garbage = [r.message for r in caplog.records if "without $EGB1" in r.message]
    assert len(garbage) == 2
    assert all(rig.port in message for message in garbage)
    assert "\\x00\\xff" in garbage[0]  # escaped, never raw
    assert "\x00" not in caplog.text


def test_rejection_warnings_are_rate_limited(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rig = make_rig()
    for _ in range(20):
        rig.box.send_raw(b"$EGB1,b1,5,PRESS*0000\r\n")
    assert rig.box.wait_naks(20, WAIT)  # every bad frame is NAKed ...
    logged = [r for r in caplog.records if "rejected" in r.message]
    assert 1 <= len(logged) <= 5  # ... but the log is not flooded


# -- the port ------------------------------------------------------------------------------------


def test_port_that_disappears_and_comes_back(
    tmp_path: Path, cleanup: list[Callable[[], None]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    link = tmp_path / "ttyBOX"
    master, slave_path = open_pty()
    box1 = SerialBoxSim(master, repeat_interval=REPEAT)
    cleanup.append(box1.close)
    repoint_symlink(link, slave_path)
    sink = RecordingSink()
    driver = SerialButtonBox(make_config(str(link)), sink)
    driver.start()
    cleanup.append(driver.stop)
    box1.press("b1")
    assert box1.wait_acked(WAIT)

    box1.close()  # unplugged: the driver's reads fail with EIO
    assert sink.wait_states(DeviceState.ONLINE, DeviceState.OFFLINE)
    assert "lost" in caplog.text
    time.sleep(0.3)  # a few failed reopen attempts
    assert sink.states() == [DeviceState.ONLINE, DeviceState.OFFLINE]

    master2, slave_path2 = open_pty()
    box2 = SerialBoxSim(master2, repeat_interval=REPEAT)  # a rebooted box: seq starts at 0 again
    cleanup.append(box2.close)
    repoint_symlink(link, slave_path2)
    assert sink.wait_states(DeviceState.ONLINE, DeviceState.OFFLINE, DeviceState.ONLINE)
    box2.press("b1")
    assert box2.wait_acked(WAIT)
    assert [(s.source, s.detail["seq"]) for s in sink.signals] == [("box-b1", 0), ("box-b1", 0)]
    assert box2.naks == []


def test_absent_port_at_start_is_offline_not_an_error(
    tmp_path: Path, cleanup: list[Callable[[], None]]
) -> None:
    link = tmp_path / "ttyBOX"
    sink = RecordingSink()
    driver = SerialButtonBox(make_config(str(link)), sink)
    driver.start()  # does not raise
    cleanup.append(driver.stop)
    assert sink.states() == [DeviceState.OFFLINE]
    assert "No such file" in sink.statuses[0].detail["error"]

    master, slave_path = open_pty()
    box = SerialBoxSim(master, repeat_interval=REPEAT)
    cleanup.append(box.close)
    repoint_symlink(link, slave_path)
    assert sink.wait_states(DeviceState.OFFLINE, DeviceState.ONLINE)
    box.press("b1")
    assert box.wait_acked(WAIT)
    assert len(sink.signals) == 1


def test_invalid_port_url_is_a_permanent_failure() -> None:
    sink = RecordingSink()
    driver = SerialButtonBox(make_config("nosuchscheme://x"), sink)
    with pytest.raises(DriverError) as info:
        driver.start()
    assert info.value.failure is SetupFailure.PERMANENT
    assert sink.states() == [DeviceState.FAULT]
    driver.stop()


def _driver_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("serial-box-")]


def test_stop_is_quick_closes_the_port_and_is_idempotent(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    assert len(_driver_threads()) == 2
    started = time.monotonic()
    rig.driver.stop()
    assert time.monotonic() - started < 1.0
    assert _driver_threads() == []
    rig.driver.stop()
    # The port is closed: the slave can be opened exclusively again, by a new driver.
    sink = RecordingSink()
    again = SerialButtonBox(make_config(rig.port), sink)
    again.start()
    again.stop()
    assert sink.states() == [DeviceState.ONLINE]


def test_restart_after_stop(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.driver.stop()
    rig.driver.start()
    rig.box.press("b1")
    assert rig.box.wait_acked(WAIT)
    assert len(rig.sink.signals) == 1


def _open_fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def test_pty_fds_are_closed(make_rig: Callable[..., Rig]) -> None:
    before = _open_fds()
    rig = make_rig()
    rig.box.press("b1")
    assert rig.box.wait_acked(WAIT)
    rig.driver.stop()
    rig.box.close()
    assert _open_fds() <= before


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"devices": {"a b": {"location": "x"}}}, "should match pattern"),
        ({"devices": {"-a": {"location": "x"}}}, "should match pattern"),
        ({"devices": {"x" * 17: {"location": "x"}}}, "should match pattern"),
        ({"name": "n" * 48}, "at most 47"),
        ({"reconnect_min": 5.0, "reconnect_max": 1.0}, "reconnect_max"),
        (
            {"devices": {"a": {"location": "x", "name": "s"}, "b": {"location": "x", "name": "s"}}},
            "share the name",
        ),
        ({"devices": {"a": {"location": "x", "name": "box-b"}}}, "default name of device 'b'"),
        ({"devices": {"a": {"location": "x", "pin": 4}}}, "Extra inputs"),
        ({"baudrate": 0}, "greater than 0"),
    ],
)
def test_config_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_config("/dev/ttyUSB0", **overrides)


def test_config_defaults_and_source_names() -> None:
    config = SerialInputConfig.model_validate(
        {"type": "serial", "name": "box", "port": "/dev/ttyUSB0", "location": "lobby"}
    )
    assert (config.baudrate, config.reconnect_min, config.reconnect_max) == (9600, 0.5, 10.0)
    assert config.devices == {}
    assert config.source_name("b7") == "box-b7"
    assert make_config("p").source_name("desk") == "icu-desk"
    assert make_config("p", devices={"a": {"location": "x", "name": "box-a"}})


def test_every_config_field_is_described() -> None:
    schema = SerialInputConfig.model_json_schema()
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
    device = schema["$defs"]["SerialDeviceConfig"]["properties"]
    assert all(prop.get("description") for prop in device.values())


def test_unlisted_devices_listed_are_bounded_and_still_raise_alarms(
    make_rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serial_box, "MAX_DISCOVERED", 3)
    rig = make_rig()
    for dev in ("u1", "u2", "u3", "u4", "u5"):
        rig.box.press(dev)
        assert rig.box.wait_acked(WAIT)
    assert [s.source for s in rig.sink.signals] == [f"box-u{i}" for i in range(1, 6)]
    unlisted = [name for name in rig.driver.points() if name.startswith("box-u")]
    assert unlisted == ["box-u1", "box-u2", "box-u3"]
