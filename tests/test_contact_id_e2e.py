"""An alarm panel's Contact ID output through the whole daemon: a 120 panic on a listed zone
reaches the police at the zone's location, its restore follows; a corrupted line raises
nothing."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, make_site
from edgeguard.lab.serial_box_sim import open_pty
from edgeguard_drivers.contact_id_protocol import Qualifier, make_message


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, port = open_pty()
    yield master, port
    with contextlib.suppress(OSError):
        os.close(master)


def test_panel_panic_reaches_police(tmp_path: Path, broker: Mosquitto,
                                    pty: tuple[int, str]) -> None:
    master, port = pty
    site = make_site(tmp_path / "cid", broker, inputs=[{
        "type": "contact_id", "name": "panel", "port": port, "location": "cashier",
        "zones": {"5": {"location": "er"}}}])
    daemon = DaemonProcess(site)
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        daemon.start()
        try:
            panic = make_message(1234, 120, 5)
            corrupt = panic[:-1] + ("0" if panic[-1] != "0" else "1")
            os.write(master, f"{corrupt}\r\n{panic}\r\n".encode())
            (alarm,) = police.wait_alarms(1)
            assert (alarm["kind"], alarm["source"], alarm["location"]["label"]) == \
                ("panic", "panel-z005", "急诊分诊台")
            assert alarm["detail"]["event_code"] == "120"
            os.write(master, (make_message(1234, 120, 5, qualifier=Qualifier.RESTORE)
                              + "\r\n").encode())
            restored = police.wait_alarms(2)[1]
            assert (restored["message"], restored["event_id"]) == ("restored", alarm["event_id"])
            assert "checksum" in daemon.log_text()
        finally:
            daemon.stop()
