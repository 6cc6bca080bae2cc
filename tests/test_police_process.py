"""`edgeguard police` as a process, as systemd runs it, on a real mosquitto: what survives
a kill -9."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from test_police_service import RawClient, signed_alarm

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import Site, tls_mqtt

ALARM_TOPIC = "edgeguard/hosp-01/alarm/er-button"


def write_config(directory: Path, broker: Mosquitto, site: Site) -> Path:
    keys = directory / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    shutil.copy(site.public_key, keys / f"{site.site_id}.pub")
    config = {
        "receiver_id": "police-process-1",
        "mqtt": {**tls_mqtt(broker, "police"), "reconnect_min": 0.2, "reconnect_max": 1.0},
        "keys_dir": str(keys),
        "database": str(directory / "police.db"),
        "web": {"enabled": False},
        "logging": {"level": "INFO", "journald": "no"},
    }
    path = directory / "police.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class PoliceProcess:
    """`edgeguard police -c FILE`, its log in a file."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = {**os.environ, **(env or {})}
        self.log = config.with_name("police.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("edgeguard")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "police", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int | None:
        """SIGTERM (SIGKILL if it hangs); the exit status, None if it was not running."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


def wait_for(
    predicate: Callable[[], Any], what: str, process: PoliceProcess, timeout: float = 60
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert process.proc is not None
        if process.proc.poll() is not None:
            raise AssertionError(f"receiver exited waiting for {what}:\n{process.log_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{process.log_text()}")
        time.sleep(0.1)


def stored_alarms(database: Path) -> set[str]:
    if not database.exists():
        return set()
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
        try:
            return {row[0] for row in conn.execute("SELECT event_id FROM alarms")}
        except sqlite3.OperationalError:  # not created yet
            return set()


def alarm(site: Site, number: int) -> bytes:
    return signed_alarm(site, event_id=f"01a20614-{number:04d}-70e4-b533-6874e06fb7a0")


def test_kill_9_before_the_commit_loses_no_alarm(
    tmp_path: Path, broker: Mosquitto, site: Site, cleanup: list[Callable[[], None]]
) -> None:
    """Alarms delivered to the receiver but not yet stored (the database is locked) when it
    is killed: they were not acknowledged, so the broker delivers them again after the
    restart, from the receiver's persistent session."""
    config = write_config(tmp_path / "police", broker, site)
    database = tmp_path / "police" / "police.db"
    publisher = RawClient(broker)
    cleanup.append(publisher.close)
    receiver = PoliceProcess(config)
    cleanup.append(receiver.stop)
    receiver.start()
    probe = alarm(site, 0)
    probe_id = json.loads(probe)["event_id"]

    def probe_stored() -> bool:
        publisher.publish(ALARM_TOPIC, probe)  # until subscribed; stored once
        return probe_id in stored_alarms(database)

    wait_for(probe_stored, "the receiver's subscription", receiver)

    lock = sqlite3.connect(database, isolation_level=None)
    cleanup.append(lock.close)
    lock.execute("BEGIN EXCLUSIVE")  # the receiver's next commit waits, then fails
    bodies = [alarm(site, n) for n in range(1, 6)]
    for body in bodies:
        publisher.publish(ALARM_TOPIC, body)  # PUBACK: the broker has it
    wait_for(lambda: "database is locked" in receiver.log_text(), "a commit refused", receiver)
    receiver.kill()
    lock.execute("ROLLBACK")
    lock.close()

    expected = {probe_id, *(json.loads(body)["event_id"] for body in bodies)}
    receiver.start()
    wait_for(lambda: stored_alarms(database) == expected, "every alarm stored", receiver)
