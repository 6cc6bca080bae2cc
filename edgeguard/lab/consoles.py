"""The police receiver and dashboard as a process, and console users, for tests, benches and
the demo: `edgeguard police -c FILE` on a lab broker, with the sites' public keys."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from edgeguard.lab.broker import Mosquitto, free_port
from edgeguard.lab.procs import stop_process
from edgeguard.web.users import Role, UserStore


def add_user(users_db: Path, name: str, password: str, role: Role, display: str = "") -> None:
    store = UserStore(users_db)
    if store.get(name) is None:
        store.add(name, password, role, display_name=display, language="zh")


@dataclass
class PoliceReceiver:
    """`edgeguard police` on ``broker`` for the sites whose public keys are given."""

    directory: Path
    broker: Mosquitto
    site_keys: dict[str, Path]
    port: int = 0
    lost_after_s: float = 15.0
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        keys = self.directory / "keys"
        keys.mkdir(exist_ok=True)
        for site, key in self.site_keys.items():
            shutil.copyfile(key, keys / f"{site}.pub")
        self.config_path.write_text(
            yaml.safe_dump(self.config(), allow_unicode=True), "utf-8"
        )

    @property
    def config_path(self) -> Path:
        return self.directory / "police.yaml"

    @property
    def users_db(self) -> Path:
        return self.directory / "users.db"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "police.log"

    def config(self) -> dict[str, Any]:
        mqtt: dict[str, Any] = {"host": "127.0.0.1", "port": self.broker.port}
        pki = self.broker.pki
        if pki is not None:
            pair = pki.client("police")
            mqtt = {
                "host": "localhost",
                "port": self.broker.tls_port,
                "tls": {
                    "ca_file": str(pki.ca_file),
                    "cert_file": str(pair.cert),
                    "key_file": str(pair.key),
                },
            }
        return {
            "receiver_id": f"police-{self.port}",
            "mqtt": mqtt,
            "keys_dir": str(self.directory / "keys"),
            "database": str(self.directory / "police.db"),
            "lost_after_s": self.lost_after_s,
            "web": {"host": "127.0.0.1", "port": self.port},
            "logging": {"level": "INFO", "journald": "no"},
        }

    def start(self, timeout: float = 20.0) -> None:
        exe = Path(sys.executable).with_name("edgeguard")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "police", "-c", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
            )  # fmt: skip
        wait_http(self.url, self.proc, self.log, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout)

    def log_text(self) -> str:
        return self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    """Until ``url``/login answers; RuntimeError with the process's log if it exits first,
    TimeoutError if it never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text("utf-8", errors="replace") if log.exists() else ""
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}:\n{text}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/login", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s; see {log}")


def publish_forged_alarm(broker: Mosquitto, site_id: str, workdir: Path) -> str:
    """An alarm for ``site_id`` signed with a key that is not the site's, published with the
    site's own certificate (as a stolen certificate would): the police must show a security
    warning, never an alarm. Returns the forged event id."""
    from edgeguard.ids import iso_ms, utc_now, uuid7
    from edgeguard.signing import Signer, generate_keypair

    key = workdir / "forger.key"
    generate_keypair(key, overwrite=True)
    event_id = uuid7()
    now = iso_ms(utc_now())
    payload = {
        "v": 1, "type": "alarm", "message": "new", "event_id": event_id, "site": site_id,
        "site_name": "伪造", "seq": 999, "kind": "panic", "priority": 1, "source": "forged",
        "location": {"id": "er", "label": "伪造的报警"}, "state": "active",
        "occurred_at": now, "recorded_at": now,
    }  # fmt: skip
    body = Signer.from_file(key).encode(payload)
    _publish_as(broker, site_id, f"edgeguard/{site_id}/alarm/forged", body)
    return event_id


def _publish_as(broker: Mosquitto, client_name: str, topic: str, body: bytes) -> None:
    import ssl

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{client_name}-forger",
        protocol=MQTTProtocolVersion.MQTTv5,
    )  # fmt: skip
    host, port = "127.0.0.1", broker.port
    if broker.pki is not None:
        pair = broker.pki.client(client_name)
        client.tls_set(
            ca_certs=str(broker.pki.ca_file), certfile=str(pair.cert), keyfile=str(pair.key),
            cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )  # fmt: skip
        host, port = "localhost", broker.tls_port or 0
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        client.publish(topic, body, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
