"""The second transmission path end to end (docs/transmission-paths.md): two real mosquitto
brokers (TLS client certificates + ACL, one dev PKI), a real daemon with `mqtt.secondary`,
a police subscriber on each broker, and the police receiver linked to both."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, Site, make_site, tls_mqtt
from edgeguard.lab.pki import DevPKI
from edgeguard.police.config import PoliceConfig
from edgeguard.police.service import PoliceService

FAILOVER_S = 2.0
BUTTONS = ["b-normal", "b-hung", "b-killed", "b-back"]


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    pki = DevPKI(tmp_path / "pki")
    pair = (
        Mosquitto(tmp_path / "primary", pki=pki, acl=True),
        Mosquitto(tmp_path / "secondary", pki=pki, acl=True),
    )
    for broker in pair:
        broker.start()
    yield pair
    for broker in pair:
        if broker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(broker.pid, signal.SIGCONT)
        broker.stop()


def dual_site(tmp_path: Path, primary: Mosquitto, secondary: Mosquitto) -> Site:
    inputs = [{"type": "simulated", "name": b, "location": "er"} for b in BUTTONS]
    second = {**tls_mqtt(secondary, "hosp-01"), "keepalive": 5, "reconnect_min": 0.2,
              "reconnect_max": 1.0, "failover_after_s": FAILOVER_S}  # fmt: skip
    return make_site(tmp_path / "site", primary, inputs=inputs, mqtt_extra={"secondary": second})


def police_config(tmp_path: Path, site: Site, primary: Mosquitto, secondary: Mosquitto) -> Any:
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    shutil.copy(site.public_key, keys / f"{site.site_id}.pub")
    fast = {"reconnect_min": 0.2, "reconnect_max": 1.0}
    return PoliceConfig.model_validate({
        "receiver_id": "police-dual",
        "mqtt": {**tls_mqtt(primary, "police"), **fast},
        "mqtt_secondary": {**tls_mqtt(secondary, "police"), **fast},
        "keys_dir": str(keys), "database": str(tmp_path / "police.db"),
        "sites": {site.site_id: {"heartbeat_interval": 1.0}}, "web": {"enabled": False},
    })  # fmt: skip


def alarms_of(subscriber: PoliceSubscriber, source: str) -> list[dict[str, Any]]:
    return [a for a in subscriber.alarms(unique=False) if a["source"] == source]


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    """Seconds it took until ``predicate`` held."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class Counting:
    """Counts what the police store took as new and as duplicate alarm messages."""

    def __init__(self, service: PoliceService) -> None:
        self.new: list[tuple[str, int]] = []
        self.duplicates: list[tuple[str, int]] = []
        self.messages: list[tuple[str, str]] = []  # (source, message) stored
        original = service.store.record_alarm

        def record(site: str, payload: dict[str, Any], received_at: str | None = None) -> bool:
            stored = original(site, payload, received_at)
            key = (str(payload["event_id"]), int(payload["seq"]))
            (self.new if stored else self.duplicates).append(key)
            if stored:
                self.messages.append((str(payload["source"]), str(payload["message"])))
            return stored

        service.store.record_alarm = record  # type: ignore[method-assign]


@pytest.mark.slow
def test_failover_to_the_secondary_broker_and_back(
    tmp_path: Path, brokers: tuple[Mosquitto, Mosquitto], cleanup: list[Callable[[], None]]
) -> None:
    primary, secondary = brokers
    site = dual_site(tmp_path, primary, secondary)
    keys = {site.site_id: site.public_key}
    on_primary = PoliceSubscriber(primary, keys, client_id="sub-primary").__enter__()
    cleanup.append(lambda: on_primary.__exit__(None, None, None))
    on_secondary = PoliceSubscriber(secondary, keys, client_id="sub-secondary").__enter__()
    cleanup.append(lambda: on_secondary.__exit__(None, None, None))
    daemon = DaemonProcess(site)
    daemon.start()
    cleanup.append(lambda: _stopped(daemon))
    asyncio.run(_scenario(tmp_path, site, daemon, primary, on_primary, on_secondary, secondary))


