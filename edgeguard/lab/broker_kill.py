"""A broker killed right after its PUBACK, trial after trial (bench/broker_loss.py and
tests/test_receipts_site.py): does each alarm reach the police platform?

Each trial: the police receiver (a real `PoliceService`, persistent session) is away; a button
is pressed at a real daemon; as soon as the site's store says the broker PUBACKed the alarm,
mosquitto (TLS, ACL, persistence with `autosave_interval 1` as docs/mqtt-api.md advises) is
killed with SIGKILL and started again; then the receiver comes back and the alarm is awaited
in its database. Without receipts what mosquitto held only in memory is gone; with them the
site publishes the alarm again after `resend_after_s` (docs/mqtt-api.md 4.7).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

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


async def broker_kill_trials(
    work: Path, trials: int, resend_after: float, *, receipts: bool
) -> dict[str, Any]:
    """Run the trials in ``work``: trials, lost, stored, stored_after_p50_s/max_s."""
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
