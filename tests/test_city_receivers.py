"""The city platform's receivers on a REAL three-node RabbitMQ cluster and a REAL PostgreSQL,
both started by the fixtures (own directories, loopback ports chosen at run time).

Sites here are paho MQTT 3.1.1 clients over TLS with their certificate, publishing messages
signed with their own keys exactly as the daemon does (edgeguard.signing); the receivers are
PoliceService instances in city mode (AMQP competing consumers, PostgreSQL store), in this
process or as `edgeguard police` processes that a test kills."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edgeguard.ids import iso_ms, utc_now
from edgeguard.lab.pki import DevPKI
from edgeguard.lab.postgres import PostgresServer
from edgeguard.lab.rabbitmq import RabbitCluster, RabbitNode
from edgeguard.police.config import PoliceConfig
from edgeguard.police.service import PoliceService
from edgeguard.receipts import ReceiptError, load_receipt_keys, parse_receipt
from edgeguard.signing import Signer, generate_keypair

# the module's cluster starts inside its first test: up to the lab's rejoin wait (rabbitmq.py)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
SITES = ("hosp-01", "hosp-02", "hosp-03", "hosp-04")
NEW_SITE = "hosp-04"  # its key is not in the keys folder when the receivers start
HOST = "127.0.0.1"
WAIT = 60.0


# --- the lab ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("city")
    pki = DevPKI(root / "pki")
    keys = root / "keys"
    keys.mkdir()
    for site in SITES:
        public = generate_keypair(root / f"{site}.key")
        if site != NEW_SITE:
            public.replace(keys / f"{site}.pub")
    police_key = root / "police-receipts.key"
    police_pub = generate_keypair(police_key)
    with (
        PostgresServer(root / "pg") as pg,
        RabbitCluster(root / "rabbit", pki, sites=SITES) as cluster,
    ):
        yield {
            "root": root,
            "pki": pki,
            "keys": keys,
            "pg": pg,
            "cluster": cluster,
            "police_key": police_key,
            "police_pub": police_pub,
        }


@pytest.fixture
def database(lab: dict[str, Any]) -> str:
    """A fresh database of its own for each test: its DSN."""
    pg: PostgresServer = lab["pg"]
    return pg.create_database(f"t{uuid.uuid4().hex[:12]}")


def city_config(lab: dict[str, Any], dsn: str, receiver_id: str, **extra: Any) -> dict[str, Any]:
    cluster: RabbitCluster = lab["cluster"]
    return {
        "receiver_id": receiver_id,
        "keys_dir": str(lab["keys"]),
        "receipt_key": str(lab["police_key"]),
        "database": str(lab["root"] / receiver_id / "unused.db"),
        "snapshots_dir": str(lab["root"] / "snapshots"),
        "postgres": {"dsn": dsn},
        "amqp": {
            "nodes": [f"{HOST}:{n.amqp_port}" for n in cluster.nodes],
            "username": cluster.police,
            "password": cluster.police_password,
            "queue_prefix": f"edgeguard-police.{receiver_id.split('-', 1)[0]}-",
            "reconnect_s": 0.3,
        },
        "sites": {site: {"heartbeat_interval": 1.0} for site in SITES},
        "web": {"enabled": False},
        **extra,
    }


@contextlib.asynccontextmanager
async def receiver(config: dict[str, Any]) -> AsyncIterator[PoliceService]:
    service = PoliceService(PoliceConfig.model_validate(config))
    await service.start()
    try:
        # its queues exist once it is on the cluster (a site's alarm before that would wait
        # for its receipt and be sent again: docs/city-platform.md)
        await until(lambda: service.link()["connected"], "the receiver on the cluster")
        yield service
    finally:
        await service.stop()
        service.close()


async def until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.2)


def rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


# --- a site, as the daemon speaks (docs/mqtt-api.md) ------------------------------------------
class Site:
    """One MQTT 3.1.1 connection over TLS (its certificate) to one node; signed messages."""

    def __init__(self, lab: dict[str, Any], site: str, node: RabbitNode) -> None:
        self.site = site
        self.signer = Signer.from_file(lab["root"] / f"{site}.key")
        self.police_keys = load_receipt_keys([lab["police_pub"]])
        self.receipts: dict[tuple[str, int], float] = {}
        self.bad_receipts: list[str] = []
        self.acked: set[int] = set()
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=site,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        pki: DevPKI = lab["pki"]
        pair = pki.client(site)
        self.client.tls_set(
            ca_certs=str(pki.ca_file), certfile=str(pair.cert), keyfile=str(pair.key)
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = lambda _c, _u, mid, _rc, _p: self._puback(mid)
        self.client.will_set(
            f"edgeguard/{site}/status", self.signer.encode(self._status("offline")), 1, True
        )
        self.client.connect_async(HOST, node.mqtts_port, keepalive=5)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            client.subscribe(f"edgeguard/{self.site}/receipt", qos=1)
            client.publish(
                f"edgeguard/{self.site}/status", self.signer.encode(self._status("online")), 1, True
            )
            self.connected.set()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            receipt = parse_receipt(message.payload, self.police_keys, self.site)
        except ReceiptError as exc:
            self.bad_receipts.append(str(exc))
            return
        with self._lock:
            self.receipts.setdefault((receipt.event_id, receipt.seq), time.monotonic())

    def _puback(self, mid: int) -> None:
        with self._lock:
            self.acked.add(mid)

    def _status(self, state: str) -> dict[str, Any]:
        return {
            "v": 1,
            "type": "status",
            "site": self.site,
            "state": state,
            "version": "test",
            "started_at": iso_ms(utc_now()),
            "uptime_s": 1.0,
            "at": iso_ms(utc_now()),
        }

    def alarm(self, event_id: str, seq: int = 1) -> int:
        payload = {
            "v": 1,
            "type": "alarm",
            "message": "new",
            "event_id": event_id,
            "site": self.site,
            "site_name": f"{self.site} hospital",
            "seq": seq,
            "kind": "panic",
            "state": "active",
            "priority": 1,
            "source": "btn-1",
            "location": {"id": "er", "label": "ER desk"},
            "occurred_at": iso_ms(utc_now()),
            "updated_at": iso_ms(utc_now()),
            "input_active": True,
            "trigger_count": 1,
            "restored_at": None,
            "reset_at": None,
            "reset_by": None,
            "detail": {},
            "cameras": [],
            "evidence": [],
        }
        info = self.client.publish(
            f"edgeguard/{self.site}/alarm/btn-1", self.signer.encode(payload), qos=1
        )
        return info.mid

    def heartbeat(self, counter: int) -> None:
        payload = {
            "v": 1,
            "type": "heartbeat",
            "site": self.site,
            "counter": counter,
            "at": iso_ms(utc_now()),
            "uptime_s": 1.0,
            "open_alarms": 0,
            "outbox_pending": 0,
            "log_head": {"id": 1, "hash": "0" * 64},
        }
        self.client.publish(f"edgeguard/{self.site}/heartbeat", self.signer.encode(payload), qos=0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def site(lab: dict[str, Any], name: str, node: int = 0) -> Iterator[Site]:
    s = Site(lab, name, lab["cluster"].nodes[node])
    assert s.connected.wait(WAIT), f"{name} did not connect"
    try:
        yield s
    finally:
        s.close()


class Heartbeats:
    """Heartbeats every 0.5 s from some sites, on a thread, until stopped."""

    def __init__(self, sites: list[Site]) -> None:
        self.sites = sites
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        counter = 0
        while not self.stop.wait(0.5):
            counter += 1
            for s in self.sites:
                s.heartbeat(counter)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


# --- tests -------------------------------------------------------------------------------------
def test_alarm_through_the_cluster_is_stored_once_and_receipted(
    lab: dict[str, Any], database: str
) -> None:
    asyncio.run(_stored_once_and_receipted(lab, database))


async def _stored_once_and_receipted(lab: dict[str, Any], database: str) -> None:
    async with (
        receiver(city_config(lab, database, "a-1")),
        receiver(city_config(lab, database, "a-2")),
    ):
        with site(lab, "hosp-01", node=1) as s:
            event = str(uuid.uuid4())
            s.alarm(event)
            s.alarm(event)  # resent (a lost PUBACK): stored once
            await until(lambda: (event, 1) in s.receipts, "the receipt")
            assert rows(database, "SELECT COUNT(*) FROM messages WHERE event_id = %s", event) == [
                (1,)
            ]
            assert rows(
                database, "SELECT site, police_state FROM alarms WHERE event_id = %s", event
            ) == [("hosp-01", "new")]
            assert not s.bad_receipts


def test_sites_supervised_by_one_elected_receiver(lab: dict[str, Any], database: str) -> None:
    asyncio.run(_supervised_by_one(lab, database))


async def _supervised_by_one(lab: dict[str, Any], database: str) -> None:
    config_a, config_b = city_config(lab, database, "b-1"), city_config(lab, database, "b-2")
    with site(lab, "hosp-01") as one, site(lab, "hosp-02", node=2) as two:
        beats = Heartbeats([one, two])
        try:
            async with receiver(config_a) as a, receiver(config_b) as b:
                await until(lambda: a.intake.lock.held or b.intake.lock.held, "a supervisor")
                assert not (a.intake.lock.held and b.intake.lock.held)
                state = lambda s: rows(database, "SELECT state FROM sites WHERE id = %s", s)  # noqa: E731
                await until(lambda: state("hosp-01") == [("online",)], "hosp-01 online")
                await until(lambda: state("hosp-02") == [("online",)], "hosp-02 online")
                beats.sites = [one]  # hosp-02 falls silent
                await until(lambda: state("hosp-02") == [("lost",)], "hosp-02 lost by silence", 30)
                assert state("hosp-01") == [("online",)]
        finally:
            beats.close()


def test_a_consuming_channel_closed_by_the_broker_starts_a_new_session(
    lab: dict[str, Any], database: str
) -> None:
    """aiormq closes a channel whose RPC times out, and the broker closes a channel on a
    channel error; the connection lives on. A receiver whose supervision channel was closed
    so was deaf to Wills and silence while looking connected: now it starts afresh."""
    asyncio.run(_channel_closed(lab, database))


async def _channel_closed(lab: dict[str, Any], database: str) -> None:
    import aiormq

    with site(lab, "hosp-03") as one:
        beats = Heartbeats([one])
        try:
            async with receiver(city_config(lab, database, "c-1")) as a:
                state = lambda: rows(database, "SELECT state FROM sites WHERE id = 'hosp-03'")  # noqa: E731
                await until(lambda: state() == [("online",)], "hosp-03 online")
                before = a.link()["since"]
                channel = a._link._supervision_queue.channel  # type: ignore[union-attr]
                with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
                    await channel.declare_queue("no-such-queue", passive=True)  # closes it
                await until(
                    lambda: a.link()["connected"] and a.link()["since"] != before,
                    "a new session after the channel closed",
                )
                beats.sites = []  # hosp-03 falls silent: the new session hears the silence
                await until(lambda: state() == [("lost",)], "hosp-03 lost by silence", 30)
        finally:
            beats.close()


# --- receivers as processes, killed ------------------------------------------------------------
class ReceiverProcess:
    """`edgeguard police -c FILE` in city mode, as a city's IT runs it."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / "police.yaml"
        self.config_file.write_text(yaml.safe_dump(config), "utf-8")
        self.log = workdir / "receiver.log"
        self.receiver_id = config["receiver_id"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "edgeguard"),
                    "police",
                    "-c",
                    str(self.config_file),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def text(self) -> str:
        return self.log.read_text("utf-8", "replace")


