"""IP alarm communicators through the whole daemon (its own process, real mosquitto, TLS): DC-09
frames sent by my-dc09-spt over TCP and UDP reach the police with their locations, an encrypted
frame is decrypted, a stale one is refused with a NAK, a silent account raises device_fault and
its NULL poll restores it, and on a full disk the alarm still reaches the police but the
communicator gets no ACK until the alarm is on disk."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.dc09 import Dc09Transmitter
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, Site, fill_disk, make_site
from edgeguard_drivers.sia_dc09_protocol import format_time, wrap

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")


def free_port() -> int:
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        port = int(tcp.getsockname()[1])
        udp.bind(("127.0.0.1", port))  # free for both
        return port


def dc09_site(directory: Path, broker: Mosquitto, port: int, **account: Any) -> Site:
    return make_site(directory, broker, inputs=[{
        "type": "sia_dc09", "name": "ipr", "host": "127.0.0.1", "port": port,
        "accounts": {
            "1234": {"location": "cashier", "zones": {"1": {"location": "er"}}, **account},
            "5678": {"location": "er", "key": {"env": "EG_TEST_DC09_KEY"}},
        },
    }])


def _tx(port: int, account: str = "1234", **kw: Any) -> Dc09Transmitter:
    return Dc09Transmitter("127.0.0.1", port, account, **kw)


def _find(police: PoliceSubscriber, source: str, message: str = "new") -> dict[str, Any]:
    assert police.wait_for(lambda p: any(
        a["source"] == source and a["message"] == message for a in p.alarms()), 15), \
        [(a["source"], a["message"]) for a in police.alarms()]
    return next(a for a in police.alarms() if a["source"] == source and a["message"] == message)


def test_communicators_reach_police(tmp_path: Path, broker: Mosquitto,
                                    daemons: Callable[..., DaemonProcess]) -> None:
    port = free_port()
    site = dc09_site(tmp_path / "site", broker, port, supervision=10)
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        daemon = daemons(site, env={"EG_TEST_DC09_KEY": KEY.hex()})
        with _tx(port) as tcp:
            assert tcp.exchange(tcp.sia_frame("BA", 1)).word == "ACK"
        with _tx(port, transport="udp") as udp:
            assert udp.exchange(udp.cid_frame(120, 7)).word == "ACK"  # Contact ID panic
        burglary = _find(police, "ipr-1234-z1")
        assert (burglary["kind"], burglary["location"]["label"]) == ("intrusion", "急诊分诊台")
        assert burglary["detail"]["sia_code"] == "BA"
        panic = _find(police, "ipr-1234-z7")
        assert (panic["kind"], panic["location"]["label"]) == ("panic", "收费处")

        with _tx(port, "5678", key=KEY, receiver=1, line=1) as enc:
            answer = enc.exchange(enc.sia_frame("HA", 3))
            assert answer.word == "ACK"
            assert b'"*ACK"' in answer.raw
        assert _find(police, "ipr-5678-z3")["kind"] == "duress"

        stale = format_time(datetime.now(UTC) - timedelta(seconds=90))
        with _tx(port) as tcp:
            refused = tcp.exchange(wrap(f'"SIA-DCS"0077L0#1234[#1234|NPA9]{stale}'))
        assert refused.word == "NAK"
        assert refused.offset is not None
        assert abs(refused.offset) < 2

        fault = _find(police, "ipr-1234-fault")  # 10 s of silence from account 1234
        assert (fault["kind"], fault["location"]["label"]) == ("device_fault", "收费处")
        with _tx(port, transport="udp") as udp:
            assert udp.exchange(udp.null_frame()).word == "ACK"
        _find(police, "ipr-1234-fault", "reset")  # a technical alarm clears itself
        assert not any(a["source"] == "ipr-1234-z9" for a in police.alarms())
        assert KEY.hex() not in daemon.log_text().lower()


def test_no_ack_until_recorded(tmp_path: Path, broker: Mosquitto, small_disk: Path,
                               daemons: Callable[..., DaemonProcess]) -> None:
    port = free_port()
    site = dc09_site(tmp_path / "site", broker, port)
    site.data["store"]["path"] = str(small_disk / "edgeguard.db")
    site.write()
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        daemon = daemons(site, env={"EG_TEST_DC09_KEY": KEY.hex()})
        ballast = fill_disk(small_disk)
        with _tx(port) as tx:
            for zone in range(100, 160):  # SQLite may reuse WAL space for the first writes
                frame = tx.sia_frame("PA", zone)
                tx.send(frame)
                try:
                    tx.receive(1.5)
                except TimeoutError:
                    break
            else:
                raise AssertionError("the full disk never made a write fail")
            alarm = _find(police, f"ipr-1234-z{zone}")
            assert alarm["detail"]["unrecorded"] is True  # the police have it, from memory
            with pytest.raises(TimeoutError):
                tx.receive(1.0)  # ... and the communicator still has no ACK
            ballast.unlink()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:  # the communicator repeats until ACKed
                tx.send(frame)
                with contextlib.suppress(TimeoutError):
                    if tx.check(tx.receive(1.0), tx.seq).word == "ACK":
                        break
            else:
                raise AssertionError(f"no ACK once the disk had room:\n{daemon.log_text()}")
        assert "not recorded" in daemon.log_text()
