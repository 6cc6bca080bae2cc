"""The city dashboard's API under load: 5,000 hospitals on a real PostgreSQL (and the same on
SQLite for comparison), the dashboard in a process of its own, concurrent logged-in clients.

The store holds N sites (5 % lost, 5 % offline, 5 % unknown, the rest online), an open alarm
at 1 site in 25 (a third of them acknowledged) and 20 resolved alarms per 5 sites of history
(PostgreSQL then VACUUM ANALYZEd, as autovacuum keeps a table in service).
The dashboard (PoliceService with its app, not receiving: no broker) runs in a child process;
C clients (default 8) in this process each send requests in turn: the summary, the first
page of sites, a random deeper page, a search by a piece of an id, the lost ones, the first
page of open alarms. Measured per request from the client (HTTP on loopback included): p50,
p95, p99 per endpoint and over all; the live stream's first state (time to its first event,
and its size); a site's change committed → its delta on an open stream; and the queries
alone (CityQueries in this process, no HTTP).

Run: .venv/bin/python bench/city_dashboard.py [--sites N] [--requests N] [--clients C]
     [--no-sqlite]      (last line: one JSON object)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, line, machine, percentiles

from edgeguard.lab.broker import free_port
from edgeguard.lab.postgres import PostgresServer
from edgeguard.police.city_queries import CityQueries
from edgeguard.police.config import PoliceConfig
from edgeguard.police.store import PoliceStore, open_store

ADMIN, ADMIN_PW = "bench", "bench password"
TIMEOUT = aiohttp.ClientTimeout(total=60)


def config_data(work: Path, port: int, dsn: str | None) -> dict[str, Any]:
    keys = work / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "receiver_id": "bench-dashboard",
        "keys_dir": str(keys),
        "database": str(work / "police.db"),
        "web": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "WARNING", "journald": "no"},
    }
    if dsn is not None:
        data["postgres"] = {"dsn": dsn, "pool_max": 8}
    return data


def fill(store: PoliceStore, sites: int) -> int:
    """The store's contents (see the module's text); the number of open alarms."""
    states = {0: "lost", 1: "offline", 2: "unknown"}
    store.update_sites(
        [
            (
                f"hosp-{i:05d}",
                {"name": f"第{i:05d}人民医院", "state": states.get(i % 20, "online")},
                False,
            )
            for i in range(sites)
        ]
    )
    items, acked, resolved, n = [], [], [], 0
    for i in range(sites):
        site = f"hosp-{i:05d}"
        for _history in range(20 if i % 5 == 0 else 0):
            items.append((site, payload(n, site, 2), None))
            resolved.append(n)
            n += 1
        if i % 25 == 7:
            items.append((site, payload(n, site, 1 + i % 3), None))
            if i % 75 == 7:
                acked.append(n)
            n += 1
    for at in range(0, len(items), 2000):
        store.record_alarms(items[at : at + 2000])
    for number in acked:
        store.record_action(event_id(number), "acknowledged", "bench", ok=True)
    with store.db.write() as tx:  # the history, resolved at once (record_action: one by one)
        tx.executemany(
            "UPDATE alarms SET police_state = 'resolved', police_by = 'bench' WHERE event_id = ?",
            [(event_id(number),) for number in resolved],
        )
    return len(items) - len(resolved)


def event_id(n: int) -> str:
    return f"01a20614-{n >> 16:04x}-{n & 0xFFFF:04x}-b533-6874e06fb7a0"


def payload(n: int, site: str, priority: int) -> dict[str, Any]:
    return {
        "v": 1, "type": "alarm", "message": "new", "event_id": event_id(n), "site": site,
        "seq": 1, "kind": "panic", "state": "active", "priority": priority, "source": "button",
        "location": {"id": "er", "label": "急诊"},
        "occurred_at": f"2026-11-{1 + n // 86400 % 28:02d}T{n // 3600 % 24:02d}:"
        f"{n // 60 % 60:02d}:{n % 60:02d}.000Z",
    }  # fmt: skip


# --- the dashboard, in a child process -------------------------------------------------------
def serve(data: dict[str, Any], ready: Any) -> None:
    asyncio.run(_serve(PoliceConfig.model_validate(data), ready))


async def _serve(config: PoliceConfig, ready: Any) -> None:
    from edgeguard.police.service import PoliceService
    from edgeguard.police.web import accounts, police_app
    from edgeguard.web.server import WebServer

    service = PoliceService(config)
    users, sessions = accounts(service, config)
    if users.get(ADMIN) is None:
        users.add(ADMIN, ADMIN_PW, "admin", language="en")
    feed = asyncio.create_task(service.feed.run())  # the live feed, as in a receiver
    server = WebServer(police_app(service, config, users, sessions), config.web, "bench")
    await server.start()
    deadline = time.monotonic() + 30
    while not getattr(service.feed, "listening", True):  # PostgreSQL: LISTEN in place
        assert time.monotonic() < deadline, "the live feed does not LISTEN"
        await asyncio.sleep(0.02)
    ready.set()
    del feed
    await asyncio.Event().wait()  # until terminated


# --- the clients -----------------------------------------------------------------------------
def endpoints(sites: int, rng: random.Random) -> list[tuple[str, Any]]:
    pages = max(1, sites // 50)
    return [
        ("summary", lambda: "/api/summary"),
        ("sites page 1", lambda: "/api/sites"),
        ("sites random page", lambda: f"/api/sites?page={rng.randint(2, pages)}"),
        ("sites search", lambda: f"/api/sites?q=hosp-{rng.randint(0, sites - 1):05d}"[:-1]),
        ("sites lost", lambda: "/api/sites?state=lost"),
        ("open alarms page 1", lambda: "/api/alarms/open"),
    ]


async def login(http: aiohttp.ClientSession, url: str) -> str:
    async with http.post(
        f"{url}/login", data={"user": ADMIN, "password": ADMIN_PW},
        headers={"Origin": url}, allow_redirects=False,
    ) as answer:  # fmt: skip
        assert answer.status == 303, answer.status
        return answer.cookies["eg_session"].value


async def load(url: str, sites: int, requests: int, clients: int) -> dict[str, list[float]]:
    rng = random.Random(7)
    kinds = endpoints(sites, rng)
    samples: dict[str, list[float]] = {name: [] for name, _ in kinds}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        token = await login(http, url)
        headers = {"Cookie": f"eg_session={token}"}
        for name, path in kinds:  # warm: connections, plans
            async with http.get(url + path(), headers=headers) as answer:
                assert answer.status == 200, (name, answer.status, await answer.text())
                await answer.read()
        counter = iter(range(requests))

        async def client() -> None:
            for n in counter:
                name, path = kinds[n % len(kinds)]
                started = time.perf_counter()
                async with http.get(url + path(), headers=headers) as answer:
                    await answer.read()
                    assert answer.status == 200
                samples[name].append(time.perf_counter() - started)

        await asyncio.gather(*(client() for _ in range(clients)))
    return samples


async def first_states(url: str, times: int) -> tuple[list[float], int, int]:
    """Time to the stream's first event; its size in bytes and its number of sites."""
    samples: list[float] = []
    size = count = 0
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        token = await login(http, url)
        for _ in range(times):
            started = time.perf_counter()
            async with http.get(
                f"{url}/api/stream", headers={"Cookie": f"eg_session={token}"}
            ) as r:
                while True:
                    text = (await r.content.readline()).decode()
                    if text.startswith("data: "):
                        samples.append(time.perf_counter() - started)
                        size = len(text) - 7
                        count = text.count('"heartbeat_age_s"')
                        break
    return samples, size, count


