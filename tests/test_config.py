"""Config validation: every error names file:line and key path; secrets from env/credentials
are masked; the generated reference in docs/ is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeguard.cli import main
from edgeguard.config_docs import config_reference
from edgeguard.config_loader import ConfigError, load_config
from edgeguard.signing import generate_keypair

REPO = Path(__file__).resolve().parent.parent
EDGEGUARD = str(Path(sys.executable).with_name("edgeguard"))

GOOD = """\
site:
  id: hosp-01
  name: 市第一人民医院
mqtt:
  host: broker.example
  username: hosp-01
  password: {env: EG_TEST_PASSWORD}
signing:
  private_key: /etc/edgeguard/site.key
locations:
  er: {label: 急诊分诊台}
inputs:
  - type: gpio
    name: er-button
    pin: 17
    location: er
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgeguard.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(issue) for issue in info.value.issues]


def test_good_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EG_TEST_PASSWORD", "s3cret-pw")
    config = load_config(_write(tmp_path, GOOD))
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "s3cret-pw"
    assert config.mqtt.effective_port() == 1883
    assert list(config.points()) == ["er-button"]


def test_every_error_has_file_line_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EG_TEST_PASSWORD", "x")
    bad = GOOD.replace("  host: broker.example", "  host: broker.example\n  hots: typo").replace(
        "    pin: 17", "    pin: 17\n    contact: maybe"
    )
    path = _write(tmp_path, bad)
    issues = _issues(path)
    assert f"{path}:6: mqtt.hots: Extra inputs are not permitted" in issues
    assert any(
        i.startswith(f"{path}:17: inputs[0].contact: Input should be 'NO' or 'NC'") for i in issues
    ), issues


def test_missing_key_points_at_parent(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        GOOD.replace("  name: 市第一人民医院\n", "").replace("{env: EG_TEST_PASSWORD}", "pw"),
    )
    assert _issues(path) == [f"{path}:1: site.name: Field required"]


def test_unknown_location_and_driver_type(tmp_path: Path) -> None:
    text = GOOD.replace("{env: EG_TEST_PASSWORD}", "pw").replace(
        "location: er", "location: nowhere"
    )
    path = _write(tmp_path, text)
    assert _issues(path) == [
        f"{path}:16: inputs[0].location: location 'nowhere' is not defined under `locations`"
    ]
    path = _write(
        tmp_path,
        GOOD.replace("{env: EG_TEST_PASSWORD}", "pw").replace("type: gpio", "type: carrier-pigeon"),
    )
    (issue,) = _issues(path)
    assert issue.startswith(f"{path}:13: inputs[0]: ")
    assert "does not match any of the expected tags" in issue


def test_missing_env_secret_and_yaml_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EG_TEST_PASSWORD", raising=False)
    path = _write(tmp_path, GOOD)
    assert _issues(path) == [
        f"{path}:7: mqtt.password: environment variable EG_TEST_PASSWORD is not set"
    ]
    path = _write(tmp_path, "site: [unclosed\n")
    assert _issues(path)[0].startswith(f"{path}:2: YAML syntax")
    path = _write(tmp_path, GOOD + "site: {id: again, name: dup}\n")
    assert _issues(path) == [f"{path}:17: site: duplicate key"]


def test_systemd_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-credential\n")
    (creds / "signing-key").write_text("-----BEGIN PRIVATE KEY-----\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = GOOD.replace("{env: EG_TEST_PASSWORD}", "{credential: mqtt-password}").replace(
        "/etc/edgeguard/site.key", "{credential: signing-key}"
    )
    config = load_config(_write(tmp_path, text))
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "from-credential"
    assert config.signing.private_key == creds / "signing-key"
    path = _write(tmp_path, text.replace("{credential: mqtt-password}", "{credential: absent}"))
    assert "credential 'absent': no file" in _issues(path)[0]


