"""The police receiver's systemd unit (systemd/edgeguard-police.service): `systemd-analyze
verify` prints nothing, it is sandboxed like systemd/edgeguard.service, and `edgeguard police`
really speaks the Type=notify protocol it declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_daemon_lifecycle import NotifySocket
from test_police_process import (
    ALARM_TOPIC,
    PoliceProcess,
    alarm,
    stored_alarms,
    wait_for,
    write_config,
)
from test_police_service import RawClient
from test_systemd_unit import (
    INSTALLED_EXECUTABLE,
    REPO,
    edgeguard_executable,
    parse_unit,
    single,
    systemd_analyze_verify,
    values,
)

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import Site

UNIT = REPO / "systemd" / "edgeguard-police.service"
SITE_UNIT = REPO / "systemd" / "edgeguard.service"
EXEC_START = f"{INSTALLED_EXECUTABLE} police -c /etc/edgeguard/police.yaml"
Unit = dict[str, list[tuple[str, str]]]
# what edgeguard.service sets to harden the daemon; the police unit must set the same
HARDENING = (
    "ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "CapabilityBoundingSet",
    "AmbientCapabilities", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
    "ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc",
    "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
    "LockPersonality", "RemoveIPC", "SystemCallArchitectures", "SystemCallErrorNumber",
    "DevicePolicy", "NotifyAccess", "Restart", "TimeoutAbortSec", "SystemCallFilter",
)  # fmt: skip


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def test_systemd_analyze_verify_prints_nothing(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert f"ExecStart={EXEC_START}" in text.splitlines()
    copy = tmp_path / UNIT.name  # verify derives the unit name from the file name
    copy.write_text(
        text.replace(f"ExecStart={INSTALLED_EXECUTABLE} ", f"ExecStart={edgeguard_executable()} "),
        encoding="utf-8",
    )
    result = systemd_analyze_verify(copy)
    output = (result.stdout + result.stderr).strip()
    assert output == "", f"systemd-analyze verify {copy} complained:\n{output}"
    assert result.returncode == 0


def test_service_lifecycle_and_identity(unit: Unit) -> None:
    assert single(unit, "Service", "Type") == "notify"
    assert single(unit, "Service", "ExecStart") == EXEC_START
    assert single(unit, "Service", "WatchdogSec")
    assert single(unit, "Service", "User") == "edgeguard-police"
    assert single(unit, "Service", "StateDirectory") == "edgeguard-police"
    assert single(unit, "Service", "StateDirectoryMode") == "0700"
    assert single(unit, "Service", "UMask") == "0077"
    assert "/var/lib/edgeguard-police" in values(unit, "Service", "ReadWritePaths")
    assert single(unit, "Service", "PrivateDevices") == "yes"
    assert "network-online.target" in values(unit, "Unit", "After")
    assert single(unit, "Install", "WantedBy") == "multi-user.target"
    loaded = {v.split(":", 1)[0] for v in values(unit, "Service", "LoadCredential")}
    defaults = {
        v.split(":", 1)[0]: v.split(":", 1)[1] for v in values(unit, "Service", "SetCredential")
    }
    assert loaded == set(defaults)  # every credential optional, as explained in the unit
    assert set(defaults.values()) == {r"\n"}


def test_sandboxed_like_the_site_daemon(unit: Unit) -> None:
    site = parse_unit(SITE_UNIT.read_text(encoding="utf-8"))
    for key in HARDENING:
        assert values(unit, "Service", key) == values(site, "Service", key), key
    assert values(unit, "Service", "SystemCallFilter") == values(
        site, "Service", "SystemCallFilter"
    )


def test_police_speaks_sd_notify(
    tmp_path: Path, broker: Mosquitto, site: Site, notify_socket: NotifySocket
) -> None:
    """READY=1 once it receives, WATCHDOG=1 while it runs, STOPPING=1 on SIGTERM."""
    config = write_config(tmp_path / "police", broker, site)
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000"}
    receiver = PoliceProcess(config, env=env)
    receiver.start()
    try:
        assert notify_socket.collect(lambda m: any("READY=1" in x for x in m), timeout=30)
        assert notify_socket.collect(lambda m: sum("WATCHDOG=1" in x for x in m) >= 3, 30)
        publisher = RawClient(broker)
        try:
            database = tmp_path / "police" / "police.db"
            wait_for(lambda: _stored(publisher, database, site), "an alarm stored", receiver)
        finally:
            publisher.close()
    finally:
        assert receiver.stop() == 0, receiver.log_text()
    assert notify_socket.collect(lambda m: any("STOPPING=1" in x for x in m), timeout=10)


def _stored(publisher: RawClient, database: Path, site: Site) -> bool:
    publisher.publish(ALARM_TOPIC, alarm(site, 1))
    return bool(stored_alarms(database))


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()
