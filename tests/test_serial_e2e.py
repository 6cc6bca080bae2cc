"""A serial button box through the whole daemon: the box's press reaches the police; the ACK
comes only after the durable write; garbage never raises an alarm."""

from __future__ import annotations

import contextlib
import os
import sqlite3
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
    with contextlib.suppress(OSError):  # the simulator may have closed it
        os.close(master)


def test_box_press_reaches_police_and_is_acked_after_write(
    tmp_path: Path, broker: Mosquitto, pty: tuple[int, str]
) -> None:
    master, port = pty
    site = make_site(
        tmp_path / "box",
        broker,
        inputs=[
            {
                "type": "serial",
                "name": "box",
                "port": port,
                "location": "cashier",
                "devices": {"01": {"location": "cashier", "kind": "duress"}},
            }
        ],
    )
    daemon = DaemonProcess(site)
    with (
        PoliceSubscriber(broker, {site.site_id: site.public_key}) as police,
        SerialBoxSim(master, close_fd=False) as box,
    ):
        daemon.start()
        try:
            box.send_raw(b"\x00\xffgarbage\r\n$EGB1,01,7,PRESS*0000\r\n$EGB1,01,8,PRE\r\n")
            assert box.wait_naks(2, timeout=5)
            seq = box.press("01")
            assert box.wait_ack("01", seq, timeout=5)
            with sqlite3.connect(site.db) as conn:  # the ACK came after the row was written
                recorded = conn.execute(
                    "SELECT count(*) FROM alarms WHERE source = 'box-01'"
                ).fetchone()[0]
            assert recorded == 1
            (alarm,) = police.wait_alarms(1)
            assert (alarm["kind"], alarm["source"], alarm["detail"]["seq"]) == (
                "duress",
                "box-01",
                seq,
            )
            assert alarm["location"]["label"] == "收费处"
            assert not police.wait_for(lambda p: len(p.alarms()) > 1, timeout=1)
            assert "crc" in daemon.log_text()
        finally:
            daemon.stop()
