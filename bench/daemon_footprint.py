"""The daemon's memory and CPU, idle and after a burst of alarms (no cameras).

Runs `edgeguard run` as a subprocess against a lab broker (TLS), reads its RSS from /proc
when idle, after 1,000 alarms, and its CPU time over 30 s idle (heartbeats only).
Target (design brief): <= 80 MB RSS without cameras.

Run: .venv/bin/python bench/daemon_footprint.py   (last line: one JSON object)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_s, emit, machine, rss_mb

from edgeguard.lab.broker import free_port
from edgeguard.lab.consoles import add_user
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, lab_broker, make_site
from edgeguard.lab.web_client import ConsoleClient

PRESSES = 1000
IDLE_S = 30.0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="eg-footprint-") as tmp:
        broker = lab_broker(Path(tmp) / "lab")
        inputs = [{"type": "simulated", "name": f"b{i}", "location": "er"} for i in range(10)]
        port = free_port()  # the control-room console on, as by default in production
        site = make_site(
            Path(tmp) / "site", broker, inputs=inputs, mqtt_extra={"heartbeat_interval": 5.0},
            console_port=port,
        )  # fmt: skip
        add_user(site.directory / "users.db", "bench", "bench password", "admin")
        daemon = DaemonProcess(site)
        try:
            daemon.start()
            assert daemon.proc is not None
            pid = daemon.proc.pid
            time.sleep(2)
            idle = rss_mb(pid)
            start_cpu, start = cpu_s(pid), time.monotonic()
            time.sleep(IDLE_S)
            idle_cpu = (cpu_s(pid) - start_cpu) / (time.monotonic() - start) * 100
            with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
                for i in range(PRESSES):
                    name = f"b{i % 10}"
                    daemon.press(name)
                    daemon.release(name)
                police.wait_for(lambda p: len(p.alarms()) >= 10, timeout=30)
            with ConsoleClient(f"http://127.0.0.1:{port}") as console:  # a page's requests
                console.login("bench", "bench password")
                for path in ("/api/health", "/api/alarms", "/api/ledger.csv"):
                    console.get(path).raise_for_status()
            after = rss_mb(pid)
        finally:
            daemon.stop()
            broker.stop()
    print(
        f"daemon RSS (console on) idle {idle:.1f} MB, after {PRESSES} presses and a console "
        f"session {after:.1f} MB "
        f"(target <= 80 MB); CPU idle {idle_cpu:.2f} % of one core"
    )
    emit(
        {
            "bench": "daemon_footprint",
            "machine": machine(),
            "rss_idle_mb": round(idle, 1),
            "rss_after_presses_mb": round(after, 1),
            "presses": PRESSES,
            "cpu_idle_percent": round(idle_cpu, 2),
            "target_rss_mb": 80,
            "target_met": max(idle, after) <= 80,
        }
    )


if __name__ == "__main__":
    main()
