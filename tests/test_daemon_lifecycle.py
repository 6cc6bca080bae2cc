"""Daemon lifecycle: sd_notify over a fake NOTIFY_SOCKET (READY, WATCHDOG, RELOADING,
STOPPING), SIGHUP reload (good and bad configs), SIGTERM exits cleanly."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, make_site


class NotifySocket:
    """What systemd listens on: a datagram socket collecting sd_notify messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def collect(self, until: Callable[[list[str]], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until(self.messages):
                return True
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        return until(self.messages)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def _has(prefix: str) -> Callable[[list[str]], bool]:
    return lambda messages: any(prefix in m for m in messages)


def test_notify_ready_watchdog_stopping(
    tmp_path: Path, broker: Mosquitto, notify: NotifySocket
) -> None:
    site = make_site(tmp_path / "sd", broker)
    daemon = DaemonProcess(site, env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"})
    daemon.start()
    try:
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)  # WATCHDOG_PID unset: pings are for us
        assert notify.collect(_has("READY=1"))
        assert notify.collect(lambda m: sum("WATCHDOG=1" in x for x in m) >= 3, timeout=5)
        assert notify.collect(_has("RELOADING=1"))
    finally:
        assert daemon.stop() == 0
    assert notify.collect(_has("STOPPING=1"))
    assert notify.messages.index(
        next(m for m in notify.messages if "READY=1" in m)
    ) < notify.messages.index(next(m for m in notify.messages if "STOPPING=1" in m))


def test_watchdog_not_pinged_for_another_pid(
    tmp_path: Path, broker: Mosquitto, notify: NotifySocket
) -> None:
    site = make_site(tmp_path / "sd2", broker)
    daemon = DaemonProcess(
        site,
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"},
    )
    daemon.start()
    try:
        assert notify.collect(_has("READY=1"))
        assert not notify.collect(_has("WATCHDOG=1"), timeout=1)
    finally:
        daemon.stop()


def test_sighup_reload_adds_input_and_rejects_bad_config(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    site = make_site(tmp_path / "reload", broker)
    daemon = daemons(site)
    assert daemon.proc is not None
    site.data["inputs"].append({"type": "simulated", "name": "new-button", "location": "cashier"})
    site.write()
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "config reloaded" not in daemon.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        daemon.press("new-button")
        assert police.wait_alarms(1)[0]["location"]["label"] == "收费处"

    good = site.config_path.read_text(encoding="utf-8")
    broken = yaml.safe_load(good)
    broken["inputs"][0]["location"] = "nowhere"
    site.config_path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload rejected" not in daemon.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "inputs[0].location: location 'nowhere' is not defined" in daemon.log_text()
    daemon.press("new-button")  # the running config is kept
    assert daemon.proc.poll() is None


def test_sigterm_flushes_and_exits_zero(tmp_path: Path, broker: Mosquitto) -> None:
    site = make_site(tmp_path / "term", broker)
    daemon = DaemonProcess(site)
    daemon.start()
    daemon.press("er-button")
    assert daemon.stop() == 0
    log = daemon.log_text()
    assert "stopped" in log
    assert "Traceback" not in log
