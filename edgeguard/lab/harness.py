"""Harness shared by tests, benchmarks and the demo: write a site config for a lab broker, run
the daemon (as a subprocess or in-process), and a police subscriber that verifies what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgeguard.alarm_model import Action, AlarmKind, InputSignal
from edgeguard.config import EdgeguardConfig
from edgeguard.control import call
from edgeguard.daemon import Daemon
from edgeguard.ids import utc_now
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.pki import DevPKI
from edgeguard.lab.procs import stop_process
from edgeguard.receiver import Received, Receiver
from edgeguard.signing import generate_keypair, load_public_key
from edgeguard.uplink.paho_link import no_delay


@dataclass
class Site:
    """A lab site: its directory, key pair and config file."""

    site_id: str
    directory: Path
    config_path: Path
    public_key: Path
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return Path(self.data["control"]["socket"])

    @property
    def db(self) -> Path:
        return Path(self.data["store"]["path"])

    def write(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.data, allow_unicode=True), "utf-8")

    def config(self) -> EdgeguardConfig:
        return EdgeguardConfig.model_validate(self.data)


def tls_mqtt(broker: Mosquitto, common_name: str) -> dict[str, Any]:
    """The `mqtt` settings to reach ``broker``'s TLS listener with a client certificate whose
    CN is ``common_name`` (the site id, or `police`)."""
    assert broker.pki is not None
    pair = broker.pki.client(common_name)
    return {
        "host": "localhost",
        "port": broker.tls_port,
        "tls": {"ca_file": str(broker.pki.ca_file), "cert_file": str(pair.cert),
                "key_file": str(pair.key)},
    }  # fmt: skip


def fill_disk(directory: Path) -> Path:
    """Fill the file system of ``directory`` with a ballast file (returned) until it is full."""
    ballast = directory / "ballast"
    with contextlib.suppress(OSError), ballast.open("wb") as handle:
        while True:
            handle.write(b"\0" * 4096)
            handle.flush()
    return ballast


def make_site(
    directory: Path,
    broker: Mosquitto | None,
    *,
    site_id: str = "hosp-01",
    inputs: list[dict[str, Any]] | None = None,
    tls: bool = True,
    mqtt_extra: dict[str, Any] | None = None,
    console_port: int | None = None,
) -> Site:
    """Create keys and a config for a site on ``broker`` (TLS client cert when it has a PKI).
    The control-room console is off unless ``console_port`` is given (tests run many sites).
    Without ``broker`` (another kind of broker), ``mqtt_extra`` says where and how."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / f"{site_id}.key"
    public = generate_keypair(key, overwrite=True)
    mqtt_cfg: dict[str, Any] = {
        "host": "127.0.0.1",
        **({"port": broker.port} if broker is not None else {}),
        "keepalive": 5,
        "heartbeat_interval": 1.0,
        "reconnect_min": 0.2,
        "reconnect_max": 1.0,
    }
    if tls and broker is not None and broker.pki is not None:
        mqtt_cfg.update(tls_mqtt(broker, site_id))
    mqtt_cfg.update(mqtt_extra or {})
    data = {
        "site": {"id": site_id, "name": "市第一人民医院"},
        "mqtt": mqtt_cfg,
        "signing": {"private_key": str(key)},
        "store": {"path": str(directory / "edgeguard.db")},
        "control": {"socket": str(directory / "control.sock")},
        "logging": {"level": "INFO", "journald": "no"},
        "console": {"enabled": console_port is not None, "port": console_port or 8080},
        "locations": {
            "er": {
                "label": "急诊分诊台",
                "building": "门诊楼",
                "floor": "1F",
                "zone": "ER",
                "cameras": ["cam-er-1", "cam-er-2"],
            },
            "cashier": {"label": "收费处", "building": "门诊楼", "floor": "1F", "zone": "cashier"},
        },
        "inputs": inputs
        if inputs is not None
        else [{"type": "simulated", "name": "er-button", "location": "er"}],
    }
    site = Site(site_id, directory, directory / "edgeguard.yaml", public, data)
    site.write()
    return site


