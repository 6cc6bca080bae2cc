"""Outputs switched by alarms: a control-room buzzer on a GPIO pin sounds for any P1 alarm
until it is reset, stays silent where the button was pressed, ignores less urgent alarms; a
relay on a Modbus coil follows its rule."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from edgeguard.control import call
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import InProcessDaemon, make_site
from edgeguard.lab.modbus_sim import UNIT, ModbusSlave


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _open_alarm(socket: Path) -> dict[str, object]:
    (alarm,) = call(socket, {"cmd": "status"})["open_alarms"]
    return dict(alarm)


def test_buzzer_sounds_until_reset_and_not_at_the_source(tmp_path: Path,
                                                         broker: Mosquitto) -> None:
    factory = MockFactory()
    site = make_site(tmp_path / "out", broker, inputs=[
        {"type": "simulated", "name": "er-button", "location": "er"},
        {"type": "simulated", "name": "test-button", "location": "er", "kind": "test"},
    ])
    site.data["outputs"] = [
        {"type": "gpio", "name": "control-room-buzzer", "pin": 22, "location": "cashier"},
        {"type": "gpio", "name": "er-siren", "pin": 23, "location": "er"},
    ]
    site.write()
    buzzer, siren = factory.pin(22), factory.pin(23)
    with InProcessDaemon(site.config(), pin_factory=factory) as running:
        running.wait_connected()
        socket = site.socket
        assert call(socket, {"cmd": "press", "input": "er-button"})["ok"]
        assert _wait(lambda: buzzer.state == 1)
        assert siren.state == 0  # silent where the button was pressed
        assert call(socket, {"cmd": "release", "input": "er-button"})["ok"]
        time.sleep(0.2)
        assert buzzer.state == 1  # latched: until a person resets the alarm
        event_id = _open_alarm(socket)["event_id"]
        assert call(socket, {"cmd": "reset", "event_id": event_id, "by": "李保安"})["ok"]
        assert _wait(lambda: buzzer.state == 0)
        # a test alarm (priority 4) does not sound the P1 buzzer
        assert call(socket, {"cmd": "press", "input": "test-button"})["ok"]
        time.sleep(0.3)
        assert buzzer.state == 0
    factory.close()


def test_modbus_coil_relay_until_restored(tmp_path: Path, broker: Mosquitto) -> None:
    module = ModbusSlave()
    try:
        site = make_site(tmp_path / "coil", broker, inputs=[
            {"type": "simulated", "name": "er-button", "location": "er"},
            {"type": "modbus", "name": "dio", "transport": "tcp", "host": "127.0.0.1",
             "port": module.port, "unit": UNIT, "location": "cashier", "timeout": 0.3,
             "inputs": {0: {"location": "cashier"}}},
        ])
        site.data["outputs"] = [{"type": "modbus_coil", "name": "strobe", "input": "dio",
                                 "address": 10, "rule": {"until": "restored"}}]
        site.write()
        with InProcessDaemon(site.config()) as running:
            running.wait_connected()
            assert _wait(lambda: call(site.socket, {"cmd": "status"})["ok"])
            assert call(site.socket, {"cmd": "press", "input": "er-button"})["ok"]
            assert _wait(lambda: module.coil(10))
            assert call(site.socket, {"cmd": "release", "input": "er-button"})["ok"]
            assert _wait(lambda: not module.coil(10))
    finally:
        module.close()


def test_output_config_errors(tmp_path: Path) -> None:
    from edgeguard.config_loader import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text(
        "site: {id: s, name: n}\nsigning: {private_key: /k}\nlocations: {er: {label: x}}\n"
        "outputs:\n"
        "  - {type: modbus_coil, name: r, input: nowhere, address: 1}\n"
        "  - {type: gpio, name: b, pin: 5, location: moon}\n", encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        issues = [str(i) for i in exc.issues]
    else:
        issues = []
    assert f"{path}:5: outputs[0].input: no `modbus` input named 'nowhere'" in issues
    assert f"{path}:6: outputs[1].location: location 'moon' is not defined under `locations`" \
        in issues
