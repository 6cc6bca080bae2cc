"""The systemd unit (systemd/edgeguard.service) and the installer (scripts/install.sh).

``systemd-analyze verify`` must print nothing at all for the unit: any warning fails the
test. Only what cannot exist on a CI machine is adapted, in a copy of the unit:

* ExecStart= and ExecReload= point at /opt/edgeguard/.venv, which only the installer
  creates; the copy uses the ``edgeguard`` console script of the environment running the
  tests.

Nothing else is rewritten or filtered, so every real complaint about the unit shows up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "edgeguard.service"
INSTALL_SH = REPO / "scripts" / "install.sh"
EXAMPLE_CONFIG = REPO / "config" / "edgeguard.example.yaml"

INSTALLED_EXECUTABLE = "/opt/edgeguard/.venv/bin/edgeguard"
EXEC_START = f"{INSTALLED_EXECUTABLE} run -c /etc/edgeguard/edgeguard.yaml"
# waits for the daemon's verdict: a rejected config fails `systemctl reload`
EXEC_RELOAD = f"{INSTALLED_EXECUTABLE} reload -c /etc/edgeguard/edgeguard.yaml"
CREDENTIALS = {
    "signing-key": "/etc/edgeguard/credentials/site.key",
    "mqtt-password": "/etc/edgeguard/credentials/mqtt-password",
    "mqtt-client-key": "/etc/edgeguard/credentials/client.key",
    "camera-password": "/etc/edgeguard/credentials/camera-password",
    "dc09-key": "/etc/edgeguard/credentials/dc09.key",
    "console-key": "/etc/edgeguard/credentials/console.key",
}
OPTIONAL_CREDENTIALS = {
    "mqtt-password", "mqtt-client-key", "camera-password", "dc09-key", "console-key"
}  # fmt: skip


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ordered (key, value) pairs; comments and blanks dropped."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"line {number}: keep directives on one line"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"line {number}: directive outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: not a Key=value line: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


def single(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(sections, section, key)
    assert len(found) == 1, f"[{section}] {key}= should appear once, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


# --- systemd-analyze verify ------------------------------------------------------------------
def edgeguard_executable() -> Path:
    """The console script next to the interpreter running the tests (the venv's bin/)."""
    bindir = Path(sys.executable).parent
    found = shutil.which("edgeguard", path=str(bindir))
    if found is None:
        pytest.fail(
            f"no edgeguard console script in {bindir}: is the package installed "
            "(pip install -e .) in the environment running pytest?"
        )
    return Path(found)


def verifiable_copy(tmp_path: Path, text: str) -> Path:
    """Write the unit to tmp_path/edgeguard.service with machine-specific paths adapted."""
    for key, command in (("ExecStart", EXEC_START), ("ExecReload", EXEC_RELOAD)):
        line = f"{key}={command}"
        assert line in text.splitlines(), f"unit must contain {line!r}"
        text = text.replace(f"{key}={INSTALLED_EXECUTABLE} ", f"{key}={edgeguard_executable()} ")
    copy = tmp_path / UNIT.name  # the name matters: verify derives the unit name from it
    copy.write_text(text, encoding="utf-8")
    return copy


def systemd_analyze_verify(path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "LANG": "C.UTF-8",
        # Pin the level: a SYSTEMD_LOG_LEVEL=debug in the caller's environment would
        # otherwise flood the output. "info" is the default and keeps every complaint
        # about a unit (removed options are reported at info level).
        "SYSTEMD_LOG_LEVEL": "info",
        "SYSTEMD_LOG_COLOR": "0",
        "SYSTEMD_PAGER": "",
    }
    return subprocess.run(
        [analyze, "verify", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_systemd_analyze_verify_prints_nothing(tmp_path: Path) -> None:
    copy = verifiable_copy(tmp_path, UNIT.read_text(encoding="utf-8"))
    result = systemd_analyze_verify(copy)
    output = (result.stdout + result.stderr).strip()
    assert output == "", f"systemd-analyze verify {copy} complained:\n{output}"
    assert result.returncode == 0, f"systemd-analyze verify exited {result.returncode}"


def test_verify_check_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above fails on warnings: a bogus directive must produce output."""
    text = UNIT.read_text(encoding="utf-8").replace(
        "[Service]\n", "[Service]\nNoSuchDirective=yes\nSetCredential=empty:\n", 1
    )
    result = systemd_analyze_verify(verifiable_copy(tmp_path, text))
    output = result.stdout + result.stderr
    assert "NoSuchDirective" in output
    assert "empty:" in output  # SetCredential= rejects an empty value (why the unit uses \n)


# --- what the unit must say ------------------------------------------------------------------
def test_service_type_and_lifecycle(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert single(unit, "Service", "Type") == "notify"
    assert single(unit, "Service", "NotifyAccess") == "main"
    assert single(unit, "Service", "WatchdogSec") == "10"
    assert single(unit, "Service", "Restart") == "always"
    assert single(unit, "Service", "RestartSec")
    assert single(unit, "Service", "TimeoutStopSec")
    assert single(unit, "Service", "ExecStart") == EXEC_START
    assert single(unit, "Service", "ExecReload") == EXEC_RELOAD
    # The start-rate limit belongs in [Unit]: in [Service], systemd 252 ignores
    # StartLimitIntervalSec= ("Unknown key").
    assert single(unit, "Unit", "StartLimitIntervalSec")
    assert single(unit, "Unit", "StartLimitBurst")
    assert "network-online.target" in values(unit, "Unit", "After")
    assert "network-online.target" in values(unit, "Unit", "Wants")
    assert single(unit, "Install", "WantedBy") == "multi-user.target"


def test_identity_and_groups(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert single(unit, "Service", "User") == "edgeguard"
    assert single(unit, "Service", "Group") == "edgeguard"
    groups = " ".join(values(unit, "Service", "SupplementaryGroups")).split()
    assert {"gpio", "dialout"} <= set(groups)
    assert "DynamicUser" not in dict(unit["Service"])  # device groups need a real user


def test_directories(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert single(unit, "Service", "StateDirectory") == "edgeguard"
    assert single(unit, "Service", "RuntimeDirectory") == "edgeguard"
    assert single(unit, "Service", "ConfigurationDirectory") == "edgeguard"
    assert single(unit, "Service", "UMask") == "0027"
    assert "/var/lib/edgeguard" in " ".join(values(unit, "Service", "ReadWritePaths")).split()


def test_sandboxing(unit: dict[str, list[tuple[str, str]]]) -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
        "DevicePolicy": "closed",
    }
    for key, value in expected.items():
        assert single(unit, "Service", key) == value, key
    families = set(single(unit, "Service", "RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "PrivateDevices" not in dict(unit["Service"])  # would hide GPIO and serial ports


def test_device_allow_list(unit: dict[str, list[tuple[str, str]]]) -> None:
    allowed = dict(v.split(maxsplit=1) for v in values(unit, "Service", "DeviceAllow"))
    for group in ("char-gpiochip", "char-ttyUSB", "char-ttyACM", "char-ttyAMA", "char-ttyS"):
        assert allowed.get(group) == "rw", group


def test_credentials(unit: dict[str, list[tuple[str, str]]]) -> None:
    loaded = dict(v.split(":", 1) for v in values(unit, "Service", "LoadCredential"))
    assert loaded == CREDENTIALS
    defaults = dict(v.split(":", 1) for v in values(unit, "Service", "SetCredential"))
    # Optional ones get a default (so a missing file does not fail the unit); the signing
    # key must not, so a site without its key fails loudly (243/CREDENTIALS).
    assert set(defaults) == OPTIONAL_CREDENTIALS
    assert all(value == r"\n" for value in defaults.values())


def test_example_config_credentials_are_loaded_by_the_unit() -> None:
    if not EXAMPLE_CONFIG.exists():
        pytest.skip(f"{EXAMPLE_CONFIG} is not in this checkout")
    used = set(
        re.findall(r"\{\s*credential:\s*([\w.-]+)\s*\}", EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    )
    assert used, "the example config should show {credential: NAME}"
    assert used <= set(CREDENTIALS), f"not provided by LoadCredential=: {used - set(CREDENTIALS)}"


# --- scripts/install.sh ----------------------------------------------------------------------
def test_install_sh_parses() -> None:
    result = subprocess.run(
        ["bash", "-n", str(INSTALL_SH)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


def test_install_sh_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        [shellcheck, str(INSTALL_SH)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_sh_matches_the_unit() -> None:
    script = INSTALL_SH.read_text(encoding="utf-8")
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script
    assert os.access(INSTALL_SH, os.X_OK), "scripts/install.sh should be executable"
    for needle in (
        "PREFIX=/opt/edgeguard",
        'VENV="$PREFIX/.venv"',
        'CRED_DIR="$CONF_DIR/credentials"',
        "CONF_DIR=/etc/edgeguard",
        "systemd/edgeguard.service",
        "keygen --out",
    ):
        assert needle in script, needle


def test_exec_reload_is_the_reload_command() -> None:
    """ExecReload= runs `edgeguard reload` (which waits for the daemon's verdict), with the
    config ExecStart= gives the daemon, so it finds the daemon's control socket."""
    from edgeguard.cli import build_parser

    sections = parse_unit(UNIT.read_text(encoding="utf-8"))
    start = single(sections, "Service", "ExecStart").split()
    reload_ = single(sections, "Service", "ExecReload").split()
    assert reload_[0] == start[0] == INSTALLED_EXECUTABLE
    args = build_parser().parse_args(reload_[1:])
    assert args.command == "reload"
    assert args.config == build_parser().parse_args(start[1:]).config
    assert args.socket is None  # the config's control.socket, as the daemon uses it
    assert "kill" not in single(sections, "Service", "ExecReload")