class DaemonProcess:
    """`edgeguard run` as a subprocess, as systemd would run it."""

    def __init__(self, site: Site, env: dict[str, str] | None = None) -> None:
        self.site = site
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = site.directory / "daemon.log"

    def start(self, timeout: float = 15.0) -> None:
        exe = Path(sys.executable).with_name("edgeguard")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "run", "-c", str(self.site.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.log_text()}")
            with contextlib.suppress(ConnectionError, OSError, ValueError):
                if call(self.site.socket, {"cmd": "status"}, timeout=2).get("ok"):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"daemon not ready:\n{self.log_text()}")

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        return call(self.site.socket, request)

    def press(self, name: str) -> None:
        assert self.control({"cmd": "press", "input": name})["ok"]

    def release(self, name: str) -> None:
        assert self.control({"cmd": "release", "input": name})["ok"]

    def status(self) -> dict[str, Any]:
        return self.control({"cmd": "status"})

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        return stop_process(self.proc, timeout)

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""


class InProcessDaemon:
    """The daemon on its own loop in a thread (benchmarks, MockFactory GPIO tests)."""

    def __init__(self, config: EdgeguardConfig, pin_factory: Any | None = None) -> None:
        self.daemon = Daemon(config, pin_factory=pin_factory)
        self._thread = threading.Thread(target=self._main, name="daemon", daemon=True)
        self._ready = threading.Event()
        self.error: BaseException | None = None

    def _main(self) -> None:
        async def main() -> None:
            task = asyncio.create_task(self.daemon.run(install_signals=False))
            ready = asyncio.create_task(self.daemon.ready.wait())
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            self._ready.set()
            await task

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in __enter__
            self.error = exc
        finally:
            self._ready.set()

    def __enter__(self) -> InProcessDaemon:
        self._thread.start()
        self._ready.wait(30)
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *_exc: object) -> None:
        self.daemon.request_stop()
        self._thread.join(30)

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            uplink = self.daemon.uplink
            if uplink is not None and uplink.connected:
                return
            time.sleep(0.01)
        raise TimeoutError("daemon did not connect to the broker")


class PoliceSubscriber:
    """A police-side client subscribed to ``edgeguard/#`` that verifies every message."""

    def __init__(
        self,
        broker: Mosquitto,
        site_keys: dict[str, Path],
        *,
        client_id: str = "police-test",
        clean: bool = True,
    ) -> None:
        self.receiver = Receiver({site: load_public_key(p) for site, p in site_keys.items()})
        self.received: list[tuple[float, Received]] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.on_receive: Callable[[float, Received], None] | None = None
        host, port = "127.0.0.1", broker.port
        if broker.pki is not None:
            pair = broker.pki.client("police")
            self.client.tls_set(
                ca_certs=str(broker.pki.ca_file),
                certfile=str(pair.cert),
                keyfile=str(pair.key),
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            host, port = "localhost", broker.tls_port or 0
        self._subscribed = threading.Event()
        self.client.on_socket_open = no_delay
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.host, self.port, self.clean = host, port, clean

    def __enter__(self) -> PoliceSubscriber:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0 if self.clean else 3600
        self.client.connect(
            self.host, self.port, keepalive=10, clean_start=self.clean, properties=props
        )
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("police subscriber did not subscribe")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *_a: Any) -> None:
        client.subscribe("edgeguard/#", qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        received = self.receiver.handle(message.topic, bytes(message.payload))
        if self.on_receive is not None:
            self.on_receive(now, received)
        with self._cond:
            self.received.append((now, received))
            self._cond.notify_all()

    def alarms(self, *, unique: bool = True) -> list[dict[str, Any]]:
        with self._cond:
            return [
                r.payload
                for _, r in self.received
                if r.kind == "alarm" and r.payload and not (unique and r.duplicate)
            ]

    def warnings(self) -> list[Received]:
        with self._cond:
            return [r for _, r in self.received if r.warning]

    def wait_for(
        self, predicate: Callable[[PoliceSubscriber], bool], timeout: float = 10.0
    ) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def wait_alarms(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        self.wait_for(lambda s: len(s.alarms()) >= count, timeout)
        return self.alarms()


def lab_broker(directory: Path, *, tls: bool = True) -> Mosquitto:
    """A started mosquitto with a dev PKI and the site ACL (or plain when tls=False)."""
    pki = DevPKI(directory / "pki") if tls else None
    broker = Mosquitto(directory / "broker", pki=pki, acl=tls)
    broker.start()
    return broker


def storm_signals(count: int) -> list[InputSignal]:
    """``count`` distinct panic buttons going into alarm in the same instant."""
    now = utc_now()
    return [
        InputSignal(
            source=f"storm-{i:04d}",
            action=Action.ACTIVE,
            kind=AlarmKind.PANIC,
            priority=1,
            location="er",
            occurred_at=now,
        )
        for i in range(count)
    ]
