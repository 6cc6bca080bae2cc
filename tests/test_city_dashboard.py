"""The police dashboard for a city, over HTTP, with 2,100 hospitals in the store, on SQLite and
on a REAL PostgreSQL (edgeguard/lab/postgres.py): the summary, pages of hospitals (those in
alarm first, then lost, offline, unknown, online; searched by id or name; filtered), pages of
open alarms (not acknowledged first, P1 first), the live stream's bounded first state, and one
delta per change with the summary coalesced (not one per change).

The PoliceService is not started (no broker): the store is filled directly, and only its live
feed runs (SQLite's changes table polled; PostgreSQL's LISTEN/NOTIFY), as in a receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_police_users_pg import Browser, police_config

from edgeguard.police.city_queries import CityQueries
from edgeguard.police.config import PoliceConfig
from edgeguard.police.service import PoliceService
from edgeguard.police.store import PoliceStore
from edgeguard.police.web import accounts, police_app
from edgeguard.police.web_city import SITES_PER_PAGE
from edgeguard.web.server import WebServer

SITES = 2100
ADMIN, ADMIN_PW = "zhang", "police desk pw"
TIMEOUT = aiohttp.ClientTimeout(total=120)
RANK = {"lost": 0, "offline": 1, "unknown": 2, "online": 3}
SPECIAL = {7: "东城区妇幼保健院", 1234: "Hospital_of%Tests"}


def site_id(i: int) -> str:
    return f"hosp-{i:04d}"


def site_state(i: int) -> str:
    return {0: "lost", 1: "offline", 2: "unknown"}.get(i % 20, "online")


def site_name(i: int) -> str:
    return SPECIAL.get(i, f"第{i:04d}人民医院")


def event_id(n: int) -> str:
    return f"01a20614-{n:04d}-70e4-b533-6874e06fb7a0"


def alarm_payload(n: int, site: str, priority: int) -> dict[str, Any]:
    return {
        "v": 1, "type": "alarm", "message": "new", "event_id": event_id(n), "site": site,
        "site_name": site_name(int(site[5:])), "seq": 1, "kind": "panic", "state": "active",
        "priority": priority, "source": "er-button", "location": {"id": "er", "label": "急诊"},
        "occurred_at": f"2026-11-23T01:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
    }  # fmt: skip


# What the store holds: open alarms at sites i % 70 == 3 (new, P1 when i % 140 == 3, else
# P2), at lost sites i % 140 == 20 (acknowledged, P1), a second one at hosp-0003 (P3, new),
# and resolved ones at i % 100 == 50 (counted nowhere).
def alarms_planned() -> list[tuple[int, str, int, str]]:
    planned: list[tuple[int, str, int, str]] = []
    for i in range(SITES):
        if i % 70 == 3:
            planned.append((len(planned), site_id(i), 1 if i % 140 == 3 else 2, "new"))
        if i % 140 == 20:
            planned.append((len(planned), site_id(i), 1, "acknowledged"))
        if i % 100 == 50:
            planned.append((len(planned), site_id(i), 1, "resolved"))
    planned.append((len(planned), site_id(3), 3, "new"))
    return planned


def fill(store: PoliceStore) -> None:
    store.update_sites(
        [(site_id(i), {"name": site_name(i), "state": site_state(i)}, False) for i in range(SITES)]
    )
    planned = alarms_planned()
    store.record_alarms([(site, alarm_payload(n, site, p), None) for n, site, p, _ in planned])
    for n, _site, _p, state in planned:
        if state != "new":
            store.record_action(event_id(n), state, "110 王", ok=True)


def in_alarm_ids() -> set[str]:
    return {site for _n, site, _p, state in alarms_planned() if state != "resolved"}


def expected_order(ids: list[int] | None = None) -> list[str]:
    alarmed = in_alarm_ids()
    chosen = range(SITES) if ids is None else ids
    return [
        site_id(i)
        for i in sorted(
            chosen, key=lambda i: (site_id(i) not in alarmed, RANK[site_state(i)], site_id(i))
        )
    ]


# --- the dashboard on either engine ----------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> PoliceConfig:
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgresql" else None
    return police_config(tmp_path, dsn)


@contextlib.asynccontextmanager
async def dashboard(config: PoliceConfig) -> AsyncIterator[tuple[PoliceService, str]]:
    service = await asyncio.to_thread(PoliceService, config)
    await asyncio.to_thread(fill, service.store)
    service.feed.last_id = service.store.last_change_id()  # the filling is not news
    users, sessions = await asyncio.to_thread(accounts, service, config)
    if users.get(ADMIN) is None:
        await asyncio.to_thread(users.add, ADMIN, ADMIN_PW, "admin", language="zh")
    feed = asyncio.create_task(service.feed.run())
    app = police_app(service, config, users, sessions)
    server = WebServer(app, config.web, "police")
    assert await server.start()
    try:
        await listening(service)
        yield service, f"http://127.0.0.1:{config.web.port}"
    finally:
        await server.stop()
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
        await asyncio.to_thread(service.close)


async def listening(service: PoliceService) -> None:
    """The feed hears the store's changes (PostgreSQL: its LISTEN is in place)."""
    deadline = time.monotonic() + 10
    while not getattr(service.feed, "listening", True):
        assert time.monotonic() < deadline, "the feed does not LISTEN"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def logged_in(config: PoliceConfig) -> AsyncIterator[tuple[PoliceService, str, Browser]]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http, dashboard(config) as (service, url):
        desk = Browser(http)
        assert await desk.login(url, ADMIN, ADMIN_PW) == 303
        yield service, url, desk


