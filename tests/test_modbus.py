"""The Modbus digital-input driver against pymodbus' own server: over TCP on loopback, and over
RTU through a pair of ptys linked by a relay that can pace bytes at the line's baud rate."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from edgeguard.alarm_model import Action, AlarmKind, DeviceState
from edgeguard.lab.modbus_sim import UNIT, ModbusSlave, PtyLink
from edgeguard.lab.sinks import RecordingSink
from edgeguard_drivers.modbus import ModbusInput, PollError
from edgeguard_drivers.modbus_config import ModbusInputConfig

WAIT = 3.0  # upper bound for anything that should happen "at once"
SIZE = 64  # discrete inputs and coils the simulated module has (addresses 0..63)
LOGGER = "edgeguard_drivers.modbus"


@pytest.fixture
def slave(cleanup: list[Callable[[], None]]) -> ModbusSlave:
    server = ModbusSlave()
    cleanup.append(server.close)
    return server


INPUTS: dict[int, Any] = {
    3: {"location": "er-triage"},
    5: {"location": "icu", "kind": "duress", "contact": "NC", "name": "icu-desk"},
}


def tcp_config(port: int, **overrides: Any) -> ModbusInputConfig:
    fields: dict[str, Any] = {
        "type": "modbus",
        "name": "dio",
        "transport": "tcp",
        "host": "127.0.0.1",
        "port": port,
        "unit": UNIT,
        "location": "plant-room",
        "poll_interval": 0.02,
        "timeout": 0.3,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
        "inputs": INPUTS,
    }
    return ModbusInputConfig.model_validate(fields | overrides)


@pytest.fixture
def start_driver(
    cleanup: list[Callable[[], None]],
) -> Callable[[ModbusInputConfig], tuple[ModbusInput, RecordingSink]]:
    def start(config: ModbusInputConfig) -> tuple[ModbusInput, RecordingSink]:
        sink = RecordingSink()
        driver = ModbusInput(config, sink)
        driver.start()
        cleanup.append(driver.stop)  # runs before the server closes
        return driver, sink

    return start


StartDriver = Callable[[ModbusInputConfig], tuple[ModbusInput, RecordingSink]]
A, N = Action.ACTIVE, Action.NORMAL


# -- inputs -----------------------------------------------------------------------------------


def test_state_at_start_then_edges(slave: ModbusSlave, start_driver: StartDriver) -> None:
    slave.set_input(5, True)  # the NC loop is closed: normal
    driver, sink = start_driver(tcp_config(slave.port))
    # every input's state at the first poll, in alarm or not
    assert sink.wait_seen(("dio-di3", N), ("icu-desk", N))
    assert sink.states() == [DeviceState.ONLINE]
    assert sink.statuses[0].detail == {
        "driver": "modbus",
        "transport": "tcp",
        "endpoint": f"127.0.0.1:{slave.port}",
        "unit": UNIT,
    }
    assert driver.points().keys() == {"dio-di3", "icu-desk"}

    slave.set_input(3, True)  # NO contact closes: pressed
    assert sink.wait_seen(("dio-di3", N), ("icu-desk", N), ("dio-di3", A))
    pressed = sink.signals[-1]
    assert (pressed.kind, pressed.priority, pressed.location) == (AlarmKind.PANIC, 1, "er-triage")
    assert pressed.detail == {"input": "dio", "address": 3, "value": 1}
    slave.set_input(3, False)
    assert sink.wait_seen(("dio-di3", N), ("icu-desk", N), ("dio-di3", A), ("dio-di3", N))

    slave.set_input(5, False)  # NC contact opens (pressed, or the wire was cut)
    assert sink.wait(lambda: sink.seen()[-1] == ("icu-desk", A))
    duress = sink.signals[-1]
    assert (duress.kind, duress.priority, duress.location) == (AlarmKind.DURESS, 1, "icu")
    assert duress.detail["value"] == 0
    time.sleep(0.2)  # ten polls more: nothing changed, nothing reported
    assert len(sink.signals) == 5
    assert sink.states() == [DeviceState.ONLINE]
    assert driver.polls >= 10


def test_inputs_in_alarm_at_start(slave: ModbusSlave, start_driver: StartDriver) -> None:
    """A pressed NO button and an open NC loop (nothing wired) are both reported at once."""
    slave.set_input(3, True)
    _, sink = start_driver(tcp_config(slave.port))
    assert sink.wait_seen(("dio-di3", A), ("icu-desk", A))
    slave.set_input(5, True)  # the NC loop is closed: normal
    assert sink.wait_seen(("dio-di3", A), ("icu-desk", A), ("icu-desk", N))


def test_module_away_is_a_fault_and_its_return_clears_it(
    slave: ModbusSlave, start_driver: StartDriver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    slave.set_input(5, True)
    _, sink = start_driver(tcp_config(slave.port, failures_before_fault=3))
    assert sink.wait_seen(("dio-di3", N), ("icu-desk", N))

    slave.stop()
    assert sink.wait_states(DeviceState.ONLINE, DeviceState.FAULT)
    fault = sink.statuses[-1]
    assert fault.detail["failed_polls"] == 3
    assert fault.detail["endpoint"] == f"127.0.0.1:{slave.port}"
    assert fault.detail["error"]
    time.sleep(0.5)  # retried with back-off meanwhile: still one fault, no repeated reports
    assert sink.states() == [DeviceState.ONLINE, DeviceState.FAULT]

    slave.start()  # back, with all inputs reading 0: the NC loop reads open
    assert sink.wait_states(DeviceState.ONLINE, DeviceState.FAULT, DeviceState.ONLINE)
    # what changed while the module was away is reported when it answers again
    assert sink.wait_seen(("dio-di3", N), ("icu-desk", N), ("icu-desk", A))
    slave.set_input(3, True)
    assert sink.wait(lambda: sink.seen()[-1] == ("dio-di3", A))

    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert len(warnings) == 2  # the fault and the return, not every failed poll


def test_unreachable_module_at_start_is_reported_not_raised(start_driver: StartDriver) -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, sink = start_driver(tcp_config(port, failures_before_fault=2))
    assert sink.wait_states(DeviceState.FAULT)
    assert sink.statuses[0].detail["failed_polls"] == 2
    assert sink.signals == []  # no state known, none reported


def test_exception_response_is_a_fault(slave: ModbusSlave, start_driver: StartDriver) -> None:
    """An address the module does not have: it answers, but the inputs cannot be read."""
    config = tcp_config(slave.port, inputs={SIZE + 10: {"location": "er"}})
    _, sink = start_driver(config)
    assert sink.wait_states(DeviceState.FAULT)
    assert "illegal data address" in sink.statuses[0].detail["error"]


def test_silent_module_stops_within_a_second(start_driver: StartDriver) -> None:
    """A module that accepts the connection but never answers: each poll waits the full
    timeout; stop() still returns promptly."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        driver, sink = start_driver(
            tcp_config(port, timeout=1.0, failures_before_fault=1, poll_interval=0.01)
        )
        assert sink.wait_states(DeviceState.FAULT, timeout=WAIT)
        started = time.monotonic()
        driver.stop()
        assert time.monotonic() - started < 1.5
        with contextlib.suppress(OSError):
            listener.accept()[0].close()


