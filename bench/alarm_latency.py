"""Press → police subscriber latency over TLS, durable write included, against the floor.

The daemon runs in its own process, as in production. A GPIO button (a gpiozero MockFactory
pin inside the daemon's process) and a serial button box (EGB1 over a real pty) are each
pressed N times (default 1,000; EDGEGUARD_BENCH_N to change). Each press is a new alarm: it is
released and reset between presses, then the bench waits GAP_S (20 ms) before the next press.
The time runs from the pin edge / the frame written on the pty to the police subscriber's
receipt of the signed alarm, through the whole daemon: driver thread → bridge → store (WAL,
synchronous=FULL, fsync) → outbox → paho → TLS mosquitto → police.

The floor, measured in the same run on the same broker: a raw paho QoS 1 publish → receive
round trip over TLS, plus one SQLite commit with fsync (WAL, synchronous=FULL).
Target (docs/architecture.md, design brief): p99 ≤ 25 ms and ≤ 3x the floor's p99.

With EDGEGUARD_BENCH_CAMERAS=N (e.g. 4), N cameras are captured and analysed meanwhile
(capture processes reading a real RTSP stream of the footage at 640x360, each with a counting
zone and a crowd rule, so people are detected and crowd alarms come and go; two cameras are
linked to the button's location, so every press also takes two snapshots and two 40 s clips):
the alarm path with cameras running.

Run: .venv/bin/python bench/alarm_latency.py   (last line: one JSON object)
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import ssl
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from gpiozero.pins.mock import MockFactory
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, line, machine, percentiles

from edgeguard.config import EdgeguardConfig
from edgeguard.control import call
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.footage import locate, scaled
from edgeguard.lab.harness import InProcessDaemon, PoliceSubscriber, Site, lab_broker, make_site
from edgeguard.lab.rtsp_server import RtspServer
from edgeguard.lab.serial_box_sim import SerialBoxSim, open_pty
from edgeguard.receiver import Received
from edgeguard.uplink.paho_link import no_delay

N = int(os.environ.get("EDGEGUARD_BENCH_N", "1000"))
TIMEOUT = 10.0
# Presses are independent events seconds apart in real life; a short gap after each cycle keeps a
# press from queueing behind the bench's own release/reset traffic of the previous cycle. The
# floor is measured with the same gap: an idle vCPU runs the next piece of work markedly slower
# (measured here: a store job takes 0.31 ms 3 ms after the previous one, 0.51 ms after 20 ms),
# so a floor measured back to back would not be comparable.
GAP_S = float(os.environ.get("EDGEGUARD_BENCH_GAP_S", "0.02"))
CAMERAS = int(os.environ.get("EDGEGUARD_BENCH_CAMERAS", "0"))
TABLE_640 = [[288, 259], [461, 259], [461, 353], [288, 353]]  # the footage's table at 640x360
CROWD = {"min_people": 1, "for_s": 3, "clear_after_s": 2}
PAYLOAD = b"x" * 900  # about the size of a signed alarm message


class Arrivals:
    """Police-side receipt times of alarm messages, by (source, message)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: dict[tuple[str, str], list[tuple[float, dict[str, Any]]]] = {}

    def __call__(self, at: float, received: Received) -> None:
        if received.kind != "alarm" or received.payload is None or received.duplicate:
            return
        key = (str(received.payload["source"]), str(received.payload["message"]))
        with self.cond:
            self.seen.setdefault(key, []).append((at, received.payload))
            self.cond.notify_all()

    def wait(self, source: str, message: str, count: int) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while len(self.seen.get((source, message), [])) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{source} {message} #{count} not received")
                self.cond.wait(remaining)
            return self.seen[(source, message)][count - 1]


# --- the floor -------------------------------------------------------------------------------
def _tls_client(broker: Mosquitto, name: str) -> mqtt.Client:
    assert broker.pki is not None
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"floor-{name}", protocol=MQTTProtocolVersion.MQTTv5
    )
    pair = broker.pki.client(name)
    client.tls_set(
        ca_certs=str(broker.pki.ca_file),
        certfile=str(pair.cert),
        keyfile=str(pair.key),
        cert_reqs=ssl.CERT_REQUIRED,
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )
    client.on_socket_open = no_delay
    client.connect("localhost", broker.tls_port or 0, keepalive=30)
    client.loop_start()
    return client


