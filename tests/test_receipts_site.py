"""End-to-end receipts, the site side (docs/mqtt-api.md 4.7): a real daemon, a real mosquitto
(TLS, the lab ACL) and a real police receiver. An alarm is `received` only when the police
platform's signed receipt comes; without one the site publishes the message again, until the
police have it — also when the broker lost it after its PUBACK."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_police_service import police_config, run, running, subscribed, until
from test_receipts import _wait_for

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.broker_kill import broker_kill_trials
from edgeguard.lab.harness import DaemonProcess, Site, make_site
from edgeguard.lab.pki import DevPKI
from edgeguard.signing import generate_keypair

Daemons = Callable[..., DaemonProcess]


@pytest.fixture
def police_key(tmp_path: Path) -> Path:
    key = tmp_path / "police-receipts.key"
    generate_keypair(key)
    return key


def _with_receipts(site: Site, police_key: Path, **settings: Any) -> Site:
    site.data["receipts"] = {"police_keys": [str(police_key.with_suffix(".pub"))], **settings}
    site.write()
    return site


def _alarm_row(site: Site) -> dict[str, Any] | None:
    with sqlite3.connect(f"file:{site.db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM alarms ORDER BY recorded_at LIMIT 1").fetchone()
    return None if row is None else dict(row)


def _state(site: Site) -> str | None:
    row = _alarm_row(site)
    return None if row is None else str(row["state"])


def _ledger(site: Site) -> list[str]:
    with sqlite3.connect(f"file:{site.db}?mode=ro", uri=True) as conn:
        return [r[0] for r in conn.execute("SELECT type FROM events ORDER BY id")]


def test_an_alarm_is_received_when_the_police_platform_stored_it(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons, police_key: Path
) -> None:
    daemon = daemons(_with_receipts(site, police_key, resend_after_s=1))
    config = police_config(tmp_path, broker, site).model_copy(update={"receipt_key": police_key})

    async def scenario() -> None:
        async with running(config) as service:
            await subscribed(service)
            await asyncio.to_thread(daemon.press, "er-button")
            await until(lambda: _state(site) == "received", 15, "the alarm received")
            await asyncio.sleep(2.5)  # past resend_after_s: nothing is published again
            assert daemon.status()["outbox"]["resent_for_receipt"] == 0
            assert service.store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1

    run(scenario())
    row = _alarm_row(site)
    assert row is not None
    assert row["delivered_at"] is not None
    assert row["received_at"] >= row["delivered_at"]
    assert "alarm.received" in _ledger(site)
    assert daemon.status()["outbox"]["awaiting_receipt"] == 0


def test_without_a_receipt_the_message_is_published_again(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons, police_key: Path
) -> None:
    """A receiver that sends no receipts: the site repeats the alarm (the police store it once)
    and stays `delivered`; once receipts come, the alarm is `received`."""
    daemon = daemons(_with_receipts(site, police_key, resend_after_s=1))
    silent = police_config(tmp_path, broker, site)

    async def scenario() -> None:
        async with running(silent) as service:
            await subscribed(service)
            await asyncio.to_thread(daemon.press, "er-button")
            await until(
                lambda: daemon.status()["outbox"]["resent_for_receipt"] >= 2, 30, "two resends"
            )
            assert _state(site) == "delivered"
            assert len(service.store.open_alarms()) == 1  # deduped by (site, event_id, seq)
        answering = silent.model_copy(update={"receipt_key": police_key})
        async with running(answering) as service:
            await until(lambda: _state(site) == "received", 30, "the alarm received")

    run(scenario())


def test_receipts_not_required_are_only_shown(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons, police_key: Path
) -> None:
    daemon = daemons(_with_receipts(site, police_key, resend_after_s=1, required=False))
    silent = police_config(tmp_path, broker, site)

    async def scenario() -> None:
        async with running(silent) as service:
            await subscribed(service)
            await asyncio.to_thread(daemon.press, "er-button")
            await until(lambda: _state(site) == "delivered", 15, "the alarm delivered")
            await asyncio.sleep(7)  # past resend_after_s and a housekeeping round
            assert daemon.status()["outbox"]["resent_for_receipt"] == 0
            assert daemon.status()["outbox"]["awaiting_receipt"] == 1

    run(scenario())
    assert _state(site) == "delivered"


def test_an_alarm_the_broker_lost_after_its_puback_still_reaches_the_police(
    tmp_path: Path, daemons: Daemons, police_key: Path
) -> None:
    """mosquitto without persistence PUBACKs the alarm, queues it for the absent receiver and
    is killed: the receiver's session and the alarm are gone. The receipt that never comes
    makes the site publish it again to the restarted broker."""
    broker = Mosquitto(tmp_path / "broker", pki=DevPKI(tmp_path / "pki"), acl=True,
                       persistence=False)  # fmt: skip
    broker.start()
    try:
        site = _with_receipts(make_site(tmp_path / "site", broker), police_key, resend_after_s=2)
        daemon = daemons(site)
        config = police_config(tmp_path, broker, site)
        config = config.model_copy(update={"receipt_key": police_key})

        async def scenario() -> None:
            async with running(config) as service:
                await subscribed(service)  # its persistent session exists at the broker
            await asyncio.to_thread(daemon.press, "er-button")
            await until(lambda: _state(site) == "delivered", 15, "the broker's PUBACK")
            broker.kill()  # queued for the receiver, held only in memory: lost
            broker.start()
            async with running(config) as service:
                await until(lambda: service.link()["connected"], 15, "connected")
                assert service.link()["session_present"] is False  # the session died too
                await until(lambda: _state(site) == "received", 45, "the alarm received")
                (alarm,) = service.store.open_alarms()
                assert alarm["source"] == "er-button"

        run(scenario())
        assert daemon.status()["outbox"]["resent_for_receipt"] >= 1
    finally:
        broker.stop()


def test_a_forged_receipt_changes_nothing(
    tmp_path: Path, broker: Mosquitto, site: Site, daemons: Daemons, police_key: Path
) -> None:
    """The police broker user publishes a receipt signed with another key: refused, logged;
    the alarm stays `delivered` and is published again."""
    from test_police_service import RawClient

    from edgeguard.receipts import receipt_payload, receipt_topic
    from edgeguard.signing import Signer

    daemon = daemons(_with_receipts(site, police_key, resend_after_s=1))
    forger = tmp_path / "forger.key"
    generate_keypair(forger)
    police = RawClient(broker, cn="police")
    try:
        daemon.press("er-button")
        deadline = asyncio.run(_wait_for(lambda: _state(site) == "delivered", 20))
        assert deadline, _state(site)
        row = _alarm_row(site)
        assert row is not None
        receipt = receipt_payload(site.site_id, row["event_id"], row["first_seq"], "new", "x")
        police.publish(receipt_topic(site.site_id), Signer.from_file(forger).encode(receipt))
        assert asyncio.run(_wait_for(lambda: "receipt refused" in daemon.log_text(), 20))
        assert "forged" in daemon.log_text()
        assert _state(site) == "delivered"
        assert asyncio.run(
            _wait_for(lambda: daemon.status()["outbox"]["resent_for_receipt"] >= 1, 20)
        )
    finally:
        police.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_thirty_brokers_killed_right_after_the_puback_lose_no_alarm(tmp_path: Path) -> None:
    """Issue 12: mosquitto SIGKILLed right after each of 30 PUBACKs (a real daemon, the real
    receiver away): every alarm is stored, brought by the receipt that did not come."""
    result = asyncio.run(broker_kill_trials(tmp_path, 30, 1.0, receipts=True))
    assert (result["trials"], result["lost"], result["stored"]) == (30, 0, 30), result
