"""Field devices → police subscriber latency over TLS, through the whole daemon (its own
process): an alarm panel's Contact ID line on a serial port (pty), and a Modbus TCP module's
discrete input (pymodbus' own server; the driver polls at 20 Hz, so up to 50 ms of the figure
is the poll interval), and an IP communicator's SIA DC-09 frame over TCP (sent by my-dc09-spt,
encrypted AES-128; the ACK comes after the durable write, and is awaited before the next frame).

Each of N events (default 300; EDGEGUARD_BENCH_N) is a new alarm: raised, restored and reset,
then a 20 ms gap. Target (field-devices issue): report the p99 of each path.

Run: .venv/bin/python bench/field_latency.py   (last line: one JSON object)
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alarm_latency import Arrivals
from common import emit, line, machine, percentiles

from edgeguard.control import call
from edgeguard.lab.dc09 import Dc09Transmitter
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, Site, lab_broker, make_site
from edgeguard.lab.modbus_sim import UNIT, ModbusSlave
from edgeguard.lab.serial_box_sim import open_pty
from edgeguard_drivers.contact_id_protocol import Qualifier, make_message

N = int(os.environ.get("EDGEGUARD_BENCH_N", "300"))
DC09_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAP_S = 0.02


def _reset(site: Site, event_id: str) -> None:
    answer = call(site.socket, {"cmd": "reset", "event_id": event_id, "by": "bench"})
    if not answer.get("ok"):
        raise RuntimeError(f"reset failed: {answer}")


def contact_id(site: Site, master: int, arrivals: Arrivals) -> list[float]:
    samples = []
    for i in range(1, N + 1):
        start = time.perf_counter()
        os.write(master, (make_message(1234, 120, 5) + "\r\n").encode())
        at, alarm = arrivals.wait("panel-z005", "new", i)
        samples.append(at - start)
        restore = make_message(1234, 120, 5, qualifier=Qualifier.RESTORE)
        os.write(master, (restore + "\r\n").encode())
        arrivals.wait("panel-z005", "restored", i)
        _reset(site, str(alarm["event_id"]))
        time.sleep(GAP_S)
    return samples


def modbus(site: Site, module: ModbusSlave, arrivals: Arrivals) -> list[float]:
    samples = []
    for i in range(1, N + 1):
        start = time.perf_counter()
        module.set_input(3, True)
        at, alarm = arrivals.wait("dio-di3", "new", i)
        samples.append(at - start)
        module.set_input(3, False)
        arrivals.wait("dio-di3", "restored", i)
        _reset(site, str(alarm["event_id"]))
        time.sleep(GAP_S)
    return samples


def dc09(site: Site, port: int, arrivals: Arrivals) -> list[float]:
    samples = []
    with Dc09Transmitter("127.0.0.1", port, "1234", key=DC09_KEY, receiver=1, line=1) as tx:
        for i in range(1, N + 1):
            frame = tx.sia_frame("PA", 5)
            start = time.perf_counter()
            tx.send(frame)
            at, alarm = arrivals.wait("ipr-1234-z5", "new", i)
            samples.append(at - start)
            if tx.check(tx.receive(), tx.seq).word != "ACK":
                raise RuntimeError("DC-09 frame not ACKed")
            if tx.exchange(tx.sia_frame("PR", 5)).word != "ACK":
                raise RuntimeError("DC-09 restore not ACKed")
            arrivals.wait("ipr-1234-z5", "restored", i)
            _reset(site, str(alarm["event_id"]))
            time.sleep(GAP_S)
    return samples


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(workdir: Path) -> dict[str, list[float]]:
    broker = lab_broker(workdir / "lab")
    master, port = open_pty()
    module = ModbusSlave()
    dc09_port = _free_port()
    try:
        site = make_site(
            workdir / "site",
            broker,
            mqtt_extra={"heartbeat_interval": 5.0},
            inputs=[
                {
                    "type": "contact_id",
                    "name": "panel",
                    "port": port,
                    "location": "cashier",
                    "zones": {"5": {"location": "er"}},
                },
                {
                    "type": "modbus",
                    "name": "dio",
                    "transport": "tcp",
                    "host": "127.0.0.1",
                    "port": module.port,
                    "unit": UNIT,
                    "location": "cashier",
                    "inputs": {3: {"location": "er"}},
                },
                {
                    "type": "sia_dc09",
                    "name": "ipr",
                    "host": "127.0.0.1",
                    "port": dc09_port,
                    "udp": False,
                    "accounts": {
                        "1234": {
                            "location": "cashier",
                            "key": DC09_KEY.hex(),
                            "zones": {5: {"location": "er"}},
                        }
                    },
                },
            ],
        )
        daemon = DaemonProcess(site)
        arrivals = Arrivals()
        with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
            police.on_receive = arrivals
            daemon.start()
            try:
                print(f"{N} Contact ID panics on a serial port")
                cid = contact_id(site, master, arrivals)
                print(f"{N} Modbus input edges (polled at 20 Hz)")
                mb = modbus(site, module, arrivals)
                print(f"{N} SIA DC-09 panics (TCP, AES-128)")
                ip = dc09(site, dc09_port, arrivals)
            finally:
                daemon.stop()
    finally:
        module.close()
        os.close(master)
        broker.stop()
    return {"contact_id": cid, "modbus": mb, "sia_dc09": ip}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="eg-field-") as tmp:
        samples = run(Path(tmp))
    stats: dict[str, Any] = {name: percentiles(values) for name, values in samples.items()}
    print()
    line("Contact ID line -> police (TLS)", stats["contact_id"])
    line("Modbus input edge -> police (TLS)", stats["modbus"])
    line("SIA DC-09 frame (TCP) -> police (TLS)", stats["sia_dc09"])
    emit({"bench": "field_latency", "n": N, "machine": machine(), **stats})


if __name__ == "__main__":
    main()