@contextlib.contextmanager
def receivers(
    lab: dict[str, Any], dsn: str, *ids: str, **extra: Any
) -> Iterator[list[ReceiverProcess]]:
    procs = [ReceiverProcess(city_config(lab, dsn, rid, **extra), lab["root"] / rid) for rid in ids]
    for proc in procs:
        proc.start()
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def stored_events(dsn: str) -> set[str]:
    return {row[0] for row in rows(dsn, "SELECT DISTINCT event_id FROM messages")}


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def stream(sender: Site, count: int, pause: float, events: list[str]) -> threading.Thread:
    def run() -> None:
        for _ in range(count):
            events.append(str(uuid.uuid4()))
            sender.alarm(events[-1])
            time.sleep(pause)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_receiver_killed_mid_stream_loses_nothing(lab: dict[str, Any], database: str) -> None:
    with receivers(lab, database, "c-1", "c-2") as (one, two), site(lab, "hosp-01") as sender:
        wait_for(
            lambda: "cluster link up" in one.text() and "cluster link up" in two.text(),
            "both receivers on the cluster",
        )
        events: list[str] = []
        thread = stream(sender, 200, 0.01, events)
        wait_for(lambda: len(stored_events(database)) >= 40, "the first alarms stored")
        one.kill()  # mid-stream: its unacknowledged batch goes to the other receiver
        thread.join(30)
        wait_for(lambda: stored_events(database) >= set(events), "every alarm stored", 90)
        duplicates = rows(
            database,
            "SELECT event_id, COUNT(*) FROM messages GROUP BY event_id HAVING COUNT(*) > 1",
        )
        assert duplicates == []
        assert rows(database, "SELECT COUNT(*) FROM alarms") == [(200,)]
        receivers_seen = {r[0] for r in rows(database, "SELECT DISTINCT receiver FROM messages")}
        assert receivers_seen == {"c-1", "c-2"}, receivers_seen
        wait_for(lambda: all(((e, 1) in sender.receipts) for e in events), "every receipt", 60)


