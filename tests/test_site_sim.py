"""The site simulator (edgeguard/lab/site_sim.py) against real components: a real mosquitto
(TLS client certificates, the lab ACL) and the real police receiver (PoliceService, its SQLite
store, receipts on). One lab for the module: the broker, the receiver and 50 simulated sites on
one event loop in a thread; each test uses sites of its own. Every wait is bounded generously
and nothing is timed: the suite passes with both cores loaded."""

from __future__ import annotations

import asyncio
import inspect
import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgeguard.ids import parse_iso
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import lab_broker, tls_mqtt
from edgeguard.lab.site_sim import AlarmTrace, SimConfig, SiteSimulator
from edgeguard.police.config import PoliceConfig
from edgeguard.police.service import PoliceService
from edgeguard.signing import generate_keypair, load_public_key, verify

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schema"
SITES = 50
WAIT_S = 60.0  # a bound, never a measure


@dataclass
class Lab:
    loop: asyncio.AbstractEventLoop
    broker: Mosquitto
    police: PoliceService
    sim: SiteSimulator
    database: Path
    configs: dict[str, SimConfig]

    def run(self, scenario: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(scenario, self.loop).result(2 * WAIT_S + 60)

    def messages(self, site_prefix: str) -> list[tuple[str, str, int]]:
        """The alarm messages the police stored, as (site, event_id, seq), from its database."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT site, event_id, seq FROM messages WHERE site LIKE ? ORDER BY id",
                (f"{site_prefix}%",),
            ).fetchall()
        conn.close()
        return [(str(s), str(e), int(q)) for s, e, q in rows]


async def until(predicate: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """``predicate``'s first true value (it may be a coroutine function), polled."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


def _site_row(lab: Lab, site: str) -> dict[str, Any]:
    row = lab.police.site(site)
    assert row is not None, site
    return row


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("site-sim")
    broker = lab_broker(tmp / "lab")
    assert broker.pki is not None
    assert broker.tls_port is not None
    receipt_key = tmp / "police-receipts.key"
    police_pub = generate_keypair(receipt_key)
    keys = tmp / "police-keys"
    common: dict[str, Any] = {
        "port": broker.tls_port, "pki_dir": broker.pki.directory, "keys_dir": keys,
        "heartbeat_interval": 1.0, "police_keys": (police_pub,), "resend_after_s": 2.0,
    }  # fmt: skip
    configs = {
        "main": SimConfig(tmp / "sim", sites=SITES, **common),
        # two worker processes, MQTT 3.1.1, the client id = the site id (as the RabbitMQ lab)
        "workers": SimConfig(
            tmp / "sim-w",
            sites=4,
            prefix="w-",
            protocol="3.1.1",
            client_id="{site}",
            processes=2,
            **common,
        ),
        # receipts checked against a key the police do not sign with
        "forged": SimConfig(
            tmp / "sim-x",
            sites=1,
            prefix="x-",
            **{
                **common,
                "police_keys": (generate_keypair(tmp / "other.key"),),
                "resend_after_s": 0.5,
            },
        ),
    }
    for config in configs.values():
        SiteSimulator(config).prepare()  # the police read their keys at start
    database = tmp / "police.db"
    police_config = PoliceConfig.model_validate(
        {
            "receiver_id": "police-sim-test",
            "mqtt": {**tls_mqtt(broker, "police"), "reconnect_min": 0.2, "reconnect_max": 1.0},
            "keys_dir": str(keys),
            "receipt_key": str(receipt_key),
            "database": str(database),
            "lost_after_s": 3.0,  # 3 x the sites' 1 s heartbeat interval
            "web": {"enabled": False},
        }
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="site-sim-lab", daemon=True)
    thread.start()
    police = PoliceService(police_config)
    sim = SiteSimulator(configs["main"])
    lab = Lab(loop, broker, police, sim, database, configs)

    async def start() -> None:
        await police.start()
        await until(lambda: police.link()["connected"], "the police receiver's link")
        await sim.start(timeout=WAIT_S)

    async def stop() -> None:
        await sim.stop()
        await police.stop()
        police.close()

    try:
        lab.run(start())
        yield lab
    finally:
        try:
            lab.run(stop())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            broker.stop()


def test_sites_connect_heartbeat_and_are_online_at_the_police(lab: Lab) -> None:
    async def scenario() -> None:
        stats = await lab.sim.stats()
        assert (stats.sites, stats.connected) == (SITES, SITES)
        assert stats.connect_failures == 0

        def all_online() -> bool:
            rows = [_site_row(lab, site) for site in lab.sim.sites]
            return all(r["state"] == "online" and (r["heartbeat_counter"] or 0) >= 2 for r in rows)

        await until(all_online, "every site online with its heartbeats counted")
        site = lab.sim.sites[0]
        row = _site_row(lab, site)
        assert row["last_status"] == "online"
        assert row["log_head"]["id"] >= 1
        assert len(row["log_head"]["hash"]) == 64
        raised = sum(1 for t in await lab.sim.traces() if t.site == site)  # by other tests
        await until(
            lambda: (
                (_site_row(lab, site)["open_alarms"], _site_row(lab, site)["outbox_pending"])
                == (raised, 0)
            ),
            "the heartbeat's open alarms and pending messages",
        )
        assert lab.police.store.warnings() == []  # every signature and shape accepted

    lab.run(scenario())


class Listener:
    """What one site publishes, as a police subscriber gets it (its own connection, the
    police certificate), parsed and kept by type."""

    def __init__(self, broker: Mosquitto, site: str) -> None:
        assert broker.pki is not None
        self.got: dict[str, list[dict[str, Any]]] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        pair = broker.pki.client("police")
        self.client.tls_set(str(broker.pki.ca_file), str(pair.cert), str(pair.key))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(f"edgeguard/{site}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("localhost", broker.tls_port or 0)
        self.client.loop_start()
        assert subscribed.wait(WAIT_S), "listener not subscribed"

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        payload = json.loads(message.payload)
        self.got.setdefault(message.topic.split("/")[2], []).append(payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_what_a_site_sends_matches_the_schemas_and_verifies(lab: Lab) -> None:
    """Status (retained online, then the Will), heartbeats and an alarm of one site: each
    signed with its key and valid against docs/schema/."""
    site = lab.sim.sites[47]
    key = load_public_key(lab.sim.keys_dir / f"{site}.pub")
    listener = Listener(lab.broker, site)
    try:

        async def scenario() -> None:
            await until(lambda: len(listener.got.get("heartbeat", [])) >= 2, "heartbeats")
            await lab.sim.raise_alarm(site)
            await until(lambda: listener.got.get("alarm"), "the alarm")
            await lab.sim.kill(site)
            await until(lambda: len(listener.got["status"]) >= 2, "the Will")
            await lab.sim.revive(site)
            await lab.sim.wait_connected(timeout=WAIT_S)

        lab.run(scenario())
    finally:
        listener.close()
    assert [s["state"] for s in listener.got["status"]][:2] == ["online", "offline"]
    counters = [h["counter"] for h in listener.got["heartbeat"]]
    assert counters == list(range(counters[0], counters[0] + len(counters)))
    for kind in ("status", "heartbeat", "alarm"):
        validator = Draft202012Validator(
            json.loads((SCHEMA_DIR / f"{kind}.json").read_text("utf-8")),
            format_checker=FormatChecker(),
        )
        for payload in listener.got[kind]:
            assert [e.message for e in validator.iter_errors(payload)] == [], payload
            verify(payload, key)
            assert payload["site"] == site


def test_a_storm_is_stored_once_and_every_alarm_receipted(lab: Lab) -> None:
    """2 alarms at each of the 50 sites within 3 s. (The other tests leave their sites up.)"""

    async def scenario() -> list[AlarmTrace]:
        before = {t.key for t in await lab.sim.traces()}
        assert await lab.sim.storm(per_site=2, window_s=3.0) == 2 * SITES
        stats = await lab.sim.wait_settled(timeout=WAIT_S)
        assert stats.receipts_rejected == 0
        assert stats.puback_refused == 0
        assert lab.police.store.warnings() == []
        return [t for t in await lab.sim.traces() if t.key not in before]

    storm = lab.run(scenario())
    assert len(storm) == 2 * SITES
    assert sorted(Counter(t.site for t in storm).values()) == [2] * SITES
    for trace in storm:
        assert trace.published_mono is not None
        assert trace.puback_mono is not None
        assert trace.receipt_mono is not None
        assert trace.receipt_wall is not None
        assert trace.raised_mono <= trace.published_mono <= trace.puback_mono
        assert trace.receipts >= 1
        assert trace.receiver == "police-sim-test"
        assert trace.stored_at is not None  # the police's own clock: stored after published
        assert parse_iso(trace.stored_at).timestamp() >= trace.published_wall - 0.001
    stored = lab.messages("sim-")
    assert len(stored) == len(set(stored))  # each exactly once ...
    assert sorted(stored) == sorted(t.key for t in lab.run(lab.sim.traces()))  # ... none other
    first = [seq for site, _e, seq in stored if site == lab.sim.sites[0]]
    assert first == list(range(1, len(first) + 1))  # the site's seq, in order


def test_a_police_ack_reaches_its_site(lab: Lab) -> None:
    site = lab.sim.sites[40]

    async def scenario() -> None:
        event_id, _seq = await lab.sim.raise_alarm(site)
        await until(lambda: lab.police.store.alarm_row(event_id), "the alarm stored")
        acks = (await lab.sim.stats()).acks
        await lab.police.act(event_id, "acknowledged", "110 指挥中心 王")

        async def acked() -> bool:
            return (await lab.sim.stats()).acks == acks + 1

        await until(acked, "the ack at the site")
        await lab.sim.wait_settled(timeout=WAIT_S)

    lab.run(scenario())


def test_a_killed_site_is_seen_offline_by_its_will_and_comes_back(lab: Lab) -> None:
    site = lab.sim.sites[45]

    async def scenario() -> None:
        await until(lambda: _site_row(lab, site)["state"] == "online", "the site online")
        started_at = _site_row(lab, site)["started_at"]
        await lab.sim.kill(site)
        row = await until(
            lambda: (r := _site_row(lab, site))["state"] == "lost" and r, "the site lost"
        )
        assert row["last_status"] == "offline"
        assert "offline" in row["reason"]
        # no DISCONNECT, no offline from the site: the broker published its Will
        log = lab.broker.log_file.read_text("utf-8", errors="replace")
        assert f"Client edgeguard-{site} closed its connection." in log
        assert f"Received DISCONNECT from edgeguard-{site}" not in log
        stats = await lab.sim.stats()
        assert stats.killed == 1
        assert stats.connected == SITES - 1
        await lab.sim.revive(site)
        row = await until(
            lambda: (r := _site_row(lab, site))["state"] == "online" and r, "the site back"
        )
        assert row["started_at"] != started_at  # a restart, not a reconnection
        assert (await lab.sim.stats()).killed == 0

    lab.run(scenario())


def test_a_silenced_site_is_lost_though_connected(lab: Lab) -> None:
    site = lab.sim.sites[46]

    async def scenario() -> None:
        await until(lambda: _site_row(lab, site)["state"] == "online", "the site online")
        await lab.sim.silence(site)
        row = await until(
            lambda: (r := _site_row(lab, site))["state"] == "lost" and r, "the silent site lost"
        )
        assert "no heartbeat" in row["reason"]
        assert row["last_status"] == "online"
        stats = await lab.sim.stats()
        assert stats.silenced == 1
        assert stats.connected >= SITES - 1
        await lab.sim.silence(site, silent=False)
        await until(lambda: _site_row(lab, site)["state"] == "online", "heartbeats again")

    lab.run(scenario())


def test_worker_processes_over_mqtt_3_1_1(lab: Lab) -> None:
    """Two worker processes, MQTT 3.1.1, client id = site id; a clean stop says offline."""
    sim = SiteSimulator(lab.configs["workers"])

    async def scenario() -> None:
        await sim.start(timeout=WAIT_S)
        try:
            stats = await sim.stats()
            assert (stats.processes, stats.connected) == (2, 4)
            for site in sim.sites:
                await sim.raise_alarm(site)
            stats = await sim.wait_settled(timeout=WAIT_S)
            assert (stats.alarms, stats.alarms_receipted) == (4, 4)
            await until(
                lambda: all(_site_row(lab, s)["state"] == "online" for s in sim.sites),
                "the workers' sites online",
            )
            traces = await sim.traces()
        finally:
            await sim.stop()
        assert sorted(lab.messages("w-")) == sorted(t.key for t in traces)
        await until(
            lambda: all(_site_row(lab, s)["last_status"] == "offline" for s in sim.sites),
            "the workers' sites offline after a clean stop",
        )

    lab.run(scenario())
    log = lab.broker.log_file.read_text("utf-8", errors="replace")
    assert "as w-00001 (p2, c0" in log  # MQTT 3.1.1 (p2), persistent session, own client id


def test_a_receipt_not_signed_by_a_trusted_key_is_refused_and_the_alarm_resent(lab: Lab) -> None:
    sim = SiteSimulator(lab.configs["forged"])

    async def scenario() -> None:
        await sim.start(timeout=WAIT_S)
        try:
            await sim.raise_alarm(sim.sites[0])

            async def resent() -> bool:
                stats = await sim.stats()
                return stats.resent_no_receipt >= 2 and stats.receipts_rejected >= 3

            await until(resent, "the alarm published again for want of a trusted receipt")
            stats = await sim.stats()
            (trace,) = await sim.traces()
        finally:
            await sim.stop()
        assert trace.receipt_mono is None
        assert trace.publishes >= 3
        assert stats.alarms_receipted == 0
        assert stats.receipts == 0
        assert lab.messages("x-") == [trace.key]  # resent, stored once

    lab.run(scenario())


def test_sites_reconnect_after_a_broker_restart_and_deliver_what_was_raised_meanwhile(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """The conftest's own broker (TLS, ACL), no police: stopped, alarms raised meanwhile,
    started again on the same port; every site comes back and every alarm gets its PUBACK."""
    assert broker.pki is not None
    assert broker.tls_port is not None
    config = SimConfig(
        tmp_path / "sim", port=broker.tls_port, sites=5, prefix="r-",
        pki_dir=broker.pki.directory, reconnect_min_s=0.2, reconnect_max_s=1.0,
    )  # fmt: skip
    sim = SiteSimulator(config)

    async def scenario() -> None:
        await sim.start(timeout=WAIT_S)
        try:
            await asyncio.to_thread(broker.stop)
            await until(lambda: _connected(sim, 0), "every link down")
            for site in sim.sites:
                await sim.raise_alarm(site)
            assert (await sim.stats()).alarms_pubacked == 0
            await asyncio.to_thread(broker.start)
            stats = await sim.wait_settled(timeout=WAIT_S)
            assert stats.alarms_pubacked == 5
            assert stats.links_lost == 5
            await sim.wait_connected(timeout=WAIT_S)
            assert (await sim.stats()).connects >= 10
        finally:
            await sim.stop()

    asyncio.run(scenario())
    assert "as edgeguard-r-00001 (p5, c0" in broker.log_file.read_text("utf-8", errors="replace")


async def _connected(sim: SiteSimulator, count: int) -> bool:
    return (await sim.stats()).connected == count
