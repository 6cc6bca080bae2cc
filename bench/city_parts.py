"""The deployments bench/city_scale.py loads: today's single receiver (SQLite, mosquitto) and
the city platform (RabbitMQ cluster, PostgreSQL, N receivers), each as real processes."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from edgeguard.lab.broker import Mosquitto, free_port
from edgeguard.lab.pki import DevPKI
from edgeguard.lab.postgres import PostgresServer
from edgeguard.lab.rabbitmq import RabbitCluster
from edgeguard.lab.site_sim import SimConfig

EDGEGUARD = str(Path(sys.executable).parent / "edgeguard")
LOGIN, PASSWORD = "bench", "bench password"
LOST_LINE = re.compile(r" site (\S+) LOST: ")


@dataclass
class Receiver:
    """One `edgeguard police` process: its config, log and resource use."""

    name: str
    config: dict[str, Any]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    web_port: int | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "police.yaml"
        path.write_text(yaml.safe_dump(self.config), "utf-8")
        with (self.workdir / "receiver.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [EDGEGUARD, "police", "-c", str(path)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip

    @property
    def config_file(self) -> Path:
        return self.workdir / "police.yaml"

    def log(self) -> str:
        return (self.workdir / "receiver.log").read_text("utf-8", "replace")

    def lost_lines(self) -> list[str]:
        return LOST_LINE.findall(self.log())

    def usage(self) -> dict[str, float]:
        """CPU seconds used so far and the peak RSS (MiB), from /proc."""
        if self.proc is None or self.proc.poll() is not None:
            return {"cpu_s": 0.0, "rss_peak_mib": 0.0}
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        peak = next((int(line.split()[1]) for line in status.splitlines()
                     if line.startswith("VmHWM:")), 0)  # fmt: skip
        return {"cpu_s": ticks / 100.0, "rss_peak_mib": round(peak / 1024, 1)}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def add_dashboard_user(receiver: Receiver) -> None:
    subprocess.run(
        [EDGEGUARD, "user", "add", "-c", str(receiver.config_file), "--police", LOGIN,
         "--role", "admin"],
        input=f"{PASSWORD}\n".encode(), capture_output=True, timeout=60, check=True,
    )  # fmt: skip


@dataclass
class Deployment:
    """What a scenario needs of a deployment: receivers, where their rows are, the sites'
    simulator config, and how to count what is stored."""

    name: str
    receivers: list[Receiver]
    sim_configs: list[SimConfig]
    dsn: str | None = None  # PostgreSQL; else the SQLite file below
    sqlite: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.dsn is not None:
            with psycopg.connect(self.dsn) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchall()
        import sqlite3

        assert self.sqlite is not None
        with contextlib.closing(sqlite3.connect(f"file:{self.sqlite}?mode=ro", uri=True)) as c:
            return c.execute(sql, params).fetchall()

    def stored_count(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM messages")[0][0])

    def states(self) -> dict[str, str]:
        return dict(self.query("SELECT id, state FROM sites"))  # type: ignore[arg-type]


def _split(sites: list[str], parts: int) -> list[list[str]]:
    return [sites[i::parts] for i in range(parts)]


def baseline(work: Path, pki: DevPKI, sites: list[str], keys: Path, receipt: tuple[Path, Path],
             processes: int) -> tuple[Mosquitto, Deployment]:  # fmt: skip
    """Today's receiver: one `edgeguard police` on SQLite behind one mosquitto (MQTT 5)."""
    broker = Mosquitto(work / "mosquitto", pki=pki, acl=True, plain=False)
    broker.start()
    police = pki.client("police")
    receiver = Receiver("baseline", {
        "receiver_id": "baseline-receiver",
        "mqtt": {"host": "localhost", "port": broker.tls_port,
                 "tls": {"ca_file": str(pki.ca_file), "cert_file": str(police.cert),
                         "key_file": str(police.key)}},
        "keys_dir": str(keys), "receipt_key": str(receipt[0]),
        "database": str(work / "baseline" / "police.db"),
        "web": {"host": "127.0.0.1", "port": free_port()},
        "logging": {"level": "INFO", "journald": "no"},
    }, work / "baseline")  # fmt: skip
    receiver.web_port = receiver.config["web"]["port"]
    sims = [SimConfig(work / "sim", port=broker.tls_port, site_ids=tuple(part), keys_dir=keys,
                      pki_dir=pki.directory, police_keys=(receipt[1],),
                      processes=1 if processes > 1 else 0)
            for part in _split(sites, max(1, processes))]  # fmt: skip
    return broker, Deployment("baseline", [receiver], sims, sqlite=work / "baseline" / "police.db")


def city(work: Path, cluster: RabbitCluster, pg: PostgresServer, run: str, count: int,
         sites: list[str], keys: Path, receipt: tuple[Path, Path],
         processes: int) -> Deployment:  # fmt: skip
    """The city platform: ``count`` receivers on the cluster, one database of this run."""
    dsn = pg.create_database(f"bench_{run}")
    receivers = []
    for index in range(count):
        nodes = [*cluster.nodes[index % 3 :], *cluster.nodes[: index % 3]]
        name = f"{run}-r{index + 1}"
        receiver = Receiver(name, {
            "receiver_id": name, "keys_dir": str(keys), "receipt_key": str(receipt[0]),
            "database": str(work / name / "unused.db"), "postgres": {"dsn": dsn},
            "amqp": {"nodes": [f"127.0.0.1:{n.amqp_port}" for n in nodes],
                     "username": cluster.police, "password": cluster.police_password,
                     "queue_prefix": f"edgeguard-police.{run}-"},
            "web": {"host": "127.0.0.1", "port": free_port()} if index == 0
            else {"enabled": False},
            "logging": {"level": "INFO", "journald": "no"},
        }, work / name)  # fmt: skip
        receiver.web_port = receiver.config["web"].get("port")
        receivers.append(receiver)
    # the sites spread over the three nodes, as a city's load balancer would spread them
    sims = [SimConfig(work / "sim", port=cluster.nodes[i % 3].mqtts_port, host="localhost",
                      site_ids=tuple(part), keys_dir=keys, pki_dir=pki_dir(cluster),
                      protocol="3.1.1", client_id="{site}", police_keys=(receipt[1],),
                      processes=1 if processes > 1 else 0)
            for i, part in enumerate(_split(sites, max(3, processes)))]  # fmt: skip
    queue = f"edgeguard-police.{run}-alarms"
    return Deployment(run, receivers, sims, dsn=dsn, extra={"queue": queue})


def pki_dir(cluster: RabbitCluster) -> Path:
    return cluster.pki.directory
