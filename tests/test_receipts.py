"""End-to-end receipts, the police side (docs/mqtt-api.md 4.7): a receiver with a receipt key
sends the site a signed receipt for every alarm message it stored, a duplicate included; a site
accepts only a receipt signed by a police key it trusts and addressed to it. Real mosquitto
(TLS, the lab ACL), a real police receiver, the site's own certificate."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from test_police_service import (
    EVENT_ID,
    RawClient,
    police_config,
    run,
    running,
    signed_alarm,
    until,
)

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import Site
from edgeguard.receipts import (
    MAX_RECEIPT_BYTES,
    ReceiptError,
    parse_receipt,
    receipt_payload,
    receipt_topic,
)
from edgeguard.signing import Signer, generate_keypair, load_public_key

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "schema" / "receipt.json"


@pytest.fixture
def police_key(tmp_path: Path) -> Path:
    key = tmp_path / "police-receipts.key"
    generate_keypair(key)
    return key


def _receipt(police_key: Path, **changes: Any) -> bytes:
    payload = {**receipt_payload("hosp-01", EVENT_ID, 3, "new", "police-1"), **changes}
    return Signer.from_file(police_key).encode(payload)


# --- what a site accepts -----------------------------------------------------------------------
def test_a_genuine_receipt_is_accepted(police_key: Path) -> None:
    keys = [load_public_key(police_key.with_suffix(".pub"))]
    receipt = parse_receipt(_receipt(police_key), keys, "hosp-01")
    assert (receipt.event_id, receipt.seq, receipt.message) == (EVENT_ID, 3, "new")
    assert receipt.receiver == "police-1"


def test_a_receipt_signed_by_any_trusted_key_is_accepted(police_key: Path, tmp_path: Path) -> None:
    """Key rotation: a site may trust the old and the new police key for a while."""
    old = generate_keypair(tmp_path / "old.key")  # its public key's path
    keys = [load_public_key(old), load_public_key(police_key.with_suffix(".pub"))]
    assert parse_receipt(_receipt(police_key), keys, "hosp-01").seq == 3


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"{" * 100_000, "bytes"),
        (b'{"v": 1}', "malformed"),
    ],
)
def test_garbage_is_refused_with_a_reason(police_key: Path, body: bytes, why: str) -> None:
    keys = [load_public_key(police_key.with_suffix(".pub"))]
    with pytest.raises(ReceiptError, match=why):
        parse_receipt(body, keys, "hosp-01")


def test_a_forged_receipt_is_refused(police_key: Path, tmp_path: Path) -> None:
    keys = [load_public_key(police_key.with_suffix(".pub"))]
    forger = tmp_path / "forger.key"
    generate_keypair(forger)
    with pytest.raises(ReceiptError, match="forged"):
        parse_receipt(_receipt(forger), keys, "hosp-01")
    genuine = json.loads(_receipt(police_key))
    tampered = json.dumps({**genuine, "seq": 4}).encode()  # a signed receipt, seq changed
    with pytest.raises(ReceiptError, match="forged"):
        parse_receipt(tampered, keys, "hosp-01")


def test_a_misdirected_receipt_is_refused(police_key: Path) -> None:
    keys = [load_public_key(police_key.with_suffix(".pub"))]
    with pytest.raises(ReceiptError, match="misdirected"):
        parse_receipt(_receipt(police_key), keys, "hosp-02")


def test_unknown_members_and_other_types_are_refused(police_key: Path) -> None:
    keys = [load_public_key(police_key.with_suffix(".pub"))]
    for changes in ({"extra": 1}, {"type": "ack"}, {"message": "heartbeat"}, {"seq": 0}):
        with pytest.raises(ReceiptError, match="malformed"):
            parse_receipt(_receipt(police_key, **changes), keys, "hosp-01")
    assert len(_receipt(police_key)) < MAX_RECEIPT_BYTES // 4


# --- what the police send ------------------------------------------------------------------------
class ReceiptListener:
    """The site's side of the broker: its own certificate, subscribed to its receipt topic."""

    def __init__(self, broker: Mosquitto, site: str) -> None:
        assert broker.pki is not None
        self.bodies: list[bytes] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        pair = broker.pki.client(site)
        self.client.tls_set(str(broker.pki.ca_file), str(pair.cert), str(pair.key))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(receipt_topic(site), qos=1)
        self.client.on_message = lambda _c, _u, m: self.bodies.append(bytes(m.payload))
        self.client.connect("localhost", broker.tls_port or 0)
        self.client.loop_start()
        assert subscribed.wait(10), "receipt listener not subscribed"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_each_stored_alarm_message_gets_a_signed_receipt(
    tmp_path: Path, broker: Mosquitto, site: Site, police_key: Path
) -> None:
    config = police_config(tmp_path, broker, site).model_copy(update={"receipt_key": police_key})
    listener = ReceiptListener(broker, site.site_id)
    raw = RawClient(broker)
    keys = [load_public_key(police_key.with_suffix(".pub"))]
    validator = Draft202012Validator(json.loads(SCHEMA.read_text("utf-8")), FormatChecker())

    async def scenario() -> None:
        async with running(config) as service:
            await until(lambda: service.link()["connected"], what="connected")
            await asyncio.sleep(0.3)  # SUBACK
            genuine = signed_alarm(site)
            raw.publish(f"edgeguard/{site.site_id}/alarm/er-button", genuine)
            await until(lambda: len(listener.bodies) == 1, what="the first receipt")
            raw.publish(f"edgeguard/{site.site_id}/alarm/er-button", genuine)  # resent
            later = signed_alarm(site, seq=2, message="restored", input_active=False)
            raw.publish(f"edgeguard/{site.site_id}/alarm/er-button", later)
            await until(lambda: len(listener.bodies) == 3, what="three receipts")
            assert service.receipts.sent == 3
            await asyncio.sleep(0.3)  # its own receipts came back to it (edgeguard/+/#) ...
            assert service.store.warnings() == []  # ... and are no security warning

    try:
        run(scenario())
    finally:
        raw.close()
        listener.close()
    receipts = [parse_receipt(body, keys, site.site_id) for body in listener.bodies]
    assert [(r.event_id, r.seq, r.message) for r in receipts] == [
        (EVENT_ID, 1, "new"),
        (EVENT_ID, 1, "new"),  # the duplicate's: the site resent because it had none
        (EVENT_ID, 2, "restored"),
    ]
    for body in listener.bodies:
        assert list(validator.iter_errors(json.loads(body))) == []


