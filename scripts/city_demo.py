"""`make city-demo`: the police platform of a city on this machine (docs/city-platform.md).

Starts a three-node RabbitMQ cluster (MQTT plugin, TLS client certificates, per-site topic
permissions, quorum queues), a PostgreSQL server, two city receivers with their dashboards
(`edgeguard police` in city mode: AMQP competing consumers, one elected supervisor), the
demo's real site (`edgeguard run`, on the cluster's three nodes over MQTT 3.1.1, with receipts)
and a simulator of a few hundred further hospitals (edgeguard/lab/site_sim.py: own keys and
certificates, heartbeats, Will). Everything lives in .city-demo/ and on loopback ports chosen
at run time; it prints every address. Keys on the keyboard press the real site's button, raise
a storm at the simulated hospitals and kill one of them; Ctrl-C (or q) stops everything.

    .venv/bin/python scripts/city_demo.py                 interactive
    .venv/bin/python scripts/city_demo.py --smoke         press, see it stored and on the
                                                          dashboard, exit (for tests)
    .venv/bin/python scripts/city_demo.py --hospitals 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgeguard.lab.broker import free_port  # noqa: E402
from edgeguard.lab.consoles import wait_http  # noqa: E402
from edgeguard.lab.harness import DaemonProcess, Site, make_site  # noqa: E402
from edgeguard.lab.pki import DevPKI  # noqa: E402
from edgeguard.lab.postgres import PostgresServer  # noqa: E402
from edgeguard.lab.rabbitmq import RabbitCluster  # noqa: E402
from edgeguard.lab.site_sim import SimConfig, SiteSimulator  # noqa: E402
from edgeguard.signing import generate_keypair  # noqa: E402

WORK = REPO / ".city-demo"
EDGEGUARD = str(Path(sys.executable).parent / "edgeguard")
SITE = "demo-hospital"
BUTTON = "er-panic-button"
LOGIN, PASSWORD = "police", "edgeguard-demo"
HELP = """
  Keys:  p  press the demo hospital's panic button (a real daemon)
         s  a storm: one alarm at each simulated hospital within a second
         k  kill a simulated hospital (no DISCONNECT: the cluster sends its Will)
         q  quit (or Ctrl-C)