def _with_key(tmp_path: Path, text: str) -> str:
    """check-config reads the signing key file: give it a real one."""
    generate_keypair(tmp_path / "site.key")
    return text.replace("/etc/edgeguard/site.key", str(tmp_path / "site.key"))


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    good = _write(tmp_path, _with_key(tmp_path, GOOD.replace("{env: EG_TEST_PASSWORD}", "pw")))
    result = subprocess.run(
        [EDGEGUARD, "check-config", str(good)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        GOOD.replace("{env: EG_TEST_PASSWORD}", "pw").replace("pin: 17", "pin: 17\n    bogus: 1"),
        encoding="utf-8",
    )
    result = subprocess.run(
        [EDGEGUARD, "check-config", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert f"{bad}:16: inputs[0].bogus: Extra inputs are not permitted" in result.stderr


def test_print_config_masks_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EG_TEST_PASSWORD", "do-not-show-me")
    assert main(["print-config", "-c", str(_write(tmp_path, GOOD))]) == 0
    out = capsys.readouterr().out
    assert "do-not-show-me" not in out
    assert "password: '**********'" in out
    assert "市第一人民医院" in out


def test_shipped_configs_are_valid() -> None:
    for name in ("edgeguard.example.yaml", "demo.yaml"):
        path = REPO / "config" / name
        issues: list[str] = []
        try:
            load_config(path)
        except ConfigError as exc:
            issues = [i.message for i in exc.issues]
        # credentials only exist under systemd; everything else must validate
        assert all("credential" in message for message in issues), issues


def test_config_reference_is_current() -> None:
    reference = (REPO / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert reference == config_reference(), "run `make docs` to regenerate docs/config-reference.md"


def test_empty_secret_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("\n")  # systemd's SetCredential= default
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    path = _write(tmp_path, GOOD.replace("{env: EG_TEST_PASSWORD}", "{credential: mqtt-password}"))
    assert _issues(path) == [f"{path}:7: mqtt.password: credential 'mqtt-password' is empty"]


def test_operator_commands_need_no_credentials(tmp_path: Path) -> None:
    """`events` and `status` read only the paths they need, so an operator outside systemd
    (where the daemon's credentials are unreadable) can use them."""
    from edgeguard.store import Store

    db = tmp_path / "edgeguard.db"
    Store(db).close()
    text = GOOD.replace("{env: EG_TEST_PASSWORD}", "{credential: mqtt-password}") + (
        f"store:\n  path: {db}\ncontrol:\n  socket: {tmp_path / 'absent.sock'}\n")
    path = _write(tmp_path, text)
    env = {"PATH": "/usr/bin:/bin"}
    events = subprocess.run([EDGEGUARD, "events", "-c", str(path)], capture_output=True,
                            text=True, check=False, env=env)
    assert events.returncode == 0, events.stderr
    status = subprocess.run([EDGEGUARD, "status", "-c", str(path)], capture_output=True,
                            text=True, check=False, env=env)
    assert status.returncode == 1
    assert "edgeguard is not running (no control socket at" in status.stderr


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("site:\n  id: hosp\x07-01\n", 2, "unacceptable character #x0007"),
        ("site: &a [*a]\n", 1, "refers to itself"),
        ("site:\n  id: " + "[" * 10000 + "\n", 2, "nested deeper than"),
        ("site:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 2000)), 101, "nested deeper"),
        # found by bench/fuzz.py: a mapping as a key; a number too long for int()
        ("site:\n  {id: x}: 1\n", 2, "a key must be a plain value"),
        ("site:\n  id: hosp\nmqtt:\n  port: " + "9" * 5000 + "\n", 4, "Exceeds the limit"),
    ],
    ids=[
        "control-character", "self-referencing-anchor", "deep-flow", "deep-block",
        "mapping-as-key", "huge-number",
    ],
)
def test_check_config_reports_unparseable_yaml_as_file_line(
    tmp_path: Path, body: str, line: int, message: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(body, encoding="utf-8")
    result = subprocess.run(
        [EDGEGUARD, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{path}:{line}: "), first
    assert message in first


def test_check_config_reads_the_police_receipt_keys(tmp_path: Path) -> None:
    """A receipt key that is missing or not a public key fails check-config with its path,
    as it would stop the daemon's start."""
    text = _with_key(tmp_path, GOOD.replace("{env: EG_TEST_PASSWORD}", "pw"))
    missing = tmp_path / "police-receipts.pub"
    path = _write(tmp_path, text + f"\nreceipts:\n  police_keys: [{missing}]\n")
    result = subprocess.run(
        [EDGEGUARD, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert f"receipts.police_keys: {missing}" in result.stderr
    generate_keypair(tmp_path / "police-receipts.key")
    result = subprocess.run(
        [EDGEGUARD, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