def mqtt_round_trips(broker: Mosquitto, n: int, gap: float) -> list[float]:
    got = threading.Event()
    received_at = [0.0]
    subscribed = threading.Event()

    def on_message(*_args: Any) -> None:
        received_at[0] = time.perf_counter()
        got.set()

    police = _tls_client(broker, "police")
    police.on_message = on_message
    police.on_subscribe = lambda *_a: subscribed.set()
    police.subscribe("edgeguard/floor/alarm/#", qos=1)
    subscribed.wait(TIMEOUT)
    site = _tls_client(broker, "floor")
    samples = []
    try:
        for _ in range(n):
            got.clear()
            start = time.perf_counter()
            site.publish("edgeguard/floor/alarm/b", PAYLOAD, qos=1)
            if not got.wait(TIMEOUT):
                raise TimeoutError("floor message not received")
            samples.append(received_at[0] - start)
            time.sleep(gap)
    finally:
        for client in (site, police):
            client.disconnect()
            client.loop_stop()
    return samples


def fsync_commits(directory: Path, n: int, gap: float) -> list[float]:
    conn = sqlite3.connect(directory / f"floor-{gap}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (payload) VALUES (?)", (PAYLOAD,))
        conn.execute("COMMIT")
        samples.append(time.perf_counter() - start)
        time.sleep(gap)
    conn.close()
    return samples


# --- presses through the daemon --------------------------------------------------------------
def _reset(site: Site, event_id: str) -> None:
    answer = call(site.socket, {"cmd": "reset", "event_id": event_id, "by": "bench"})
    if not answer.get("ok"):
        raise RuntimeError(f"reset failed: {answer}")


def daemon_process(config: dict[str, Any], commands: Connection) -> None:
    """The daemon in its own process, as in production, with a MockFactory pin it drives on
    command; it answers each command with the perf_counter() of the edge (CLOCK_MONOTONIC,
    comparable across processes)."""
    factory = MockFactory()
    pin = factory.pin(17)
    with InProcessDaemon(EdgeguardConfig.model_validate(config), pin_factory=factory) as running:
        running.wait_connected()
        commands.send("ready")
        while (command := commands.recv()) != "stop":
            start = time.perf_counter()
            (pin.drive_low if command == "press" else pin.drive_high)()
            commands.send(start)
    factory.close()


def gpio_presses(site: Site, pin: Connection, arrivals: Arrivals, n: int) -> list[float]:
    samples = []
    for i in range(1, n + 1):
        pin.send("press")
        start = pin.recv()
        at, alarm = arrivals.wait("er-button", "new", i)
        samples.append(at - start)
        pin.send("release")
        pin.recv()
        arrivals.wait("er-button", "restored", i)
        _reset(site, str(alarm["event_id"]))
        time.sleep(GAP_S)
    return samples


def serial_presses(site: Site, box: SerialBoxSim, arrivals: Arrivals, n: int) -> list[float]:
    samples = []
    for i in range(1, n + 1):
        seq = box.press("01")
        at, alarm = arrivals.wait("cashier-box-01", "new", i)
        samples.append(at - box.sent_at[("01", seq)])
        box.release("01")
        arrivals.wait("cashier-box-01", "restored", i)
        _reset(site, str(alarm["event_id"]))
        time.sleep(GAP_S)
    return samples


