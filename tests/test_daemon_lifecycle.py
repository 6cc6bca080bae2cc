"""Daemon lifecycle: sd_notify over a fake NOTIFY_SOCKET (READY, WATCHDOG, RELOADING,
STOPPING), SIGHUP reload (good and bad configs), `edgeguard reload` (the unit's ExecReload=:
the daemon's verdict as the exit status), SIGTERM exits cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from edgeguard.config import ControlConfig
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, Site, make_site


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


# --- `edgeguard reload`: what systemctl reload runs ------------------------------------------
def edgeguard_reload(site: Site, *extra: str) -> subprocess.CompletedProcess[str]:
    """The command as the unit's ExecReload= runs it (the console script beside the daemon's)."""
    exe = Path(sys.executable).with_name("edgeguard")
    return subprocess.run(
        [str(exe), "reload", "-c", str(site.config_path), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
    )


def _reload_tags(messages: list[str]) -> list[str]:
    """RELOADING=1 / READY=1 in the order sent, after the start's READY=1."""
    tags = [tag for m in messages for tag in m.split("\n") if tag in ("RELOADING=1", "READY=1")]
    return tags[tags.index("READY=1") + 1 :]


def test_reload_command_applies_a_valid_changed_config(
    tmp_path: Path, broker: Mosquitto, notify: NotifySocket, daemons: Callable[..., DaemonProcess]
) -> None:
    site = make_site(tmp_path / "cmd-ok", broker)
    daemon = daemons(site, env={"NOTIFY_SOCKET": str(notify.path)})
    assert notify.collect(_has("READY=1"))
    with pytest.raises(AssertionError):
        daemon.press("new-button")  # not configured yet
    site.data["inputs"].append({"type": "simulated", "name": "new-button", "location": "cashier"})
    site.write()

    result = edgeguard_reload(site)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"reloaded {site.config_path}"]
    # answered after the reload: the new input is there, no waiting
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        daemon.press("new-button")
        assert police.wait_alarms(1)[0]["location"]["label"] == "收费处"
    assert "config reloaded" in daemon.log_text()
    assert notify.collect(lambda m: _reload_tags(m) == ["RELOADING=1", "READY=1"])


def test_reload_command_reports_a_rejected_config_and_the_daemon_keeps_its_own(
    tmp_path: Path, broker: Mosquitto, notify: NotifySocket, daemons: Callable[..., DaemonProcess]
) -> None:
    site = make_site(tmp_path / "cmd-bad", broker)
    daemon = daemons(site, env={"NOTIFY_SOCKET": str(notify.path)})
    assert notify.collect(_has("READY=1"))
    good = site.config_path.read_text(encoding="utf-8")
    broken = yaml.safe_load(good)
    broken["inputs"][0]["location"] = "nowhere"
    broken["inputs"].append({"type": "simulated", "name": "new-button", "location": "cashier"})
    text = yaml.safe_dump(broken, allow_unicode=True, sort_keys=False)
    site.config_path.write_text(text, encoding="utf-8")
    line = next(n for n, x in enumerate(text.splitlines(), 1) if "location: nowhere" in x)

    result = edgeguard_reload(site)

    assert result.returncode == 1
    assert result.stdout == ""
    first, last = result.stderr.splitlines()  # the daemon's reason (file:line), the verdict
    assert first.startswith(
        f"{site.config_path}:{line}: inputs[0].location: location 'nowhere' is not defined"
    )
    assert last == (
        f"edgeguard: reload of {site.config_path} rejected, the daemon keeps its running config"
    )
    daemon.press("er-button")  # the running config is kept: the old input, not the new one
    with pytest.raises(AssertionError):
        daemon.press("new-button")
    assert daemon.status()["site"] == site.site_id
    # systemd is told the reload is over even when it failed
    assert notify.collect(lambda m: _reload_tags(m) == ["RELOADING=1", "READY=1"])
    assert daemon.proc is not None
    assert daemon.proc.poll() is None


