"""The police receiver end to end: a real mosquitto (TLS client certificates + ACL), real
daemons, and PoliceService on its own asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgeguard.lab.broker import Mosquitto, free_port
from edgeguard.lab.harness import DaemonProcess, Site, make_site, tls_mqtt
from edgeguard.police.config import PoliceConfig
from edgeguard.police.link import ActionError
from edgeguard.police.service import PoliceService
from edgeguard.signing import Signer, generate_keypair

LOCATION = {"id": "er", "label": "急诊分诊台", "building": "门诊楼", "floor": "1F", "zone": "ER"}
Daemons = Callable[..., DaemonProcess]
EVENT_ID = "01a20614-91ec-70e4-b533-6874e06fb7a0"


def police_config(
    tmp_path: Path,
    broker: Mosquitto,
    site: Site,
    *,
    receiver_id: str = "police-test-1",
    database: Path | None = None,
    group: str | None = None,
    heartbeat_interval: float | None = 1.0,
) -> PoliceConfig:
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    shutil.copy(site.public_key, keys / f"{site.site_id}.pub")
    assert broker.pki is not None
    sites = {} if heartbeat_interval is None else {site.site_id: {"heartbeat_interval": 1.0}}
    return PoliceConfig.model_validate(
        {
            "receiver_id": receiver_id,
            "mqtt": {
                **tls_mqtt(broker, "police"),
                "reconnect_min": 0.2,
                "reconnect_max": 1.0,
            },
            "shared_group": group,
            "keys_dir": str(keys),
            "database": str(database or tmp_path / "police.db"),
            "sites": sites,
            "web": {"enabled": False},
        }
    )


@contextlib.asynccontextmanager
async def running(config: PoliceConfig) -> AsyncIterator[PoliceService]:
    service = PoliceService(config)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        service.close()


async def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def subscribed(service: PoliceService, site: str = "hosp-01") -> None:
    """The site's status/heartbeat reached this receiver: its subscriptions are active."""
    await until(lambda: service.tracker.state(site) == "online", 15, f"{site} online")


