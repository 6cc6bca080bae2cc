"""Supervision of a serial button box: a listed button silent for longer than
`supervision_timeout` makes the box report `fault`, which reaches the police as a
`device_fault` alarm at the box's location; hearing it again clears the alarm."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, make_site
from edgeguard.lab.serial_box_sim import SerialBoxSim, open_pty


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, port = open_pty()
    yield master, port
    with contextlib.suppress(OSError):
        os.close(master)


def test_silent_button_raises_device_fault_and_clears(
        tmp_path: Path, broker: Mosquitto, pty: tuple[int, str]) -> None:
    master, port = pty
    site = make_site(tmp_path / "sup", broker, inputs=[{
        "type": "serial", "name": "box", "port": port, "location": "cashier",
        "supervision_timeout": 1.5, "devices": {"01": {"location": "cashier"}}}])
    daemon = DaemonProcess(site)
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police, \
            SerialBoxSim(master, close_fd=False) as box:
        daemon.start()
        try:
            for _ in range(4):  # heard every 0.5 s: no fault
                box.heartbeat("01")
                time.sleep(0.5)
            assert not police.alarms()
            # silence: within about 1.5 s the box is reported faulty
            assert police.wait_for(lambda p: bool(p.alarms()), timeout=5)
            (fault,) = police.alarms()
            assert (fault["kind"], fault["source"], fault["message"]) == \
                ("device_fault", "box-fault", "new")
            assert fault["detail"]["silent"] == ["01"]
            assert fault["location"]["label"] == "收费处"
            box.heartbeat("01")
            assert police.wait_for(lambda p: len(p.alarms()) == 2, timeout=5)
            cleared = police.alarms()[1]
            assert (cleared["message"], cleared["state"]) == ("reset", "reset")
            assert "every device heard again" in daemon.log_text()
        finally:
            daemon.stop()