def test_postgresql_restarted_alarms_wait_in_the_queue(lab: dict[str, Any], database: str) -> None:
    pg: PostgresServer = lab["pg"]
    with receivers(lab, database, "d-1", "d-2") as (one, two), site(lab, "hosp-02") as sender:
        wait_for(
            lambda: "cluster link up" in one.text() and "cluster link up" in two.text(),
            "both receivers on the cluster",
        )
        events: list[str] = []
        thread = stream(sender, 150, 0.03, events)
        wait_for(lambda: len(stored_events(database)) >= 10, "the first alarms stored")
        pg.kill()  # the database crashes mid-stream
        sent_before = len(events)
        wait_for(lambda: len(events) >= sent_before + 20, "alarms sent while it is down")
        time.sleep(1)
        pg.start()
        thread.join(30)
        wait_for(lambda: stored_events(database) >= set(events), "every alarm stored", 90)
        assert rows(database, "SELECT COUNT(*) FROM alarms") == [(150,)]
        # the batches of the outage waited for a connection from the pool (up to its
        # timeout) or failed and were kept to try again: either way unacknowledged until stored


def test_the_supervisor_dies_and_another_takes_over(lab: dict[str, Any], database: str) -> None:
    with site(lab, "hosp-01") as quiet, site(lab, "hosp-03") as alive:
        beats = Heartbeats([quiet, alive])
        try:
            with receivers(lab, database, "e-1", "e-2") as procs:
                wait_for(lambda: all("cluster link up" in p.text() for p in procs), "receivers up")
                state = lambda s: rows(database, "SELECT state FROM sites WHERE id = %s", s)  # noqa: E731
                wait_for(lambda: state("hosp-01") == [("online",)], "hosp-01 online")
                boss = wait_for(
                    lambda: next((p for p in procs if "is now the supervisor" in p.text()), None),
                    "a supervisor",
                )
                other = next(p for p in procs if p is not boss)
                boss.kill()
                wait_for(
                    lambda: "is now the supervisor" in other.text(), "the other takes over", 30
                )
                beats.sites = [alive]
                began = time.monotonic()
                wait_for(lambda: state("hosp-01") == [("lost",)], "hosp-01 lost", 30)
                assert time.monotonic() - began < 20
                assert state("hosp-03") == [("online",)]
        finally:
            beats.close()