async def deltas(url: str, store: PoliceStore, sites: int, times: int) -> list[float]:
    """A site's row changed and committed (as a receiver writes it) → its delta read from an
    open stream: the feed (NOTIFY, or SQLite's changes polled), the hub, SSE."""
    samples: list[float] = []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        token = await login(http, url)
        async with http.get(f"{url}/api/stream", headers={"Cookie": f"eg_session={token}"}) as r:
            await r.content.readline()  # retry:
            await r.content.readline()
            await r.content.readline()  # the first state
            for n in range(times):
                site = f"hosp-{(n * 37) % sites:05d}"
                state = "offline" if n % 2 else "lost"
                started = time.perf_counter()
                await asyncio.to_thread(store.update_site, site, {"state": state})
                while True:
                    text = (await r.content.readline()).decode()
                    if text.startswith("data: ") and f'"id": "{site}"' in text:
                        samples.append(time.perf_counter() - started)
                        break
    return samples


def queries_alone(store: PoliceStore, rounds: int = 200) -> dict[str, list[float]]:
    city = CityQueries(store.db)
    calls = {
        "summary (query)": city.summary,
        "sites page 1 (query)": lambda: city.sites_page(page=1),
        "open alarms page 1 (query)": lambda: city.open_alarms_page(page=1),
    }
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
    return samples


