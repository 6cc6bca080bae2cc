"""Failure cases found in review: reloads while messages are in flight, a refused message
ahead of an alarm, a button released while the daemon was down, two SIGHUPs at once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, InProcessDaemon, PoliceSubscriber, make_site


def _wait(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _hup_and_wait(daemon: DaemonProcess, count: int) -> None:
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    assert _wait(lambda: daemon.log_text().count("config reloaded") >= count), daemon.log_text()


def test_reload_with_messages_in_flight_loses_nothing(
        tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]) -> None:
    """Messages the old MQTT client had in flight when a reload replaced it are sent again by
    the new client, and none is marked delivered without a PUBACK."""
    inputs = [{"type": "simulated", "name": f"b{i}", "location": "er"} for i in range(5)]
    site = make_site(tmp_path / "inflight", broker, inputs=inputs)
    daemon = daemons(site)
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGSTOP)  # frozen: publishes go out, PUBACKs never come
    try:
        for i in range(5):
            daemon.press(f"b{i}")
        site.data["mqtt"]["keepalive"] = 6
        site.write()
        _hup_and_wait(daemon, 1)
        time.sleep(2.5)  # heartbeats of the new client must not be taken for old PUBACKs
        with sqlite3.connect(site.db) as conn:
            delivered = conn.execute(
                "SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL AND message = 'new'"
            ).fetchone()[0]
        assert delivered == 0
    finally:
        broker.kill()
    broker.start()
    with PoliceSubscriber(broker, {site.site_id: site.public_key}, client_id="police-r") as police:
        alarms = police.wait_alarms(5, timeout=30)
    assert sorted(a["source"] for a in alarms) == [f"b{i}" for i in range(5)]


def test_refused_message_does_not_hold_up_alarms(
        tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]) -> None:
    """A box misconfigured as hosp-02 (its certificate says hosp-01): its alarm is refused by
    the ACL. After the installer fixes the site id (SIGHUP) the old message is still refused,
    with its own back-off, and a new press goes through at once."""
    site = make_site(tmp_path / "poison", broker, site_id="hosp-02")
    assert broker.pki is not None
    pair = broker.pki.client("hosp-01")
    site.data["mqtt"]["tls"].update(cert_file=str(pair.cert), key_file=str(pair.key))
    site.write()
    with PoliceSubscriber(broker, {"hosp-01": site.public_key}, client_id="police-p") as police:
        daemon = daemons(site)
        daemon.press("er-button")  # goes to edgeguard/hosp-02/...: refused
        assert _wait(lambda: "refused message" in daemon.log_text())
        site.data["site"]["id"] = "hosp-01"
        site.write()
        _hup_and_wait(daemon, 1)
        time.sleep(7)  # the old message has been refused a few times by now
        daemon.release("er-button")
        daemon.control({"cmd": "press", "input": "er-button"})
        assert police.wait_for(lambda p: bool(p.alarms()), timeout=2)
        assert police.alarms()[0]["site"] == "hosp-01"


def test_button_released_while_daemon_down(tmp_path: Path, broker: Mosquitto) -> None:
    """The state found at start is reported: the latched alarm gets its restore and can be
    reset, instead of waiting forever for a release that already happened."""
    factory = MockFactory()
    site = make_site(tmp_path / "down", broker, inputs=[
        {"type": "gpio", "name": "er-button", "pin": 17, "location": "er", "lockout": 0}])
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        with InProcessDaemon(site.config(), pin_factory=factory) as running:
            running.wait_connected()
            factory.pin(17).drive_low()
            (alarm,) = police.wait_alarms(1)
        factory.pin(17).drive_high()  # released while nobody watched
        with InProcessDaemon(site.config(), pin_factory=factory) as running:
            running.wait_connected()
            restored = police.wait_alarms(2)[1]
            assert (restored["message"], restored["event_id"]) == ("restored", alarm["event_id"])
    factory.close()


def test_two_sighups_at_once(tmp_path: Path, broker: Mosquitto,
                             daemons: Callable[..., DaemonProcess]) -> None:
    inputs = [{"type": "simulated", "name": f"b{i}", "location": "er"} for i in range(8)]
    site = make_site(tmp_path / "hup", broker, inputs=inputs)
    daemon = daemons(site)
    assert daemon.proc is not None
    for _ in range(3):  # a few ms apart, so that each arrives while a reload is running
        daemon.proc.send_signal(signal.SIGHUP)
        time.sleep(0.004)
    assert _wait(lambda: daemon.log_text().count("config reloaded") >= 2), daemon.log_text()
    time.sleep(0.5)
    assert "Traceback" not in daemon.log_text()
    daemon.press("b7")


def test_reload_with_a_new_signing_key_signs_status_with_it(
        tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]) -> None:
    from edgeguard.signing import generate_keypair

    site = make_site(tmp_path / "rekey", broker)
    daemon = daemons(site)
    new_public = generate_keypair(site.directory / "new.key")
    site.data["signing"]["private_key"] = str(site.directory / "new.key")
    site.write()
    with PoliceSubscriber(broker, {site.site_id: new_public}, client_id="police-k") as police:
        _hup_and_wait(daemon, 1)
        assert police.wait_for(lambda p: any(r.kind == "status" and r.payload
                                             and r.payload["state"] == "online"
                                             for _, r in p.received[1:]), timeout=10)
        daemon.press("er-button")
        assert police.wait_alarms(1)[0]["kind"] == "panic"  # verified with the new key