def drain(queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


class RawClient:
    """A client that publishes anything: the broker's plain listener (no ACL), or TLS with a
    certificate."""

    def __init__(self, broker: Mosquitto, cn: str | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        host, port = "127.0.0.1", broker.port
        if cn is not None and broker.pki is not None:
            pair = broker.pki.client(cn)
            self.client.tls_set(str(broker.pki.ca_file), str(pair.cert), str(pair.key))
            host, port = "localhost", broker.tls_port or 0
        connected = threading.Event()
        self.client.on_connect = lambda *_a: connected.set()
        self.client.connect(host, port)
        self.client.loop_start()
        assert connected.wait(10), "raw client not connected"

    def publish(self, topic: str, body: bytes) -> None:
        self.client.publish(topic, body, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def signed_alarm(site: Site, **changes: Any) -> bytes:
    payload = {
        "v": 1, "type": "alarm", "message": "new", "event_id": EVENT_ID, "site": site.site_id,
        "site_name": "市第一人民医院", "seq": 1, "kind": "panic",
        "state": "active", "priority": 1, "source": "er-button", "location": LOCATION,
        "occurred_at": "2026-11-23T01:45:41.100Z", "updated_at": "2026-11-23T01:45:41.100Z",
        "input_active": True, "trigger_count": 1, "restored_at": None, "reset_at": None,
        "reset_by": None, "detail": {"input": "er-button", "simulated": True}, "cameras": [],
    }  # fmt: skip
    payload.update(changes)
    return Signer.from_file(site.directory / f"{site.site_id}.key").encode(payload)


# --- with a real daemon ----------------------------------------------------------------------
def test_press_arrives_once_with_location(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons
) -> None:
    daemon = daemons(site)

    async def scenario() -> None:
        async with running(police_config(tmp_path, broker, site)) as service:
            updates = service.subscribe()
            await subscribed(service)
            await asyncio.to_thread(daemon.press, "er-button")
            (alarm,) = await until(service.store.open_alarms, what="the alarm")
            assert alarm["location"] == LOCATION
            assert (alarm["kind"], alarm["priority"], alarm["site"]) == ("panic", 1, "hosp-01")
            assert (alarm["police_state"], alarm["site_name"]) == ("new", "市第一人民医院")
            await until(lambda: any(u["type"] == "alarm" for u in drain(updates)), what="update")
            detail = service.store.alarm(alarm["event_id"])
            assert detail is not None
            assert [m["message"] for m in detail["messages"]] == ["new"]
            assert service.store.warnings() == []
            (row,) = service.sites()
            assert row["state"] == "online"
            assert row["name"] == "市第一人民医院"
            assert row["heartbeat_age_s"] is not None
            assert row["supervised"] is True
            assert service.link()["connected"] is True

    run(scenario())


def test_act_publishes_the_ack_the_site_records(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons
) -> None:
    daemon = daemons(site)

    async def scenario() -> None:
        async with running(police_config(tmp_path, broker, site)) as service:
            await subscribed(service)
            await asyncio.to_thread(daemon.press, "er-button")
            (alarm,) = await until(service.store.open_alarms, what="the alarm")
            event_id = alarm["event_id"]
            updates = service.subscribe()
            row = await service.act(event_id, "acknowledged", "110 指挥中心 王")
            assert (row["police_state"], row["police_by"]) == ("acknowledged", "110 指挥中心 王")

            def site_state() -> str | None:
                alarms = daemon.status()["open_alarms"]
                return alarms[0]["state"] if alarms else None

            await until(lambda: site_state() == "acknowledged", what="the site's ack")
            assert any(
                u["type"] == "alarm" and u["data"]["police_state"] == "acknowledged"
                for u in drain(updates)
            )
            bad_calls = [
                ("nope", "acknowledged", "x"),
                (event_id, "acknowledged", " "),
                (event_id, "acknowledged", "x" * 101),
                (event_id, "reset", "x"),
            ]
            for bad in bad_calls:
                with pytest.raises(ActionError):
                    await service.act(*bad)
            await _act_without_puback(broker, service, event_id)

    run(scenario())


async def _act_without_puback(broker: Mosquitto, service: PoliceService, event_id: str) -> None:
    """A broker that does not answer: ActionError after 5 s; police_state unchanged."""
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ActionError, match="no PUBACK"):
            await service.act(event_id, "dispatched", "王")
        assert 4.5 < time.monotonic() - started < 7
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    row = service.store.alarm(event_id)
    assert row is not None
    assert row["police_state"] == "acknowledged"
    assert [a["published_ok"] for a in row["actions"]] == [1, 0]


def test_receiver_down_gets_the_alarm_after_restart(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons
) -> None:
    daemon = daemons(site)
    config = police_config(tmp_path, broker, site)

    async def scenario() -> None:
        async with running(config) as service:
            await subscribed(service)  # the persistent session and its subscriptions exist
        await asyncio.to_thread(daemon.press, "er-button")
        await asyncio.sleep(0.5)  # delivered to the broker, queued for the receiver
        async with running(config) as service:
            (alarm,) = await until(service.store.open_alarms, what="the queued alarm")
            assert alarm["location"] == LOCATION
            assert service.link()["session_present"] is True

    run(scenario())


def test_killed_site_is_lost_within_20_s(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons
) -> None:
    daemon = daemons(site)
    # no per-site policy: the production timeout (15 s of silence) applies
    config = police_config(tmp_path, broker, site, heartbeat_interval=None)

    async def scenario() -> None:
        async with running(config) as service:
            await subscribed(service)
            started = time.monotonic()
            await asyncio.to_thread(daemon.kill)
            row = await until(
                lambda: (s := service.site("hosp-01")) and s["state"] == "lost" and s,
                25,
                "site lost",
            )
            elapsed = time.monotonic() - started
            print(f"\nsite lost {elapsed:.2f} s after kill -9 ({row['reason']})")
            assert elapsed <= 20

    run(scenario())


def test_shared_group_one_database(tmp_path: Path, broker: Mosquitto, daemons: Daemons) -> None:
    inputs = [{"type": "simulated", "name": f"b{i}", "location": "er"} for i in range(6)]
    site = make_site(tmp_path / "multi", broker, inputs=inputs)
    daemon = daemons(site)
    database = tmp_path / "shared.db"
    first = police_config(
        tmp_path, broker, site, receiver_id="police-a", database=database, group="hq"
    )
    second = first.model_copy(update={"receiver_id": "police-b"})

    async def scenario() -> None:
        async with running(first) as a, running(second) as b:
            queues = (a.subscribe(), b.subscribe())
            await subscribed(a)
            await subscribed(b)
            for i in range(6):
                await asyncio.to_thread(daemon.press, f"b{i}")
            alarms = await until(lambda: len(a.store.open_alarms()) == 6 and a.store.open_alarms())
            ids = {x["event_id"] for x in alarms}
            rows = a.store.conn.execute("SELECT event_id, receiver FROM messages").fetchall()
            assert sorted(r[0] for r in rows) == sorted(ids)  # each stored once
            assert {r[1] for r in rows} == {"police-a", "police-b"}  # the load was shared
            for queue in queues:
                seen: set[str] = set()

                def all_seen(q: asyncio.Queue[dict[str, Any]] = queue, s: set[str] = seen) -> bool:
                    s.update(u["data"]["event_id"] for u in drain(q) if u["type"] == "alarm")
                    return s == ids

                await until(all_seen, what="both receivers see every alarm")

    run(scenario())


# --- injected messages -----------------------------------------------------------------------
def test_duplicates_forgeries_and_garbage(tmp_path: Path, broker: Mosquitto, site: Site) -> None:
    raw = RawClient(broker)
    police_cert = RawClient(broker, cn="police")
    other = generate_keypair(tmp_path / "other.key")
    assert other.exists()

    async def scenario() -> None:
        async with running(police_config(tmp_path, broker, site)) as service:
            await until(lambda: service.link()["connected"], what="connected")
            await asyncio.sleep(0.3)  # SUBACK
            genuine = signed_alarm(site)
            raw.publish("edgeguard/hosp-01/alarm/er-button", genuine)
            raw.publish("edgeguard/hosp-01/alarm/er-button", genuine)  # resent
            forged = Signer.from_file(tmp_path / "other.key").encode(
                {**_payload(genuine), "event_id": "01a20614-0000-70e4-b533-6874e06fb7a0"}
            )
            raw.publish("edgeguard/hosp-01/alarm/er-button", forged)
            for topic, body in _garbage(site):
                raw.publish(topic, body)
            police_cert.publish("edgeguard/hosp-01/ack", b"\xff\xfe garbage")
            last = signed_alarm(site, event_id="01a20614-ffff-70e4-b533-6874e06fb7a0", seq=2)
            raw.publish("edgeguard/hosp-01/alarm/er-button", last)
            await until(lambda: len(service.store.open_alarms()) == 2, what="two alarms")
            await asyncio.sleep(0.3)
            count = service.store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            assert count == 2
            texts = [w["text"] for w in service.store.warnings()]
            assert any("does not match the site's key" in t for t in texts), texts
            assert any("unknown site" in t for t in texts), texts
            assert any("malformed" in t for t in texts), texts
            assert not (tmp_path / "snapshots").exists()  # no snapshot path accepted
            assert service.link()["connected"] is True

    try:
        run(scenario())
    finally:
        raw.close()
        police_cert.close()


def _payload(body: bytes) -> dict[str, Any]:
    import json

    payload: dict[str, Any] = json.loads(body)
    return payload


def _garbage(site: Site) -> list[tuple[str, bytes]]:
    return [
        ("edgeguard/hosp-01/alarm/er-button", b"\x00\xff not json"),
        ("edgeguard/hosp-01/alarm/er-button", b"[1, 2]"),
        ("edgeguard/hosp-01/status", b"{}"),
        ("edgeguard/hosp-01/heartbeat", b'{"sig": "AAAA"}'),
        ("edgeguard/hosp-01/snapshot/x", b"\xff\xd8"),
        ("edgeguard/hosp-01/snapshot/..%2F/cam", b"\xff\xd8"),
        ("edgeguard/hosp-01/snapshot/e1/..", b"\xff\xd8"),
        ("edgeguard/nosuchsite/alarm/x", b"{}"),
        ("edgeguard/hosp-01", b"short topic"),
        ("edgeguard/hosp-01/alarm/er-button", signed_alarm(site, seq="x")),
        ("edgeguard/hosp-01/alarm/other-source", signed_alarm(site)),
        ("edgeguard/hosp-01/heartbeat", signed_alarm(site)),
    ]


def test_frozen_site_is_lost_within_20_s(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons
) -> None:
    """A site that stops answering without closing its connection (SIGSTOP): silence or the
    broker's keepalive Will, whichever comes first."""
    daemon = daemons(site)
    config = police_config(tmp_path, broker, site, heartbeat_interval=None)
    assert daemon.proc is not None
    pid = daemon.proc.pid

    async def scenario() -> None:
        async with running(config) as service:
            await subscribed(service)
            started = time.monotonic()
            os.kill(pid, signal.SIGSTOP)
            try:
                row = await until(
                    lambda: (s := service.site("hosp-01")) and s["state"] == "lost" and s,
                    25,
                    "site lost",
                )
            finally:
                os.kill(pid, signal.SIGCONT)
            elapsed = time.monotonic() - started
            print(f"\nfrozen site lost {elapsed:.2f} s after SIGSTOP ({row['reason']})")
            assert elapsed <= 20

    run(scenario())


def test_broker_outage_is_link_down_not_sites_lost(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons
) -> None:
    """The receiver loses the broker (a crash: no Wills are published; a graceful mosquitto
    stop publishes every site's Will, which rightly shows them lost): link down, sites not
    declared lost meanwhile, everything back after reconnecting."""
    daemon = daemons(site)
    config = police_config(tmp_path, broker, site)  # the site is lost after 3 s of silence

    async def scenario() -> None:
        async with running(config) as service:
            await subscribed(service)
            updates = service.subscribe()
            await asyncio.to_thread(broker.kill)
            await until(lambda: not service.link()["connected"], what="link down")
            await asyncio.sleep(5)  # longer than the site's timeout
            (row,) = service.sites()
            assert (row["state"], row["supervised"]) == ("online", False)
            assert any(u["type"] == "link" for u in drain(updates))
            await asyncio.to_thread(broker.start)
            await until(lambda: service.link()["connected"], 15, "reconnected")
            await asyncio.to_thread(daemon.press, "er-button")
            (alarm,) = await until(service.store.open_alarms, 15, "the alarm after the outage")
            assert alarm["location"] == LOCATION
            assert service.sites()[0]["state"] == "online"

    run(scenario())


def test_a_receiver_goes_round_its_broker_nodes(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons
) -> None:
    """`mqtt.nodes`: the first address refuses (nothing listens there), the receiver moves on
    to the next node, subscribes there and gets the site's alarm."""
    daemon = daemons(site)
    config = police_config(tmp_path, broker, site)
    dead_port, live = free_port(), f"localhost:{broker.tls_port}"
    mqtt_config = config.mqtt.model_copy(update={"port": dead_port, "nodes": [live]})
    config = config.model_copy(update={"mqtt": mqtt_config})
    assert config.mqtt.addresses() == [("localhost", dead_port), ("localhost", broker.tls_port)]

    async def scenario() -> None:
        async with running(config) as service:
            await subscribed(service)
            assert service.link()["broker"] == live
            await asyncio.to_thread(daemon.press, "er-button")
            (alarm,) = await until(service.store.open_alarms, 15, "the alarm")
            assert alarm["site"] == site.site_id

    run(scenario())


def test_police_broker_nodes_are_checked(tmp_path: Path, broker: Mosquitto, site: Site) -> None:
    data = police_config(tmp_path, broker, site).model_dump(mode="json")
    data["mqtt"]["nodes"] = [f"localhost:{broker.tls_port}"]  # host:port again
    with pytest.raises(ValueError, match="again"):
        PoliceConfig.model_validate(data)
    data["mqtt"]["nodes"] = ["::1"]
    with pytest.raises(ValueError, match="brackets"):
        PoliceConfig.model_validate(data)


def test_snapshot_and_clip_of_one_camera_are_no_warning(
    tmp_path: Path, broker: Mosquitto, site: Site
) -> None:
    """A genuine alarm whose evidence lists a snapshot and a clip of the same camera: each
    hash is checked against its own bytes (the clip stays at the site), whichever of the
    snapshot and the evidence message arrives first."""
    import hashlib

    raw = RawClient(broker)
    first, late = b"\xff\xd8 cam-1 jpeg \xff\xd9", b"\xff\xd8 cam-2 jpeg \xff\xd9"

    def items(camera: str, jpeg: bytes) -> list[dict[str, Any]]:
        return [
            {"camera": camera, "kind": "snapshot", "sha256": hashlib.sha256(jpeg).hexdigest(),
             "bytes": len(jpeg), "topic": f"edgeguard/hosp-01/snapshot/{EVENT_ID}/{camera}"},
            {"camera": camera, "kind": "clip", "sha256": "c" * 64, "bytes": 4096,
             "duration_s": 20.0},
        ]  # fmt: skip

    evidence = [*items("cam-1", first), *items("cam-2", late)]

    async def scenario() -> None:
        async with running(police_config(tmp_path, broker, site)) as service:
            new = signed_alarm(site)

            def stored() -> bool:  # published again until subscribed; stored once
                raw.publish("edgeguard/hosp-01/alarm/er-button", new)
                return bool(service.store.open_alarms())

            await until(stored, what="the alarm")
            raw.publish(f"edgeguard/hosp-01/snapshot/{EVENT_ID}/cam-1", first)
            body = signed_alarm(site, seq=2, message="evidence", evidence=evidence)
            raw.publish("edgeguard/hosp-01/alarm/er-button", body)
            raw.publish(f"edgeguard/hosp-01/snapshot/{EVENT_ID}/cam-2", late)

            def snapshots() -> list[tuple[str, Any]]:
                detail = service.store.alarm(EVENT_ID) or {"snapshots": []}
                return [(s["camera"], s["verified"]) for s in detail["snapshots"]]

            await until(lambda: len(snapshots()) == 2, what="both snapshots")
            assert snapshots() == [("cam-1", True), ("cam-2", True)]
            assert service.store.warnings() == []

    try:
        run(scenario())
    finally:
        raw.close()


def test_a_message_is_acked_when_stored_or_rejected_not_when_the_database_refuses(
    tmp_path: Path, broker: Mosquitto, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """on_message's answer is what the link acks on: False (retried, not acked) while the
    database refuses the write; True for a stored alarm, a rejected one (recorded as a
    warning), and a message the handler fails on (logged, recorded, dropped: retried it would
    hold a broker in-flight slot for ever)."""
    import sqlite3

    service = PoliceService(police_config(tmp_path, broker, site))
    topic = "edgeguard/hosp-01/alarm/er-button"
    try:
        lock = sqlite3.connect(tmp_path / "police.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        assert service.on_message(topic, signed_alarm(site), False, 0.0) is False
        lock.execute("ROLLBACK")
        lock.close()
        assert service.on_message(topic, signed_alarm(site), False, 0.0) is True
        assert len(service.store.open_alarms()) == 1
        assert service.on_message(topic, b"\x00 not json", False, 0.0) is True
        assert len(service.store.warnings()) == 1  # why it was rejected

        def broken(*_args: Any) -> None:
            raise TypeError("a bug")

        monkeypatch.setattr(service.handler, "_alarm", broken)
        assert service.on_message(topic, signed_alarm(site, seq=2), False, 0.0) is True
        assert "could not be handled" in service.store.warnings()[0]["text"]
    finally:
        service.close()


def test_housekeeping_bounds_the_changes_feed(
    tmp_path: Path, broker: Mosquitto, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run every minute by the supervision task, not only at start: a receiver that runs for
    months keeps a bounded feed table."""
    monkeypatch.setattr("edgeguard.police.service.CHANGES_KEPT", 5)
    service = PoliceService(police_config(tmp_path, broker, site))
    try:
        for _ in range(20):
            service.store.note_link()
        service.housekeeping()
        assert len(service.store.changes_since(0)) == 5
    finally:
        service.close()