def test_no_receipt_without_a_key_nor_for_what_was_not_stored(
    tmp_path: Path, broker: Mosquitto, site: Site, police_key: Path
) -> None:
    """A forged alarm is a warning, never stored: no receipt; a receiver without receipt_key
    sends none at all."""
    with_key = police_config(tmp_path, broker, site).model_copy(update={"receipt_key": police_key})
    (tmp_path / "b").mkdir()
    without = police_config(tmp_path / "b", broker, site, receiver_id="police-test-2")
    listener = ReceiptListener(broker, site.site_id)
    raw = RawClient(broker)
    forger = tmp_path / "forger.key"
    generate_keypair(forger)

    async def scenario() -> None:
        async with running(with_key) as service:
            await until(lambda: service.link()["connected"], what="connected")
            await asyncio.sleep(0.3)
            forged = Signer.from_file(forger).encode(json.loads(signed_alarm(site)))
            raw.publish(f"edgeguard/{site.site_id}/alarm/er-button", forged)
            await until(service.store.warnings, what="the forgery's warning")
        async with running(without) as service:
            await until(lambda: service.link()["connected"], what="connected")
            await asyncio.sleep(0.3)
            raw.publish(f"edgeguard/{site.site_id}/alarm/er-button", signed_alarm(site))
            await until(service.store.open_alarms, what="the alarm stored")
            await asyncio.sleep(0.5)  # time for a receipt that must not come
            assert not service.receipts.enabled

    try:
        run(scenario())
    finally:
        raw.close()
        listener.close()
    assert listener.bodies == []


def test_a_site_cannot_publish_a_receipt(broker: Mosquitto, site: Site, police_key: Path) -> None:
    """The ACL: only the police write receipts (a forged one would fail its signature too)."""
    listener = ReceiptListener(broker, site.site_id)
    as_site = RawClient(broker, cn=site.site_id)
    try:
        info = as_site.client.publish(receipt_topic(site.site_id), _receipt(police_key), qos=1)
        info.wait_for_publish(5)
        assert info.is_published()
        police = RawClient(broker, cn="police")
        police.publish(receipt_topic(site.site_id), _receipt(police_key))
        police.close()
        deadline = asyncio.run(_wait_for(lambda: len(listener.bodies) >= 1))
        assert deadline
    finally:
        as_site.close()
        listener.close()
    assert len(listener.bodies) == 1  # the police's only: the site's was refused


async def _wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    try:
        await until(predicate, timeout, "receipts")
    except AssertionError:
        return False
    return True
