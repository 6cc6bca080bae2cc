"""The broker setup docs/mqtt-api.md recommends: it saves its state often (mosquitto's default
is every 1,800 s), and once it has saved, a crash (SIGKILL) keeps the alarms it queued for an
offline police receiver. The lab broker the tests use runs with the same settings."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeguard.lab.broker import Mosquitto

DOCS = Path(__file__).resolve().parent.parent / "docs" / "mqtt-api.md"
SAVE_KEYS = ("persistence", "autosave_interval", "autosave_on_changes")


def _docs_conf() -> dict[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"### 10\.2 mosquitto\.conf\s+```\n(.*?)```", text, re.S)
    assert block is not None, "docs/mqtt-api.md lost its mosquitto.conf section"
    settings: dict[str, str] = {}
    for line in block.group(1).splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            settings.setdefault(key, value.strip())
    return settings


def _client(client_id: str) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=MQTTProtocolVersion.MQTTv5)


def _connect_persistent(client: mqtt.Client, port: int) -> None:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 300
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()


def test_docs_advise_saving_every_second_as_the_lab_broker_does(tmp_path: Path) -> None:
    docs = _docs_conf()
    assert docs["persistence"] == "true"
    assert int(docs["autosave_interval"]) <= 1
    assert docs["autosave_on_changes"] == "false"
    broker = Mosquitto(tmp_path / "b")
    broker.start()
    try:
        lab = dict(line.partition(" ")[::2] for line in
                   broker.config_file.read_text(encoding="utf-8").splitlines())
    finally:
        broker.stop()
    assert {key: lab[key] for key in SAVE_KEYS} == {key: docs[key] for key in SAVE_KEYS}


def test_after_its_save_a_killed_broker_keeps_queued_alarms(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "b")
    broker.start()
    police, site = _client("police-advice"), _client("site-advice")
    try:
        subscribed = threading.Event()
        police.on_subscribe = lambda *_: subscribed.set()
        _connect_persistent(police, broker.port)
        police.subscribe("edgeguard/#", qos=1)
        assert subscribed.wait(30)
        police.disconnect()
        police.loop_stop()
        site.connect("127.0.0.1", broker.port)
        site.loop_start()
        infos = [site.publish(f"edgeguard/s/alarm/{i}", b"x", qos=1) for i in range(5)]
        for info in infos:
            info.wait_for_publish(30)
        acked_at = time.time_ns()
        db = broker.persistence_dir / "mosquitto.db"
        deadline = time.monotonic() + 60
        while not (db.exists() and db.stat().st_mtime_ns > acked_at):
            assert time.monotonic() < deadline, "the broker never saved its state"
            time.sleep(0.1)
        broker.kill()
        broker.start()
        received: list[str] = []
        police = _client("police-advice")
        police.on_message = lambda _c, _u, msg: received.append(msg.topic)
        _connect_persistent(police, broker.port)
        deadline = time.monotonic() + 60
        while len(received) < 5:
            assert time.monotonic() < deadline, f"only {received} after the crash"
            time.sleep(0.05)
        assert sorted(received) == [f"edgeguard/s/alarm/{i}" for i in range(5)]
    finally:
        for client in (police, site):
            client.disconnect()
            client.loop_stop()
        broker.stop()
