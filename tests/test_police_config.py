"""The police receiver's config: the example loads, errors name file:line, limits hold; and
`edgeguard police -c FILE` runs and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edgeguard.config_loader import ConfigError
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import Site, tls_mqtt
from edgeguard.police.config import PoliceConfig, load_police_config

REPO = Path(__file__).resolve().parent.parent
EDGEGUARD = str(Path(sys.executable).with_name("edgeguard"))

MINIMAL = """\
receiver_id: police-1
keys_dir: /etc/edgeguard/police/keys
database: /tmp/police.db
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "police.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads() -> None:
    config = load_police_config(REPO / "config" / "police.example.yaml")
    assert config.web.port == 8090
    assert config.mqtt.keepalive == 8
    assert config.mqtt.session_expiry == 7 * 86400
    assert config.sites["hosp-01"].name == "市第一人民医院"
    assert config.lost_after("hosp-02") == 15.0
    assert config.lost_after("hosp-99") == config.lost_after_s
    assert config.snapshots_path() == config.database.parent / "snapshots"


def test_defaults(tmp_path: Path) -> None:
    config = load_police_config(_write(tmp_path, MINIMAL))
    assert config.shared_group is None
    assert config.web.port == 8090
    assert config.lost_after_s == 15.0


@pytest.mark.parametrize(
    ("extra", "line", "where"),
    [
        ("lost_after_s: 18\n", 4, "lost_after_s"),
        ("shared_group: a/b\n", 4, "shared_group"),
        ("sites:\n  hosp-01:\n    heartbeat_interval: 6\n", 6, "sites.hosp-01.heartbeat_interval"),
        ("sites:\n  police: {}\n", 4, "sites"),
        ("mqtt:\n  keepalive: 30\n", 5, "mqtt.keepalive"),
        ("mqtt:\n  hots: typo\n", 5, "mqtt.hots"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, extra: str, line: int, where: str) -> None:
    path = _write(tmp_path, MINIMAL + extra)
    with pytest.raises(ConfigError) as caught:
        load_police_config(path)
    (issue,) = caught.value.issues
    assert (issue.line, issue.path) == (line, where), issue


def test_every_field_described() -> None:
    def walk(model: type[PoliceConfig] | type) -> None:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"

    from edgeguard.police.config import PoliceMqttConfig, SitePolicy

    for model in (PoliceConfig, PoliceMqttConfig, SitePolicy):
        walk(model)


def test_cli_runs_and_stops_on_sigterm(tmp_path: Path, broker: Mosquitto, site: Site) -> None:
    assert broker.pki is not None
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "hosp-01.pub").write_bytes(site.public_key.read_bytes())
    config = {
        "receiver_id": "police-cli",
        "mqtt": tls_mqtt(broker, "police"),
        "keys_dir": str(keys),
        "database": str(tmp_path / "police.db"),
        "web": {"enabled": False},
        "logging": {"journald": "no"},
    }
    path = _write(tmp_path, yaml.safe_dump(config))
    log = tmp_path / "police.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([EDGEGUARD, "police", "-c", str(path)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 15
        while "broker link up" not in log.read_text("utf-8", "replace"):
            assert proc.poll() is None, log.read_text("utf-8", "replace")
            assert time.monotonic() < deadline, log.read_text("utf-8", "replace")
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sqlite3.connect(tmp_path / "police.db") as conn:
        assert conn.execute("SELECT id FROM sites").fetchall() == [("hosp-01",)]
    assert "stopped" in log.read_text("utf-8")


def test_cli_reports_config_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "lost_after_s: 30\n")
    command = [EDGEGUARD, "police", "-c", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert f"{path}:4: lost_after_s:" in done.stderr


def test_city_example_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As systemd starts it: the AMQP password a credential, the DSN in a file."""
    (tmp_path / "amqp-password").write_text("secret")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    dsn = tmp_path / "postgres.dsn"
    dsn.write_text("host=db.police.example dbname=edgeguard user=edgeguard password=x")
    text = (REPO / "config" / "police-city.example.yaml").read_text("utf-8")
    config = load_police_config(
        _write(tmp_path, text.replace("/etc/edgeguard/police/postgres.dsn", str(dsn)))
    )
    assert config.amqp is not None
    assert config.postgres is not None
    assert len(config.amqp.nodes) == 3
    assert config.amqp.prefetch == 1000


def test_amqp_needs_postgres(tmp_path: Path) -> None:
    text = MINIMAL + "amqp:\n  nodes: [rabbit:5672]\n"
    with pytest.raises(ConfigError, match="`amqp` needs `postgres`"):
        load_police_config(_write(tmp_path, text))


@pytest.mark.parametrize("node", ["rabbit", "rabbit:0", "rabbit:x", ":5672"])
def test_amqp_nodes_are_host_port(tmp_path: Path, node: str) -> None:
    text = MINIMAL + f"postgres: {{dsn: 'host=db'}}\namqp:\n  nodes: ['{node}']\n"
    with pytest.raises(ConfigError, match="is not host:port"):
        load_police_config(_write(tmp_path, text))