def test_reload_command_reports_a_config_that_fails_to_apply(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    """Valid YAML and schema, but the new signing key cannot be read: rejected all the same."""
    site = make_site(tmp_path / "cmd-key", broker)
    daemon = daemons(site)
    bad_key = site.directory / "garbage.key"
    bad_key.write_text("not a PEM key\n", encoding="utf-8")
    site.data["signing"]["private_key"] = str(bad_key)
    site.write()

    result = edgeguard_reload(site)

    assert result.returncode == 1
    assert result.stderr.startswith(f"reload failed: {bad_key}: ")
    assert "rejected, the daemon keeps its running config" in result.stderr
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        daemon.press("er-button")  # still signed with the running key
        assert police.wait_alarms(1)[0]["location"]["label"] == "急诊分诊台"


def test_reload_command_reports_a_yaml_error_of_a_config_that_does_not_parse(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    site = make_site(tmp_path / "cmd-yaml", broker)
    daemon = daemons(site)
    good = site.config_path.read_text(encoding="utf-8")
    site.config_path.write_text(good + "inputs: [unclosed\n", encoding="utf-8")

    # the config cannot tell where the socket is; --socket can (else: the default socket)
    result = edgeguard_reload(site, "--socket", str(site.socket))

    assert result.returncode == 1
    assert f"{site.config_path}:" in result.stderr
    assert "YAML" in result.stderr
    assert "rejected" in result.stderr
    daemon.press("er-button")

    if ControlConfig().socket.exists():
        pytest.skip(f"{ControlConfig().socket} exists on this machine")
    result = edgeguard_reload(site)
    assert result.returncode == 1
    assert f"no control socket at {ControlConfig().socket}" in result.stderr
    assert f"({site.config_path} does not parse: {site.config_path}:" in result.stderr


def test_reload_command_without_a_daemon_fails_clearly(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    site = make_site(tmp_path / "cmd-none", broker)

    result = edgeguard_reload(site)  # never started

    assert result.returncode == 1
    assert result.stdout == ""
    assert f"edgeguard is not running (no control socket at {site.socket})" in result.stderr

    daemon = daemons(site)
    daemon.kill()  # SIGKILL: its socket file stays behind, nobody listens
    assert site.socket.exists()

    result = edgeguard_reload(site)

    assert result.returncode == 1
    assert f"edgeguard is not running (no control socket at {site.socket})" in result.stderr


def test_reload_commands_at_once_run_one_after_the_other(
    tmp_path: Path, broker: Mosquitto, notify: NotifySocket, daemons: Callable[..., DaemonProcess]
) -> None:
    """The reload lock: a second reload (command or SIGHUP) waits for the first to finish."""
    site = make_site(tmp_path / "cmd-two", broker)
    daemon = daemons(site, env={"NOTIFY_SOCKET": str(notify.path)})
    assert notify.collect(_has("READY=1"))
    assert daemon.proc is not None
    site.data["inputs"].append({"type": "simulated", "name": "new-button", "location": "cashier"})
    site.write()
    exe = Path(sys.executable).with_name("edgeguard")
    command = [str(exe), "reload", "-c", str(site.config_path)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    daemon.proc.send_signal(signal.SIGHUP)
    for proc in (first, second):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.decode().startswith("reloaded ")

    pairs = ["RELOADING=1", "READY=1"] * 3
    assert notify.collect(lambda m: len(_reload_tags(m)) >= 6)
    assert _reload_tags(notify.messages) == pairs  # never two reloads at once
    daemon.press("new-button")


def test_reload_command_when_the_daemon_goes_away_without_answering(tmp_path: Path) -> None:
    """A daemon that dies during the reload (here: a socket that reads the request and
    closes) is a failed reload, not a traceback."""
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        exe = Path(sys.executable).with_name("edgeguard")
        proc = subprocess.Popen(
            [str(exe), "reload", "--socket", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        server.settimeout(60)
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as request:
            assert request.readline() == b'{"cmd": "reload"}\n'
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out == ""
    assert f"edgeguard closed {path} without answering" in err
