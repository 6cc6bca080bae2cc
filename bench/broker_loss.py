"""A broker killed right after its PUBACK: does the alarm reach the police platform?

Each trial: the police receiver (a real `PoliceService`, persistent session) is away; a button
is pressed at a real daemon; as soon as the site's store says the broker PUBACKed the alarm,
mosquitto (TLS, ACL, persistence with `autosave_interval 1` as docs/mqtt-api.md advises) is
killed with SIGKILL and started again; then the receiver comes back and we wait for the alarm
in its database. Run twice in the same session:

- baseline: no receipts — what mosquitto held only in memory is gone, and nobody knows;
- receipts: the site awaits the police platform's signed receipt and publishes again after
  `resend_after_s` (docs/mqtt-api.md 4.7) — every alarm must be stored.

    .venv/bin/python bench/broker_loss.py [--trials 30] [--resend-after 2]

Prints figures, then one JSON object on the last line; exits 1 if an alarm was lost with
receipts on."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emit, machine

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, Site, make_site, tls_mqtt
from edgeguard.lab.pki import DevPKI
from edgeguard.police.config import PoliceConfig
from edgeguard.police.service import PoliceService
from edgeguard.signing import generate_keypair

# An alarm not in the police database by then counts as lost. Without receipts nothing would
# bring it later: a message mosquitto saved is delivered within a second of the reconnect.
STORED_WITHIN_S = {"baseline": 10.0, "receipts": 30.0}


def _delivered(site: Site, source: str) -> bool:
    with sqlite3.connect(f"file:{site.db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM alarms WHERE source = ? AND delivered_at IS NOT NULL", (source,)
        )
        return int(row.fetchone()[0]) > 0


def _police_config(work: Path, broker: Mosquitto, site: Site, key: Path | None) -> PoliceConfig:
    keys = work / "keys"
    keys.mkdir(exist_ok=True)
    shutil.copy(site.public_key, keys / f"{site.site_id}.pub")
    return PoliceConfig.model_validate({
        "receiver_id": "police-bench",
        "mqtt": {**tls_mqtt(broker, "police"), "reconnect_min": 0.2, "reconnect_max": 1.0},
        "keys_dir": str(keys), "database": str(work / "police.db"), "receipt_key": key,
        "sites": {site.site_id: {"heartbeat_interval": 1.0}}, "web": {"enabled": False},
    })  # fmt: skip


def _stored(service: PoliceService, source: str) -> bool:
    return any(alarm["source"] == source for alarm in service.store.open_alarms())


async def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _connected(service: PoliceService) -> bool:
    return await _wait(lambda: service.link()["connected"], 15)


async def _trials(work: Path, trials: int, resend_after: float, receipts: bool) -> dict[str, Any]:
    pki = DevPKI(work / "pki")
    broker = Mosquitto(work / "broker", pki=pki, acl=True)
    broker.start()
    police_key = work / "police-receipts.key"
    generate_keypair(police_key)
    site = make_site(work / "site", broker, inputs=[
        {"name": f"b{i}", "type": "simulated", "location": "er"} for i in range(trials)
    ])  # fmt: skip
    if receipts:
        site.data["receipts"] = {
            "police_keys": [str(police_key.with_suffix(".pub"))],
            "resend_after_s": resend_after,
        }
        site.write()
    config = _police_config(work, broker, site, police_key if receipts else None)
    daemon = DaemonProcess(site)
    daemon.start()
    stored_after: list[float] = []
    lost = 0
    try:
        service = PoliceService(config)
        await service.start()
        await _connected(service)
        await service.stop()  # its persistent session stays at the broker
        service.close()
        for trial in range(trials):
            pressed = time.monotonic()
            await asyncio.to_thread(daemon.press, f"b{trial}")
            await _wait(lambda trial=trial: _delivered(site, f"b{trial}"), 15)
            broker.kill()  # right after the PUBACK: what it holds only in memory is gone
            broker.start()
            service = PoliceService(config)
            await service.start()
            ok = await _wait(
                lambda service=service, trial=trial: _stored(service, f"b{trial}"),
                STORED_WITHIN_S["receipts" if receipts else "baseline"],
            )
            if ok:
                stored_after.append(time.monotonic() - pressed)
            else:
                lost += 1
            await service.stop()
            service.close()
    finally:
        daemon.stop()
        broker.stop()
    return {
        "trials": trials,
        "lost": lost,
        "stored": len(stored_after),
        "stored_after_p50_s": round(statistics.median(stored_after), 2) if stored_after else None,
        "stored_after_max_s": round(max(stored_after), 2) if stored_after else None,
    }


def main() -> int:
    # SIGTERM (a stopped run) unwinds like an error, so the daemon and broker are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--resend-after", type=float, default=2.0, help="receipts.resend_after_s")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name, receipts in (("baseline", False), ("receipts", True)):
        with tempfile.TemporaryDirectory(prefix=f"edgeguard-loss-{name}-") as work:
            started = time.monotonic()
            results[name] = asyncio.run(_trials(Path(work), args.trials, args.resend_after,
                                                receipts))  # fmt: skip
            results[name]["seconds"] = round(time.monotonic() - started, 1)
        print(f"{name:>9}: {results[name]}", flush=True)
    ok = results["receipts"]["lost"] == 0
    emit({"bench": "broker_loss", "ok": ok, **results, "resend_after_s": args.resend_after,
          "machine": machine()})  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
