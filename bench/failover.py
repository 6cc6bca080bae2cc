"""Failover to the secondary broker (docs/transmission-paths.md): two lab brokers (TLS + ACL),
a real daemon with `mqtt.secondary`, a police subscriber on the secondary.

* kill: SIGKILL the primary broker, press at once; time from the kill to the alarm's arrival at
  the police via the secondary (the daemon must first notice the dead link);
* hung: SIGSTOP the primary broker, press; time from the press to the arrival via the
  secondary (expected: failover_after_s).

Last line: one JSON object.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, line, machine, percentiles

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, make_site, tls_mqtt
from edgeguard.lab.pki import DevPKI

KILL_CYCLES = 8
HUNG_CYCLES = 3
FAILOVER_S = 2.0


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.005)


def _arrived(subscriber: PoliceSubscriber, source: str) -> float | None:
    with subscriber._cond:
        for at, received in subscriber.received:
            if received.kind == "alarm" and (received.payload or {}).get("source") == source:
                return at
    return None


def _kill_cycle(daemon: DaemonProcess, primary: Mosquitto, sub: PoliceSubscriber, i: int) -> float:
    _wait(lambda: daemon.status()["link"]["connected"], 15, "primary link up")
    start = time.perf_counter()
    primary.kill()
    daemon.press(f"k{i}")
    _wait(lambda: _arrived(sub, f"k{i}") is not None, 10, "alarm via the secondary")
    took = (_arrived(sub, f"k{i}") or 0.0) - start
    primary.start()
    return took


def _hung_cycle(daemon: DaemonProcess, primary: Mosquitto, sub: PoliceSubscriber, i: int) -> float:
    _wait(lambda: daemon.status()["link"]["connected"], 15, "primary link up")
    assert primary.pid is not None
    pid = primary.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        start = time.perf_counter()
        daemon.press(f"h{i}")
        _wait(lambda: _arrived(sub, f"h{i}") is not None, 10, "alarm via the secondary")
        return (_arrived(sub, f"h{i}") or 0.0) - start
    finally:
        os.kill(pid, signal.SIGCONT)
        time.sleep(1.0)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="eg-failover-") as tmp:
        root = Path(tmp)
        pki = DevPKI(root / "pki")
        primary = Mosquitto(root / "b1", pki=pki, acl=True, log_to_file=False)
        secondary = Mosquitto(root / "b2", pki=pki, acl=True, log_to_file=False)
        primary.start()
        secondary.start()
        buttons = [f"k{i}" for i in range(KILL_CYCLES)] + [f"h{i}" for i in range(HUNG_CYCLES)]
        inputs = [{"type": "simulated", "name": b, "location": "er"} for b in buttons]
        second = {**tls_mqtt(secondary, "hosp-01"), "keepalive": 5, "reconnect_min": 0.2,
                  "reconnect_max": 1.0, "failover_after_s": FAILOVER_S}  # fmt: skip
        site = make_site(root / "site", primary, inputs=inputs, mqtt_extra={"secondary": second})
        site.data["logging"]["level"] = "WARNING"
        site.write()
        daemon = DaemonProcess(site)
        sub = PoliceSubscriber(secondary, {site.site_id: site.public_key}, client_id="bench-sub")
        try:
            daemon.start()
            sub.__enter__()
            kill = [_kill_cycle(daemon, primary, sub, i) for i in range(KILL_CYCLES)]
            hung = [_hung_cycle(daemon, primary, sub, i) for i in range(HUNG_CYCLES)]
        finally:
            sub.__exit__(None, None, None)
            daemon.stop()
            primary.stop()
            secondary.stop()
    stats = {"kill_to_police": percentiles(kill), "hung_press_to_police": percentiles(hung)}
    line("primary killed → alarm at police", stats["kill_to_police"])
    line(f"primary hung ({FAILOVER_S:g} s failover) → police", stats["hung_press_to_police"])
    emit({"bench": "failover", "failover_after_s": FAILOVER_S, "machine": machine(), **stats})


if __name__ == "__main__":
    main()
