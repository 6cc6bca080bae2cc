"""A Modbus TCP input module through the whole daemon: an input toggled on pymodbus' own
server reaches the police as an alarm; the module going away raises `device_fault`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, make_site
from edgeguard.lab.modbus_sim import UNIT, ModbusSlave


@pytest.fixture
def module() -> Iterator[ModbusSlave]:
    slave = ModbusSlave()
    yield slave
    slave.close()


def test_modbus_input_alarm_and_module_fault(
        tmp_path: Path, broker: Mosquitto, module: ModbusSlave) -> None:
    site = make_site(tmp_path / "mb", broker, inputs=[{
        "type": "modbus", "name": "dio", "transport": "tcp", "host": "127.0.0.1",
        "port": module.port, "unit": UNIT, "location": "cashier", "timeout": 0.3,
        "reconnect_min": 0.1, "reconnect_max": 0.5,
        "inputs": {3: {"location": "er", "kind": "panic"}}}])
    daemon = DaemonProcess(site)
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        daemon.start()
        try:
            module.set_input(3, True)
            (alarm,) = police.wait_alarms(1)
            assert (alarm["source"], alarm["kind"], alarm["location"]["label"]) == \
                ("dio-di3", "panic", "急诊分诊台")
            module.stop()
            assert police.wait_for(lambda p: any(a["kind"] == "device_fault"
                                                 for a in p.alarms()), timeout=10)
            fault = next(a for a in police.alarms() if a["kind"] == "device_fault")
            assert (fault["source"], fault["location"]["label"]) == ("dio-fault", "收费处")
        finally:
            daemon.stop()