"""


class CityDemo:
    def __init__(self, hospitals: int) -> None:
        self.hospitals = hospitals
        if WORK.exists():
            shutil.rmtree(WORK)
        WORK.mkdir()
        self.pki = DevPKI(WORK / "pki")
        self.keys = WORK / "police-keys"
        self.keys.mkdir()
        self.receipt_key = WORK / "police-receipts.key"
        self.receipt_pub = generate_keypair(self.receipt_key)
        self.sim_ids = [f"sim-{i:05d}" for i in range(1, hospitals + 1)]
        self.cluster = RabbitCluster(WORK / "rabbit", self.pki, sites=[SITE, *self.sim_ids])
        self.pg = PostgresServer(WORK / "pg")
        self.receivers: list[subprocess.Popen[bytes]] = []
        self.web_ports = [free_port(), free_port()]
        self.site: Site | None = None
        self.daemon: DaemonProcess | None = None
        self.sim: SiteSimulator | None = None
        self.killed = 0

    # --- the parts ---------------------------------------------------------------------------
    def start_servers(self) -> None:
        began = time.monotonic()
        self.pg.start()
        print(f"postgres: {self.pg.dsn.split(' password=')[0]}")
        self.cluster.start()
        nodes = ", ".join(f"{n.name} mqtts {n.mqtts_port} amqp {n.amqp_port}"
                          for n in self.cluster.nodes)  # fmt: skip
        print(f"cluster:  RabbitMQ {self.cluster.version}, 3 nodes ({nodes}) in "
              f"{time.monotonic() - began:.0f} s")  # fmt: skip

    def receiver_config(self, index: int) -> dict[str, Any]:
        return {
            "receiver_id": f"city-receiver-{index + 1}",
            "keys_dir": str(self.keys),
            "receipt_key": str(self.receipt_key),
            "database": str(WORK / f"receiver-{index + 1}" / "unused.db"),
            "snapshots_dir": str(WORK / "snapshots"),
            "postgres": {"dsn": self.pg.dsn},
            "amqp": {
                # each receiver starts on another node; both know all three
                "nodes": [f"127.0.0.1:{n.amqp_port}" for n in self._rotated(index)],
                "username": self.cluster.police,
                "password": self.cluster.police_password,
            },
            "web": {"host": "127.0.0.1", "port": self.web_ports[index], "language": "zh"},
            "logging": {"level": "INFO", "journald": "no"},
        }

    def _rotated(self, index: int) -> list[Any]:
        nodes = self.cluster.nodes
        return [*nodes[index % len(nodes) :], *nodes[: index % len(nodes)]]

    def start_site(self) -> None:
        pair = self.pki.client(SITE)
        first, *others = self.cluster.nodes
        mqtt = {
            "host": "localhost", "port": first.mqtts_port,
            "nodes": [f"localhost:{n.mqtts_port}" for n in others],
            "protocol": "3.1.1", "client_id": SITE, "keepalive": 8, "heartbeat_interval": 5,
            "tls": {"ca_file": str(self.pki.ca_file), "cert_file": str(pair.cert),
                    "key_file": str(pair.key)},
        }  # fmt: skip
        inputs = [{"type": "simulated", "name": BUTTON, "location": "er"}]
        self.site = make_site(WORK / "site", None, site_id=SITE, inputs=inputs, mqtt_extra=mqtt)
        self.site.data["site"]["name"] = "演示医院（市第一人民医院）"
        self.site.data["receipts"] = {"police_keys": [str(self.receipt_pub)]}
        self.site.write()
        shutil.copyfile(self.site.public_key, self.keys / f"{SITE}.pub")
        self.daemon = DaemonProcess(self.site)
        self.daemon.start()
        print(f"site:     {SITE}, a real daemon on the three nodes (MQTT 3.1.1, TLS, receipts)")

    async def start_simulator(self) -> None:
        node = self.cluster.nodes[1]
        self.sim = SiteSimulator(SimConfig(
            WORK / "sim", port=node.mqtts_port, host="localhost", site_ids=tuple(self.sim_ids),
            keys_dir=self.keys, pki_dir=self.pki.directory, protocol="3.1.1",
            client_id="{site}", police_keys=(self.receipt_pub,), site_name="模拟医院",
            processes=1,
        ))  # fmt: skip
        self.sim.prepare()  # their keys in the receivers' keys folder before they start
        print(f"sim:      {self.hospitals} simulated hospitals, keys and certificates made")

    def start_receivers(self) -> None:
        for index in range(2):
            config = WORK / f"receiver-{index + 1}.yaml"
            config.write_text(yaml.safe_dump(self.receiver_config(index), allow_unicode=True))
            log = (WORK / f"receiver-{index + 1}.log").open("ab")
            self.receivers.append(subprocess.Popen(
                [EDGEGUARD, "police", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            ))  # fmt: skip
        add = subprocess.run(
            [EDGEGUARD, "user", "add", "-c", str(WORK / "receiver-1.yaml"), "--police", LOGIN,
             "--role", "admin", "--display-name", "110 指挥中心"],
            input=f"{PASSWORD}\n".encode(), capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        if add.returncode != 0:
            raise SystemExit(f"cannot add the dashboard user: {add.stderr.decode()[-500:]}")
        for index, (port, proc) in enumerate(zip(self.web_ports, self.receivers, strict=True)):
            wait_http(f"http://127.0.0.1:{port}", proc, WORK / f"receiver-{index + 1}.log", 60)
        print("receivers: city-receiver-1 and -2 (AMQP competing consumers, one supervisor)")
        for index, port in enumerate(self.web_ports):
            print(f"dashboard {index + 1}: http://127.0.0.1:{port}/  ({LOGIN} / {PASSWORD})")

    async def start(self) -> None:
        self.start_servers()
        await self.start_simulator()
        self.start_site()
        self.start_receivers()
        assert self.sim is not None
        await self.sim.start(timeout=300)
        print(f"          {self.hospitals} simulated hospitals connected; heartbeats every 5 s")

    async def stop(self) -> None:
        if self.sim is not None:
            with contextlib.suppress(Exception):
                await self.sim.stop()
        if self.daemon is not None:
            self.daemon.stop()
        for proc in self.receivers:
            proc.terminate()
        for proc in self.receivers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
        self.cluster.stop()
        self.pg.close()

    # --- what one can do ---------------------------------------------------------------------
    def press(self) -> None:
        assert self.daemon is not None
        self.daemon.press(BUTTON)
        print(f"pressed {BUTTON} at {SITE}: watch the dashboards (open alarms first)")

    async def storm(self) -> None:
        assert self.sim is not None
        began = time.monotonic()
        await self.sim.storm(per_site=1, window_s=1.0)
        stats = await self.sim.wait_settled(timeout=120)
        print(f"storm: one alarm at each of {self.hospitals} hospitals: {stats.alarms_receipted} "
              f"receipted in {time.monotonic() - began:.1f} s")  # fmt: skip

    async def kill_one(self) -> None:
        assert self.sim is not None
        self.killed += 1
        victim = self.sim_ids[-self.killed]
        await self.sim.kill(victim)
        print(f"killed {victim}: the cluster sends its Will; the dashboards show it lost")

    def stored(self, source: str) -> bool:
        import psycopg

        with psycopg.connect(self.pg.dsn) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM alarms WHERE site = %s AND source = %s", (SITE, source)
            ).fetchone()
        return bool(row and row[0])


def dashboard_open_alarms(port: int) -> list[dict[str, Any]]:
    """The open alarms as a dispatcher logged in at the dashboard on ``port`` sees them."""
    import http.cookiejar
    import urllib.parse
    import urllib.request

    url = f"http://127.0.0.1:{port}"
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = urllib.parse.urlencode({"user": LOGIN, "password": PASSWORD}).encode()
    login = urllib.request.Request(f"{url}/login", data=form, headers={"Origin": url})
    with opener.open(login, timeout=10):
        pass
    with opener.open(f"{url}/api/alarms/open?site={SITE}", timeout=10) as answer:
        return list(json.loads(answer.read())["alarms"])


async def smoke(demo: CityDemo) -> int:
    """Press at the real site; the alarm must be stored, received (receipt) and on the
    dashboard's open alarms through the cluster."""
    demo.press()
    deadline = time.monotonic() + 60
    while not demo.stored(BUTTON):
        if time.monotonic() > deadline:
            print("smoke: the alarm did not reach the police database", file=sys.stderr)
            return 1
        await asyncio.sleep(0.3)
    assert demo.daemon is not None
    while demo.daemon.status()["outbox"].get("awaiting_receipt", 0):
        if time.monotonic() > deadline:
            print("smoke: no receipt reached the site", file=sys.stderr)
            return 1
        await asyncio.sleep(0.3)
    # on the other receiver's dashboard: whichever receiver stored it, every one shows it
    port = demo.web_ports[1]
    while not any(a.get("source") == BUTTON for a in dashboard_open_alarms(port)):
        if time.monotonic() > deadline:
            print(f"smoke: the alarm is not on the dashboard at port {port}", file=sys.stderr)
            return 1
        await asyncio.sleep(0.3)
    print(f"smoke: the alarm is on both dashboards' open alarms (checked at port {port})")
    await demo.storm()
    print(json.dumps({"smoke": "ok", "hospitals": demo.hospitals}))
    return 0


async def interactive(demo: CityDemo) -> None:
    print(HELP)
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd) if os.isatty(fd) else None
    try:
        if old is not None:
            tty.setcbreak(fd)
        while True:
            ready = await asyncio.to_thread(select.select, [sys.stdin], [], [], 0.5)
            if not ready[0]:
                continue
            key = sys.stdin.read(1)
            if key in ("q", ""):
                return
            actions = {"p": demo.press}
            if key in actions:
                actions[key]()
            elif key == "s":
                await demo.storm()
            elif key == "k":
                await demo.kill_one()
    finally:
        if old is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)


async def main_async(args: argparse.Namespace) -> int:
    demo = CityDemo(args.hospitals)
    try:
        await demo.start()
        if args.smoke:
            return await smoke(demo)
        await interactive(demo)
    except KeyboardInterrupt:
        return 0
    else:
        return 0
    finally:
        print("stopping…")
        await demo.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hospitals", type=int, default=300, help="simulated hospitals")
    parser.add_argument("--smoke", action="store_true", help="press, check, exit")
    args = parser.parse_args()
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