@pytest.mark.timeout(600)  # a node's rejoin alone may take minutes on a loaded machine
def test_the_node_a_receiver_is_on_dies(lab: dict[str, Any], database: str) -> None:
    cluster: RabbitCluster = lab["cluster"]
    with receivers(lab, database, "f-1") as (one,), site(lab, "hosp-02", node=1) as sender:
        wait_for(lambda: "cluster link up" in one.text(), "the receiver on the cluster")
        first = cluster.nodes[0]  # the receiver tries the nodes in order: it is on eg1
        assert f"link up: {HOST}:{first.amqp_port}" in one.text()
        events: list[str] = []
        thread = stream(sender, 60, 0.05, events)
        wait_for(lambda: len(stored_events(database)) >= 10, "the first alarms stored")
        cluster.kill(first)
        try:
            thread.join(30)
            wait_for(lambda: stored_events(database) >= set(events), "every alarm stored", 90)
            assert f"link up: {HOST}:{cluster.nodes[1].amqp_port}" in one.text()
        finally:
            cluster.restart(first)
            cluster.wait_running(3)


def test_a_hospital_added_while_the_receivers_run(lab: dict[str, Any], database: str) -> None:
    asyncio.run(_hospital_added(lab, database))


async def _hospital_added(lab: dict[str, Any], database: str) -> None:
    key = lab["keys"] / f"{NEW_SITE}.pub"
    async with receiver(city_config(lab, database, "g-1")):
        with site(lab, NEW_SITE, node=2) as newcomer:
            refused = str(uuid.uuid4())
            newcomer.alarm(refused)
            warned = "SELECT text FROM warnings WHERE site = %s"
            await until(lambda: rows(database, warned, NEW_SITE), "a warning about the stranger")
            assert "no key" in rows(database, warned, NEW_SITE)[0][0]
            key.write_bytes((lab["root"] / f"{NEW_SITE}.pub").read_bytes())
            try:
                accepted = str(uuid.uuid4())

                def resent_until_stored() -> bool:  # as a site does until its receipt
                    newcomer.alarm(accepted)
                    time.sleep(1)
                    return accepted in stored_events(database)

                await until(resent_until_stored, "the new site's alarm", 30)
                assert refused not in stored_events(database)  # until the site sends it again
            finally:
                key.unlink()