def run(scenario: Any) -> None:
    asyncio.run(scenario)


# --- the summary and the pages ---------------------------------------------------------------
def test_the_summary_counts_sites_by_state_and_in_alarm(config: PoliceConfig) -> None:
    async def scenario() -> None:
        async with logged_in(config) as (_service, url, desk):
            status, body = await desk.get(url, "/api/summary")
            assert status == 200
            sites, alarms = body["summary"]["sites"], body["summary"]["alarms"]
            assert sites == {
                "total": SITES, "lost": 105, "offline": 105, "unknown": 105, "online": 1785,
                "other": 0, "in_alarm": len(in_alarm_ids()),
            }  # fmt: skip
            planned = [a for a in alarms_planned() if a[3] != "resolved"]
            assert alarms["open"] == len(planned)
            assert alarms["new"] == sum(1 for a in planned if a[3] == "new")
            assert alarms["by_priority"] == {
                str(p): sum(1 for a in planned if a[2] == p) for p in (1, 2, 3)
            }

    run(scenario())


def test_every_site_once_in_order_alarm_and_lost_first(config: PoliceConfig) -> None:
    async def scenario() -> None:
        async with logged_in(config) as (_service, url, desk):
            seen: list[str] = []
            for page in range(1, 12):
                status, body = await desk.get(url, f"/api/sites?page={page}&per_page=200")
                assert status == 200
                assert body["total"] == SITES
                assert len(body["sites"]) == (200 if page < 11 else SITES - 2000)
                seen += [s["id"] for s in body["sites"]]
            assert seen == expected_order()
            status, first = await desk.get(url, "/api/sites")
            assert (first["page"], first["per_page"]) == (1, SITES_PER_PAGE)
            top = first["sites"][0]
            assert (top["id"], top["in_alarm"], top["police_open"]) == (site_id(20), True, 1)
            assert top["lost_after_s"] == 15.0
            assert "heartbeat_age_s" in top
            assert top["devices"] == []
            three = next(s for s in first["sites"] if s["id"] == site_id(3))
            assert three["police_open"] == 2
            assert not any(s["in_alarm"] for s in first["sites"][len(in_alarm_ids()) :])
            status, beyond = await desk.get(url, "/api/sites?page=12&per_page=200")
            assert (status, beyond["sites"], beyond["total"]) == (200, [], SITES)
            for bad in ("per_page=201", "per_page=0", "page=0", "page=x", "state=gone"):
                assert (await desk.get(url, f"/api/sites?{bad}"))[0] == 400, bad
            assert (await desk.get(url, "/api/sites?q=" + "x" * 65))[0] == 400

    run(scenario())