async def _scenario(
    tmp_path: Path,
    site: Site,
    daemon: DaemonProcess,
    primary: Mosquitto,
    on_primary: PoliceSubscriber,
    on_secondary: PoliceSubscriber,
    secondary: Mosquitto,
) -> None:
    service = PoliceService(police_config(tmp_path, site, primary, secondary))
    counting = Counting(service)
    await service.start()
    try:
        await until(lambda: service.tracker.state(site.site_id) == "online", 15, "site online")
        await until(
            lambda: (
                len(service.link()["links"]) == 2
                and all(link["connected"] for link in service.link()["links"])
            ),
            10,
            "both police links",
        )
        await _normal(daemon, on_primary, on_secondary)
        await _primary_hung(daemon, primary, on_secondary, counting)
        await _primary_killed(daemon, primary, on_secondary)
        await _primary_back(daemon, primary, on_primary, on_secondary, counting)
        await until(lambda: service.store.alarm_row(_event(on_primary, "b-back")) is not None,
                    5, "the last alarm at the police receiver")  # fmt: skip
        keys = counting.new
        assert len(keys) == len(set(keys)), "an alarm message was stored twice"
        assert counting.duplicates, "the hung primary's late copy should arrive as a duplicate"
        for button in BUTTONS:
            event_id = _event(on_primary, button) or _event(on_secondary, button)
            assert service.store.alarm_row(event_id) is not None, button
    finally:
        await service.stop()
        service.close()


def _stopped(daemon: DaemonProcess) -> None:
    daemon.stop()


def _event(subscriber: PoliceSubscriber, source: str) -> str:
    found = alarms_of(subscriber, source)
    return str(found[0]["event_id"]) if found else ""


async def _press(daemon: DaemonProcess, button: str) -> float:
    await asyncio.to_thread(daemon.press, button)
    return time.monotonic()


async def _normal(
    daemon: DaemonProcess, on_primary: PoliceSubscriber, on_secondary: PoliceSubscriber
) -> None:
    """Normal operation: the primary delivers; nothing alarm-like goes to the secondary."""
    await _press(daemon, "b-normal")
    await until(lambda: alarms_of(on_primary, "b-normal"), 5, "b-normal via the primary")
    await asyncio.sleep(FAILOVER_S + 0.5)
    assert on_secondary.alarms(unique=False) == []
    status = await asyncio.to_thread(daemon.status)
    assert status["outbox"]["handed_over"] == 0
    assert status["paths"]["secondary"]["connected"] is True


async def _primary_hung(
    daemon: DaemonProcess, primary: Mosquitto, on_secondary: PoliceSubscriber, counting: Counting
) -> None:
    """The primary broker hangs (SIGSTOP): no PUBACK within failover_after_s → secondary."""
    assert primary.pid is not None
    pid = primary.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        pressed = await _press(daemon, "b-hung")
        await until(lambda: alarms_of(on_secondary, "b-hung"), FAILOVER_S + 2, "b-hung failover")
        took = time.monotonic() - pressed
        assert FAILOVER_S - 0.2 <= took <= FAILOVER_S + 1.5, took
    finally:
        os.kill(pid, signal.SIGCONT)
    # the primary wakes up and delivers its copy too: the receiver keeps one
    await until(lambda: counting.duplicates, 6, "the late copy from the primary")


async def _primary_killed(
    daemon: DaemonProcess, primary: Mosquitto, on_secondary: PoliceSubscriber
) -> None:
    """Primary broker killed: alarms go straight to the secondary; `uplink-primary` fault."""
    primary.kill()
    await until(lambda: not daemon.status()["link"]["connected"], 10, "primary link down")
    pressed = await _press(daemon, "b-killed")
    await until(lambda: alarms_of(on_secondary, "b-killed"), FAILOVER_S, "b-killed failover")
    took = time.monotonic() - pressed
    assert took < 1.0, f"the primary was known down: no wait expected ({took:.2f} s)"
    fault = "uplink-primary-fault"
    await until(lambda: alarms_of(on_secondary, fault), FAILOVER_S + 3, "uplink-primary fault")
    raised = alarms_of(on_secondary, fault)[0]
    assert raised["kind"] == "device_fault"
    assert raised["detail"]["device"] == "uplink-primary"


async def _primary_back(
    daemon: DaemonProcess,
    primary: Mosquitto,
    on_primary: PoliceSubscriber,
    on_secondary: PoliceSubscriber,
    counting: Counting,
) -> None:
    """Primary back: traffic returns to it, the fault is restored."""
    primary.start()
    await until(lambda: daemon.status()["link"]["connected"], 15, "primary link back")
    restored = ("uplink-primary-fault", "reset")
    await until(lambda: restored in counting.messages, 10, "uplink-primary fault restored")
    await until(on_primary.client.is_connected, 10, "police subscriber reconnected")
    await asyncio.sleep(0.5)  # its subscription
    before = len(on_secondary.alarms(unique=False))
    await _press(daemon, "b-back")
    await until(lambda: alarms_of(on_primary, "b-back"), 5, "b-back via the primary")
    await asyncio.sleep(FAILOVER_S + 0.5)
    assert alarms_of(on_secondary, "b-back") == []
    assert len(on_secondary.alarms(unique=False)) == before
