"""The alarm spine end to end with a real mosquitto over TLS with client certificates."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, Site, make_site
from edgeguard.signing import load_public_key, verify


def _db_alarm(site: Site, event_id: str) -> dict[str, object]:
    with sqlite3.connect(site.db) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM alarms WHERE event_id = ?", (event_id,)).fetchone()
    return dict(row)


def test_press_reaches_police_signed(
    site: Site, police: PoliceSubscriber, daemons: Callable[..., DaemonProcess]
) -> None:
    daemon = daemons(site)
    daemon.press("er-button")
    (alarm,) = police.wait_alarms(1)
    assert alarm["message"] == "new"
    assert alarm["kind"] == "panic"
    assert alarm["priority"] == 1
    assert alarm["site"] == "hosp-01"
    assert alarm["location"] == {
        "id": "er",
        "label": "急诊分诊台",
        "building": "门诊楼",
        "floor": "1F",
        "zone": "ER",
    }
    assert alarm["cameras"] == ["cam-er-1", "cam-er-2"]
    verify(alarm, load_public_key(site.public_key))  # raises if the signature is bad
    assert not police.warnings()


def test_latch_restore_reset_and_police_ack(
    site: Site, police: PoliceSubscriber, daemons: Callable[..., DaemonProcess]
) -> None:
    daemon = daemons(site)
    daemon.press("er-button")
    (new,) = police.wait_alarms(1)
    event_id = new["event_id"]
    refused = daemon.control({"cmd": "reset", "event_id": event_id, "by": "李保安"})
    assert not refused["ok"]
    assert "still in alarm" in refused["error"]

    daemon.release("er-button")
    restored = police.wait_alarms(2)[1]
    assert restored["message"] == "restored"
    assert restored["state"] == "delivered"  # latched: still open after the release
    assert restored["input_active"] is False

    police.client.publish(
        "edgeguard/hosp-01/ack",
        json.dumps(
            {
                "event_id": event_id,
                "state": "acknowledged",
                "by": "110 指挥中心 王",
                "at": "2026-11-23T01:00:00.000Z",
            },
            ensure_ascii=False,
        ),
        qos=1,
    )
    police.client.publish("edgeguard/hosp-01/ack", b"{not json", qos=1)
    assert _wait(lambda: _db_alarm(site, event_id)["state"] == "acknowledged")

    answer = daemon.control({"cmd": "reset", "event_id": event_id, "by": "李保安"})
    assert answer["ok"], answer
    reset = police.wait_alarms(3)[2]
    assert (reset["message"], reset["state"], reset["reset_by"]) == ("reset", "reset", "李保安")
    again = daemon.control({"cmd": "reset", "event_id": event_id, "by": "x"})
    assert not again["ok"]
    assert "already reset" in again["error"]

    row = _db_alarm(site, event_id)
    for column in ("recorded_at", "delivered_at", "restored_at", "acknowledged_at", "reset_at"):
        assert row[column], column
    assert row["acknowledged_by"] == "110 指挥中心 王"
    assert [a["seq"] for a in police.alarms()] == [1, 2, 3]
    assert "police ack rejected" in daemon.log_text()


def test_simultaneous_alarms_all_kept(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    inputs = [{"type": "simulated", "name": f"b{i}", "location": "er"} for i in range(5)]
    site = make_site(tmp_path / "multi", broker, inputs=inputs)
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        daemon = daemons(site)
        for i in range(5):
            daemon.press(f"b{i}")
        alarms = police.wait_alarms(5)
        assert sorted(a["source"] for a in alarms) == [f"b{i}" for i in range(5)]
        assert len({a["event_id"] for a in alarms}) == 5
        assert len(daemon.status()["open_alarms"]) == 5


def test_broker_down_during_presses_delivers_all_in_order(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    inputs = [{"type": "simulated", "name": f"b{i}", "location": "er"} for i in range(10)]
    site = make_site(tmp_path / "outage", broker, inputs=inputs)
    daemon = daemons(site)
    broker.kill()
    assert _wait(lambda: not daemon.status()["link"]["connected"], 15)
    for i in range(10):
        daemon.press(f"b{i}")
    assert daemon.status()["outbox"]["pending"] >= 10
    broker.start()
    with PoliceSubscriber(
        broker, {site.site_id: site.public_key}, client_id="police-late"
    ) as police:
        alarms = police.wait_alarms(10, timeout=20)
    assert [a["source"] for a in alarms] == [f"b{i}" for i in range(10)]
    assert [a["seq"] for a in alarms] == sorted(a["seq"] for a in alarms)
    assert _wait(lambda: daemon.status()["outbox"]["pending"] == 0)


def test_kill_9_after_presses_restarted_daemon_delivers(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    inputs = [{"type": "simulated", "name": f"b{i}", "location": "er"} for i in range(20)]
    site = make_site(tmp_path / "crash", broker, inputs=inputs)
    daemon = daemons(site)
    broker.kill()  # nothing can be delivered: every alarm is only in the store
    assert _wait(lambda: not daemon.status()["link"]["connected"], 15)
    for i in range(20):
        daemon.press(f"b{i}")
    daemon.kill()
    broker.start()
    with PoliceSubscriber(broker, {site.site_id: site.public_key}, client_id="police-2") as police:
        daemons(site)
        alarms = police.wait_alarms(20, timeout=20)
    assert [a["source"] for a in alarms] == [f"b{i}" for i in range(20)]


def test_site_cannot_publish_as_another_site(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    """A box whose certificate says hosp-01 but whose config claims hosp-02: the broker's ACL
    refuses (PUBACK 0x87), nothing reaches the police, and the alarm stays undelivered."""
    site = make_site(tmp_path / "liar", broker, site_id="hosp-02")
    pair = broker.pki.client("hosp-01") if broker.pki else None
    assert pair is not None
    site.data["mqtt"]["tls"].update(cert_file=str(pair.cert), key_file=str(pair.key))
    site.write()
    with PoliceSubscriber(broker, {"hosp-02": site.public_key}, client_id="police-3") as police:
        daemon = daemons(site)
        daemon.press("er-button")
        assert not police.wait_for(lambda p: bool(p.alarms()), timeout=2)
        status = daemon.status()
        assert status["outbox"]["pending"] >= 1
        assert status["open_alarms"][0]["state"] == "active"
        assert "refused" in daemon.log_text()


def test_mqtt_311_selectable(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    site = make_site(tmp_path / "v311", broker, mqtt_extra={"protocol": "3.1.1"})
    with PoliceSubscriber(broker, {site.site_id: site.public_key}, client_id="police-4") as police:
        daemon = daemons(site)
        daemon.press("er-button")
        assert police.wait_alarms(1)[0]["kind"] == "panic"


def test_status_online_retained_and_will(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    site = make_site(tmp_path / "st", broker)
    daemon = daemons(site)
    with PoliceSubscriber(broker, {site.site_id: site.public_key}, client_id="police-5") as police:
        assert police.wait_for(lambda p: _statuses(p) == ["online"])  # retained
        assert police.wait_for(lambda p: any(r.kind == "heartbeat" for _, r in p.received), 5)
        assert police.wait_for(lambda p: any(r.kind == "device" for _, r in p.received), 5)
        daemon.kill()  # no clean disconnect: the broker publishes the Will
        assert police.wait_for(lambda p: _statuses(p)[-1:] == ["offline"], timeout=20)


def _statuses(police: PoliceSubscriber) -> list[str]:
    return [str(r.payload["state"]) for _, r in police.received if r.kind == "status" and r.payload]


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_username_password_login(tmp_path: Path, daemons: Callable[..., DaemonProcess]) -> None:
    """The other login the brief allows: username/password on a broker that requires it; a
    wrong password is refused, reported, and the alarm waits in the outbox."""
    broker = Mosquitto(tmp_path / "pw-broker", passwords={"hosp-01": "右手-secret", "police": "p"})
    broker.start()
    try:
        site = make_site(
            tmp_path / "pw",
            broker,
            tls=False,
            mqtt_extra={"username": "hosp-01", "password": {"env": "EG_TEST_MQTT_PASSWORD"}},
        )
        police = PoliceSubscriber(broker, {site.site_id: site.public_key}, client_id="police-pw")
        police.client.username_pw_set("police", "p")
        with police:
            wrong = daemons(site, env={"EG_TEST_MQTT_PASSWORD": "wr0ng-pw-x7"})
            wrong.press("er-button")
            assert _wait(lambda: "refused" in wrong.log_text())
            assert wrong.status()["outbox"]["pending"] >= 1
            assert "wr0ng-pw-x7" not in wrong.log_text()  # no secrets in logs
            wrong.stop()
            right = daemons(site, env={"EG_TEST_MQTT_PASSWORD": "右手-secret"})
            (alarm,) = police.wait_alarms(1)  # the alarm recorded while refused
            assert alarm["source"] == "er-button"
            assert right.status()["link"]["connected"]
    finally:
        broker.stop()


def test_control_requests_are_validated(site: Site, daemons: Callable[..., DaemonProcess]) -> None:
    daemon = daemons(site)
    forged = daemon.control({"cmd": "reset", "event_id": "01a2", "by": "x\n2026 INFO forged"})
    assert not forged["ok"]
    assert "bad request" in forged["error"]
    assert not daemon.control({"cmd": "press", "input": "nope"})["ok"]
    assert not daemon.control({"cmd": "shutdown"})["ok"]
    assert daemon.status()["ok"]