def test_search_by_id_or_name_and_filter_by_state(config: PoliceConfig) -> None:
    async def scenario() -> None:
        async with logged_in(config) as (_service, url, desk):

            async def ids(query: str) -> tuple[list[str], int]:
                status, body = await desk.get(url, f"/api/sites?{query}")
                assert status == 200, body
                return [s["id"] for s in body["sites"]], body["total"]

            assert await ids("q=HOSP-0042") == ([site_id(42)], 1)  # any case
            assert await ids("q=妇幼") == ([site_id(7)], 1)
            assert await ids("q=%25") == ([site_id(1234)], 1)  # % is a character, not a wildcard
            assert await ids("q=_of") == ([site_id(1234)], 1)
            assert await ids("q=hosp-00") == (expected_order(list(range(100)))[:50], 100)
            assert await ids("q=nothing-like-this") == ([], 0)
            lost = [i for i in range(SITES) if site_state(i) == "lost"]
            assert await ids("state=lost&per_page=200") == (expected_order(lost), 105)
            found, total = await ids("state=alarm&per_page=200")
            assert (set(found), total) == (in_alarm_ids(), len(in_alarm_ids()))
            assert found == expected_order([int(s[5:]) for s in in_alarm_ids()])
            online_10 = [i for i in range(1000, 1100) if site_state(i) == "online"]
            assert await ids("q=hosp-10&state=online&per_page=200") == (
                expected_order(online_10),
                len(online_10),
            )

    run(scenario())


def test_open_alarms_paged_new_first_then_p1_first(config: PoliceConfig) -> None:
    planned = [a for a in alarms_planned() if a[3] != "resolved"]
    order = sorted(planned, key=lambda a: (a[3] != "new", a[2], event_id(a[0])))

    async def scenario() -> None:
        async with logged_in(config) as (_service, url, desk):
            seen: list[str] = []
            for page in (1, 2, 3):
                status, body = await desk.get(url, f"/api/alarms/open?page={page}&per_page=20")
                assert status == 200
                assert (body["total"], body["new"]) == (len(planned), 31)
                seen += [a["event_id"] for a in body["alarms"]]
                assert all("payload" not in a and "snapshots" in a for a in body["alarms"])
            assert seen == [event_id(a[0]) for a in order]
            status, one = await desk.get(url, f"/api/alarms/open?site={site_id(3)}")
            assert [a["priority"] for a in one["alarms"]] == [1, 3]
            assert (await desk.get(url, "/api/alarms/open?per_page=500"))[0] == 400

    run(scenario())


# --- the live stream -------------------------------------------------------------------------
async def events(
    response: aiohttp.ClientResponse, seconds: float, stop: int | None = None
) -> list[tuple[str, dict[str, Any], int]]:
    """The stream's events for ``seconds`` (or until ``stop`` of them): (type, body, bytes)."""
    found: list[tuple[str, dict[str, Any], int]] = []
    deadline = time.monotonic() + seconds
    kind, data = "", ""
    with contextlib.suppress(TimeoutError):
        while stop is None or len(found) < stop:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            line = (await asyncio.wait_for(response.content.readline(), left)).decode()
            if line.startswith("event: "):
                kind = line[7:].strip()
            elif line.startswith("data: "):
                data = line[6:].strip()
            elif line == "\n" and data:
                found.append((kind, json.loads(data), len(data.encode())))
                kind, data = "", ""
    return found


@contextlib.asynccontextmanager
async def stream(desk: Browser, url: str) -> AsyncIterator[aiohttp.ClientResponse]:
    async with desk.http.get(
        f"{url}/api/stream", headers={"Cookie": f"eg_session={desk.token}"}
    ) as response:
        assert response.status == 200
        yield response