def _wait_cameras(site: Site, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        cameras = call(site.socket, {"cmd": "status"}).get("cameras", {})
        if sum(1 for c in cameras.values() if c.get("state") == "online") == count:
            return
        time.sleep(0.2)
    raise RuntimeError("cameras did not come online")


def run(workdir: Path) -> dict[str, Any]:
    broker = lab_broker(workdir / "lab")
    master, port = open_pty()
    camera = RtspServer(scaled(locate(), 640, 360)) if CAMERAS else None
    if camera is not None:
        camera.start()
    try:
        print(f"floor: {N} raw MQTT QoS1 round trips over TLS and {N} SQLite fsync commits")
        rtt = mqtt_round_trips(broker, N, GAP_S)
        fsync = fsync_commits(workdir, N, GAP_S)
        floor = [a + b for a, b in zip(rtt, fsync, strict=True)]
        hot = [
            a + b
            for a, b in zip(
                mqtt_round_trips(broker, N, 0.0), fsync_commits(workdir, N, 0.0), strict=True
            )
        ]
        inputs = [
            {"type": "gpio", "name": "er-button", "pin": 17, "location": "er", "lockout": 0},
            {
                "type": "serial",
                "name": "cashier-box",
                "port": port,
                "location": "cashier",
                "devices": {"01": {"location": "cashier"}},
            },
        ]
        site = make_site(
            workdir / "site", broker, inputs=inputs, mqtt_extra={"heartbeat_interval": 5.0}
        )
        if camera is not None:
            site.data["cameras"] = [
                {
                    "name": f"cam-er-{i}",
                    "location": "er",
                    "stream_url": camera.url,
                    "analytics": {
                        "zones": [{"name": "table", "polygon": TABLE_640, "crowd": CROWD}]
                    },
                }
                for i in range(1, CAMERAS + 1)
            ]
        arrivals = Arrivals()
        parent, child = multiprocessing.get_context("spawn").Pipe()
        daemon = multiprocessing.get_context("spawn").Process(
            target=daemon_process, args=(site.data, child), daemon=True
        )
        daemon.start()
        try:
            if not parent.poll(30) or parent.recv() != "ready":
                raise RuntimeError("daemon process did not start")
            if CAMERAS:
                _wait_cameras(site, CAMERAS)
                print(f"{CAMERAS} cameras capturing (640x360, 5 fps analysis)")
            with (
                PoliceSubscriber(broker, {site.site_id: site.public_key}) as police,
                SerialBoxSim(master, close_fd=False) as box,
            ):
                police.on_receive = arrivals
                print(f"pressing the GPIO button {N} times (MockFactory pin in the daemon)")
                gpio = gpio_presses(site, parent, arrivals, N)
                print(f"pressing the serial box button {N} times (EGB1 over a pty)")
                serial = serial_presses(site, box, arrivals, N)
        finally:
            parent.send("stop")
            daemon.join(30)
    finally:
        broker.stop()
        os.close(master)
        if camera is not None:
            camera.kill()
    return {
        "rtt": rtt,
        "fsync": fsync,
        "floor": floor,
        "floor_back_to_back": hot,
        "gpio": gpio,
        "serial": serial,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="eg-bench-") as tmp:
        samples = run(Path(tmp))
    stats = {name: percentiles(values) for name, values in samples.items()}
    print()
    line("floor: MQTT QoS1 round trip (TLS)", stats["rtt"])
    line("floor: SQLite commit + fsync", stats["fsync"])
    line("floor: sum (same gap as the presses)", stats["floor"])
    line("floor: sum, back to back (hot CPU)", stats["floor_back_to_back"])
    line("GPIO press -> police (TLS)", stats["gpio"])
    line("serial press -> police (TLS)", stats["serial"])
    worst = max(stats["gpio"]["p99_ms"], stats["serial"]["p99_ms"])
    ratio = {
        name: round(worst / stats[name]["p99_ms"], 2) for name in ("floor", "floor_back_to_back")
    }
    met = worst <= 25.0 and ratio["floor"] <= 3.0
    print(
        f"worst p99 {worst:.3f} ms = {ratio['floor']}x the floor's p99 measured like the presses "
        f"({ratio['floor_back_to_back']}x the back-to-back floor); target p99 <= 25 ms and "
        f"<= 3x floor: {'MET' if met else 'NOT MET'}"
    )
    emit(
        {
            "bench": "alarm_latency",
            "n": N,
            "gap_ms": GAP_S * 1000,
            "cameras": CAMERAS,
            "machine": machine(),
            "floor_mqtt_rtt": stats["rtt"],
            "floor_fsync": stats["fsync"],
            "floor": stats["floor"],
            "floor_back_to_back": stats["floor_back_to_back"],
            "gpio": stats["gpio"],
            "serial": stats["serial"],
            "ratio_p99": ratio["floor"],
            "ratio_p99_back_to_back": ratio["floor_back_to_back"],
            "target_p99_ms": 25.0,
            "target_ratio": 3.0,
            "target_met": met,
        }
    )


if __name__ == "__main__":
    main()