def measure(engine: str, dsn: str | None, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    data = config_data(work, port, dsn)
    config = PoliceConfig.model_validate(data)
    store = open_store(config)
    started = time.monotonic()
    open_alarms = fill(store, args.sites)
    if dsn is not None:  # as autovacuum leaves a table in service: statistics, visibility map
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    print(f"{engine}: {args.sites} sites, {open_alarms} open alarms, filled in "
          f"{time.monotonic() - started:.1f} s")  # fmt: skip
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(target=serve, args=(data, ready), daemon=True)
    child.start()
    try:
        assert ready.wait(60), "the dashboard did not start"
        url = f"http://127.0.0.1:{port}"
        samples = asyncio.run(load(url, args.sites, args.requests, args.clients))
        first, size, count = asyncio.run(first_states(url, 20))
        delta = asyncio.run(deltas(url, store, args.sites, 100))
    finally:
        child.terminate()
        child.join(10)
    alone = queries_alone(store)
    store.close()
    every = [s for values in samples.values() for s in values]
    result = {
        "engine": engine,
        "open_alarms": open_alarms,
        "api": percentiles(every),
        "endpoints": {name: percentiles(values) for name, values in samples.items()},
        "first_state": {**percentiles(first), "bytes": size, "sites": count},
        "delta": percentiles(delta),
        "queries": {name: percentiles(values) for name, values in alone.items()},
    }
    for name in samples:
        line(f"{engine} {name}", result["endpoints"][name])
    line(f"{engine} every request", result["api"])
    line(f"{engine} stream first state", result["first_state"])
    print(f"{engine} first state: {size} bytes, {count} sites of {args.sites}")
    line(f"{engine} change committed → delta", result["delta"])
    for name, stats in result["queries"].items():
        line(f"{engine} {name}", stats)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="city-dashboard-") as tmp:
        work = Path(tmp)
        with PostgresServer(work / "pg") as pg:
            pg_result = measure("postgresql", pg.dsn, work / "pg-dashboard", args)
        sqlite_result = None if args.no_sqlite else measure("sqlite", None, work / "sqlite", args)
    emit(
        {
            "bench": "city_dashboard",
            "sites": args.sites,
            "clients": args.clients,
            "requests": args.requests,
            "api_p50_ms": pg_result["api"]["p50_ms"],
            "api_p99_ms": pg_result["api"]["p99_ms"],
            "first_state_p99_ms": pg_result["first_state"]["p99_ms"],
            "first_state_bytes": pg_result["first_state"]["bytes"],
            "delta_p99_ms": pg_result["delta"]["p99_ms"],
            "postgresql": pg_result,
            "sqlite": sqlite_result,
            "machine": machine(),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