def test_first_state_is_bounded_and_each_change_is_one_delta(config: PoliceConfig) -> None:
    async def scenario() -> None:
        async with logged_in(config) as (service, url, desk), stream(desk, url) as live:
            ((kind, first, size),) = await events(live, 10, stop=1)
            assert kind == "state"
            state = first["data"]
            assert state["sites"]["total"] == SITES
            assert len(state["sites"]["sites"]) == SITES_PER_PAGE  # not all 2,100
            assert state["sites"]["sites"][0]["id"] == site_id(20)
            assert len(state["alarms"]) <= state["live_max"] == 100
            assert state["summary"]["sites"]["total"] == SITES
            assert size < 100_000, size
            await events(live, 1.5)  # the hub's first summary, if any

            # one site lost: one site delta (its row), then one summary with the new counts
            store = service.store
            await asyncio.to_thread(store.update_site, site_id(5), {"state": "lost"})
            got = await events(live, 2.5)
            assert [k for k, *_ in got] == ["site", "summary"], got
            site = got[0][1]["data"]
            assert (site["id"], site["state"], site["in_alarm"]) == (site_id(5), "lost", False)
            assert got[1][1]["data"]["sites"]["lost"] == 106

            # 300 changes at once: 300 site deltas, each one row, and the summary coalesced
            changed = [site_id(i) for i in range(100, 400)]
            updates = [(s, {"state": "offline"}, True) for s in changed]
            await asyncio.to_thread(store.update_sites, updates)
            got = await events(live, 3)
            deltas = [body["data"] for k, body, _ in got if k == "site"]
            assert [d["id"] for d in deltas] == changed
            summaries = [body["data"] for k, body, _ in got if k == "summary"]
            assert 1 <= len(summaries) <= 2, len(summaries)
            assert summaries[-1]["sites"]["offline"] > 105
            assert max(size for _k, _b, size in got) < 5_000

            # a new alarm: one alarm delta with its snapshots and the open count
            payload = alarm_payload(9000, site_id(100), 1)
            await asyncio.to_thread(store.record_alarm, site_id(100), payload)
            got = await events(live, 2.5)
            alarms = [body for k, body, _ in got if k == "alarm"]
            assert [a["data"]["event_id"] for a in alarms] == [event_id(9000)]
            open_count = sum(1 for a in alarms_planned() if a[3] != "resolved") + 1
            assert alarms[0]["open_total"] == open_count
            assert alarms[0]["data"]["snapshots"] == []
            assert "payload" not in alarms[0]["data"]
            summary = [body["data"] for k, body, _ in got if k == "summary"]
            assert summary[-1]["sites"]["in_alarm"] == len(in_alarm_ids()) + 1
            assert len(service.feed.queues) == 1  # the hub took the feed once for every stream

    run(scenario())


def test_two_streams_share_one_feed_subscription(config: PoliceConfig) -> None:
    async def scenario() -> None:
        async with (
            logged_in(config) as (service, url, desk),
            stream(desk, url) as one,
            stream(desk, url) as two,
        ):
            for live in (one, two):
                assert [k for k, *_ in await events(live, 10, stop=1)] == ["state"]
            assert len(service.feed.queues) == 1
            await asyncio.to_thread(service.store.update_site, site_id(9), {"state": "lost"})
            for live in (one, two):
                got = await events(live, 2.5)
                assert [b["data"]["id"] for k, b, _ in got if k == "site"] == [site_id(9)]

    run(scenario())


# --- the queries use the indexes -------------------------------------------------------------
@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[PoliceStore]:
    store = PoliceStore(tmp_path / "police.db")
    fill(store)
    yield store
    store.close()


def plan(store: PoliceStore, sql: str, params: tuple[Any, ...] = ()) -> str:
    rows = store.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(str(r["detail"]) for r in rows)


def test_sqlite_plans_use_the_indexes(sqlite_store: PoliceStore) -> None:
    """On SQLite the plans are deterministic: the summary's counts come from covering indexes,
    the sites in alarm and the open alarms' pages from alarms_open, the "not in alarm" test
    from alarms_site. (PostgreSQL picks by statistics; the same SQL runs there.)"""
    open_in = "police_state IN ('new', 'acknowledged', 'dispatched')"
    counts = plan(sqlite_store, "SELECT state, COUNT(*) AS n FROM sites GROUP BY state")
    assert "COVERING INDEX sites_state" in counts
    by_priority = plan(
        sqlite_store,
        f"SELECT police_state, priority, COUNT(*) FROM alarms WHERE {open_in} "
        "GROUP BY police_state, priority",
    )
    assert "INDEX alarms_open" in by_priority
    page = plan(
        sqlite_store,
        "SELECT * FROM sites WHERE state = 'online' AND NOT EXISTS (SELECT 1 FROM alarms a "
        f"WHERE a.site = sites.id AND a.{open_in}) ORDER BY id LIMIT 50 OFFSET 0",
    )
    assert "SEARCH sites USING INDEX sites_state" in page
    assert "INDEX alarms_site" in page
    new_page = plan(
        sqlite_store,
        "SELECT * FROM alarms WHERE police_state = 'new' ORDER BY priority, raised_at, "
        "event_id LIMIT 50",
    )
    assert "INDEX alarms_open" in new_page
    snapshots = plan(
        sqlite_store,
        "SELECT * FROM snapshots WHERE (site = 'a' AND event_id = 'b') OR "
        "(site = 'c' AND event_id = 'd')",
    )
    assert "SCAN" not in snapshots
    assert CityQueries(sqlite_store.db).summary()["sites"]["total"] == SITES