# -- outputs ------------------------------------------------------------------------------------


def test_set_coil(slave: ModbusSlave, start_driver: StartDriver) -> None:
    driver, sink = start_driver(tcp_config(slave.port))
    assert sink.wait_states(DeviceState.ONLINE)
    driver.set_coil(7, True)
    assert slave.coil(7) is True
    assert slave.coil(6) is False
    driver.set_coil(7, False)
    assert slave.coil(7) is False

    # from several threads at once, interleaved with the polls
    errors: list[BaseException] = []

    def toggle(address: int) -> None:
        try:
            for _ in range(10):
                driver.set_coil(address, True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=toggle, args=(a,)) for a in (10, 11, 12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert errors == []
    assert [slave.coil(a) for a in (10, 11, 12)] == [True, True, True]
    assert sink.states() == [DeviceState.ONLINE]

    with pytest.raises(PollError, match="illegal data address"):
        driver.set_coil(SIZE + 10, True)
    with pytest.raises(ValueError, match="0-65535"):
        driver.set_coil(70000, True)
    driver.stop()
    with pytest.raises(PollError, match="not started"):
        driver.set_coil(7, True)


def test_set_coil_when_module_away(slave: ModbusSlave, start_driver: StartDriver) -> None:
    driver, sink = start_driver(tcp_config(slave.port))
    assert sink.wait_states(DeviceState.ONLINE)
    slave.stop()
    with pytest.raises(PollError):
        driver.set_coil(1, True)


# -- RTU ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("baud", [None, 9600], ids=["pty", "paced-9600"])
def test_rtu_over_a_pty_pair(
    cleanup: list[Callable[[], None]], start_driver: StartDriver, baud: int | None
) -> None:
    link = PtyLink(baud)
    cleanup.append(link.close)
    slave = ModbusSlave(serial_port=link.paths[0])
    cleanup.append(slave.close)
    config = ModbusInputConfig.model_validate(
        {
            "type": "modbus",
            "name": "rtu",
            "transport": "rtu",
            "port": link.paths[1],
            "baudrate": 9600,
            "unit": UNIT,
            "location": "plant-room",
            "poll_interval": 0.05,
            "inputs": {0: {"location": "er"}, 9: {"location": "icu", "contact": "NC"}},
        }
    )
    driver, sink = start_driver(config)
    assert sink.wait_seen(("rtu-di0", N), ("rtu-di9", A))
    assert sink.statuses[0].detail["endpoint"] == link.paths[1]
    slave.set_input(0, True)
    slave.set_input(9, True)
    assert sink.wait(lambda: set(sink.seen()[2:]) == {("rtu-di0", A), ("rtu-di9", N)})
    driver.set_coil(2, True)
    assert slave.coil(2) is True
    polls = driver.polls
    time.sleep(0.5)
    assert driver.polls - polls >= 8  # 20 polls/s asked for; 10 in half a second, some slack
    assert sink.states() == [DeviceState.ONLINE]


# -- config -------------------------------------------------------------------------------------


def _config(**fields: Any) -> ModbusInputConfig:
    base: dict[str, Any] = {
        "type": "modbus",
        "name": "dio",
        "location": "plant",
        "inputs": {0: {"location": "er"}},
    }
    return ModbusInputConfig.model_validate(base | fields)


def test_config_defaults() -> None:
    tcp = _config(transport="tcp", host="10.0.0.5")
    assert (tcp.port, tcp.unit, tcp.poll_interval, tcp.failures_before_fault) == (502, 1, 0.05, 3)
    assert tcp.endpoint == "10.0.0.5:502"
    assert tcp.source_name(0) == "dio-di0"
    assert _config(transport="tcp", host="h", port="1502").port == 1502
    rtu = _config(transport="rtu", port="/dev/ttyUSB0", parity="E", stopbits=2)
    assert (rtu.baudrate, rtu.parity, rtu.stopbits, rtu.bytesize) == (9600, "E", 2, 8)
    assert rtu.endpoint == "/dev/ttyUSB0"
    # JSON keys are strings: addresses still come out as ints
    assert list(_config(transport="tcp", host="h", inputs={"17": {"location": "er"}}).inputs) == [
        17
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"transport": "tcp"}, "needs `host`"),
        ({"transport": "rtu"}, "needs `port`"),
        ({"transport": "rtu", "port": 5}, "needs `port`"),
        ({"transport": "rtu", "port": "/dev/x", "host": "h"}, "only for transport tcp"),
        ({"transport": "tcp", "host": "h", "baudrate": 19200}, "only for transport rtu"),
        ({"transport": "tcp", "host": "h", "port": "serial"}, "port number"),
        ({"transport": "tcp", "host": "h", "port": 70000}, "1-65535"),
        ({"transport": "tcp", "host": "h", "unit": 0}, "greater than or equal to 1"),
        ({"transport": "tcp", "host": "h", "unit": 248}, "less than or equal to 247"),
        ({"transport": "tcp", "host": "h", "inputs": {}}, "at least 1 item"),
        ({"transport": "tcp", "host": "h", "inputs": {65536: {"location": "er"}}}, "65535"),
        (
            {
                "transport": "tcp",
                "host": "h",
                "inputs": {0: {"location": "a"}, 2000: {"location": "b"}},
            },
            "span 2001 addresses",
        ),
        (
            {
                "transport": "tcp",
                "host": "h",
                "inputs": {1: {"location": "a", "name": "x"}, 2: {"location": "b", "name": "x"}},
            },
            "share the source name",
        ),
        (
            {
                "transport": "tcp",
                "host": "h",
                "inputs": {1: {"location": "a", "name": "dio-di2"}, 2: {"location": "b"}},
            },
            "share the source name",
        ),
        ({"transport": "tcp", "host": "h", "name": "m" * 62}, "not a valid name"),
        ({"transport": "tcp", "host": "h", "reconnect_min": 2, "reconnect_max": 1}, "reconnect"),
        ({"transport": "tcp", "host": "h", "timeout": 2}, "less than or equal to 1"),
        ({"transport": "udp", "host": "h"}, "transport"),
    ],
)
def test_config_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _config(**fields)


def test_long_name_with_named_inputs_is_fine() -> None:
    config = _config(
        transport="tcp", host="h", name="m" * 62, inputs={0: {"location": "er", "name": "b"}}
    )
    assert config.source_name(0) == "b"


def test_every_field_is_described() -> None:
    schema = ModbusInputConfig.model_json_schema()
    for model in [schema, *schema.get("$defs", {}).values()]:
        for field, spec in model.get("properties", {}).items():
            assert spec.get("description"), f"{model.get('title')}.{field} has no description"
