"""The police dashboard for a city (docs/city-platform.md): thousands of sites summarised,
searched and paged, open alarms first, and the live stream as deltas.

- ``GET /api/summary``: sites by state and in alarm, open alarms by priority (CityQueries).
- ``GET /api/sites?q=&state=&page=&per_page=``: one page of sites (in alarm, then lost,
  offline, unknown, online; ``state`` one of those or ``alarm``; at most 200 a page) and the
  total.
- ``GET /api/alarms/open?page=&per_page=&site=``: one page of open alarms (not acknowledged
  first, P1 first, oldest first) and the total.
- ``GET /api/stream``: a bounded first state (the summary, the first page of sites, the first
  LIVE_ALARMS open alarms, the last warnings, the link), then one delta per change: the alarm
  row, or the one site row, as the service's feed announces them (``resync`` when the feed
  itself missed changes: the page fetches what it shows again); and ``summary`` events, the
  counts recomputed at most every SUMMARY_EVERY_S while things change, sent when they changed.

One DashboardHub per dashboard app takes the feed once, builds each delta once (in a thread:
the database is never read on the loop) and fans it out to every open stream's bounded
queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import web

from edgeguard.police.city_queries import MAX_PER_PAGE, SITE_STATES, CityQueries
from edgeguard.police.service import PoliceService
from edgeguard.web.responses import json_response
from edgeguard.web.security import context, json_error
from edgeguard.web.sse import Update, put_dropping_oldest, stream

logger = logging.getLogger(__name__)

SERVICE = web.AppKey("police_service", PoliceService)
LIVE_ALARMS = 100  # cards in the live view; the others are counted, and paged
SITES_PER_PAGE = 50  # the first state's page of sites, and the default page size
SUMMARY_EVERY_S = 1.0  # the summary is recomputed at most this often, when something changed
SUMMARY_ANYWAY_S = 10.0  # ... and this often in any case (ages, another instance's writes)
QUEUE_SIZE = 500  # per open stream: a browser that does not keep up loses its oldest updates
BATCH = 200  # changes taken from the feed at once: their deltas are built in one thread call
MAX_PAGE = 1_000_000
MAX_QUERY = 64
FILTER_STATES = (*SITE_STATES, "alarm")


def live_site(service: PoliceService, row: dict[str, Any]) -> dict[str, Any]:
    """A site row plus live supervision, as PoliceService.sites gives it."""
    age = service.tracker.heartbeat_age(row["id"])
    return {
        **row,
        "heartbeat_age_s": None if age is None else round(age, 1),
        "lost_after_s": service.config.lost_after(row["id"]),
        "supervised": service.tracker.link_up,
    }


def shown_alarms(queries: CityQueries, alarms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alarm rows as the page shows them: without the payload (its evidence list kept) and
    with their snapshots' URLs, the snapshots of all of them read at once. Blocking."""
    snapshots = queries.snapshots_of([(a["site"], a["event_id"]) for a in alarms])
    shown = []
    for alarm in alarms:
        event_id = alarm["event_id"]
        payload = alarm.get("payload") if isinstance(alarm.get("payload"), dict) else {}
        row = {k: v for k, v in alarm.items() if k != "payload"}
        row["snapshots"] = [
            {**s, "url": f"/api/snapshots/{event_id}/{s['camera']}"}
            for s in snapshots.get(event_id, [])
        ]
        row["evidence"] = (payload or {}).get("evidence") or []
        shown.append(row)
    return shown


class DashboardHub:
    """The live side of one dashboard app (see the module's text)."""

    def __init__(self, service: PoliceService) -> None:
        self.service = service
        self.queries = CityQueries(service.store.db)
        self.summary: dict[str, Any] | None = None
        self._queues: set[asyncio.Queue[Update]] = set()
        self._dirty = True
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle (the app's startup and cleanup) -------------------------------------------
    async def start(self, _app: web.Application | None = None) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._relay(), name="dashboard-relay"),
                asyncio.create_task(self._summaries(), name="dashboard-summary"),
            ]

    async def stop(self, _app: web.Application | None = None) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # --- the streams ---------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[Update]:
        queue: asyncio.Queue[Update] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Update]) -> None:
        self._queues.discard(queue)

    @property
    def streams(self) -> int:
        return len(self._queues)

    def _publish(self, update: Update) -> None:
        for queue in list(self._queues):
            put_dropping_oldest(queue, update)

    async def first_state(self) -> Update:
        """What a stream starts with: bounded, whatever the number of sites and alarms."""
        data = await asyncio.to_thread(self._first)
        data["sites"]["sites"] = [live_site(self.service, r) for r in data["sites"]["sites"]]
        data["link"] = self.service.link()
        return {"type": "state", "data": data}

    def _first(self) -> dict[str, Any]:
        store = self.service.store
        summary = self.queries.summary()
        return {
            "summary": summary,
            "sites": self.queries.sites_page(page=1, per_page=SITES_PER_PAGE),
            "alarms": shown_alarms(self.queries, store.live_alarms(LIVE_ALARMS)),
            "open_total": summary["alarms"]["open"],
            "live_max": LIVE_ALARMS,
            "warnings": store.warnings(50),
        }

    # --- the feed: one delta per change ----------------------------------------------------
    async def _relay(self) -> None:
        source = self.service.subscribe()
        try:
            while True:
                batch = [await source.get()]
                while len(batch) < BATCH and not source.empty():
                    batch.append(source.get_nowait())
                self._dirty = True
                if not self._queues:
                    continue
                try:
                    deltas = await asyncio.to_thread(self._deltas, batch)
                except Exception:
                    logger.exception("dashboard: live updates not built (%d)", len(batch))
                    continue
                for delta in deltas:
                    self._publish(delta)
        finally:
            self.service.unsubscribe(source)

    def _deltas(self, batch: list[Update]) -> list[Update]:
        """The batch's updates as the pages take them: an alarm row with its snapshots and the
        open count, a site row with in_alarm and police_open (one query each for the batch)."""
        alarms = [u["data"] for u in batch if u.get("type") == "alarm"]
        shown = iter(shown_alarms(self.queries, alarms)) if alarms else iter(())
        open_total = self.queries.open_total() if alarms else 0
        sites = [u["data"]["id"] for u in batch if u.get("type") == "site"]
        counts = self.queries.site_alarm_counts(sites)
        deltas: list[Update] = []
        for update in batch:
            kind = update.get("type")
            if kind == "alarm":
                deltas.append({**update, "data": next(shown), "open_total": open_total})
            elif kind == "site":
                n = counts.get(update["data"]["id"], 0)
                data = {**update["data"], "in_alarm": n > 0, "police_open": n}
                deltas.append({**update, "data": data})
            else:
                deltas.append(update)
        return deltas

    async def _summaries(self) -> None:
        """The counts, coalesced: at most one recomputation per SUMMARY_EVERY_S (a storm of
        thousands of changes costs one), and only while a stream is open."""
        last = 0.0
        while True:
            await asyncio.sleep(SUMMARY_EVERY_S)
            now = time.monotonic()
            if not self._queues or (not self._dirty and now - last < SUMMARY_ANYWAY_S):
                continue
            self._dirty, last = False, now
            try:
                summary = await asyncio.to_thread(self.queries.summary)
            except Exception:
                logger.exception("dashboard: summary not computed")
                self._dirty = True
                continue
            if summary != self.summary:
                self.summary = summary
                self._publish({"type": "summary", "data": summary})


HUB = web.AppKey("police_dashboard_hub", DashboardHub)


def install(app: web.Application, service: PoliceService) -> None:
    """The city routes and the live hub on the dashboard's app."""
    app[SERVICE] = service
    hub = DashboardHub(service)
    app[HUB] = hub
    app.on_startup.append(hub.start)
    app.on_cleanup.append(hub.stop)
    r = app.router
    r.add_get("/api/stream", live_stream)
    r.add_get("/api/live", live_alarms)
    r.add_get("/api/summary", summary)
    r.add_get("/api/sites", sites)
    r.add_get("/api/alarms/open", open_alarms)


def _hub(request: web.Request) -> DashboardHub:
    return request.app[HUB]


async def live_stream(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    ctx = context(request)
    token = request.cookies.get("eg_session")
    queue = hub.subscribe()  # before the first state: nothing between them is missed
    try:
        first = await hub.first_state()
        return await stream(request, queue, [first], lambda: ctx.session_alive(token))
    finally:
        hub.unsubscribe(queue)


def _live(hub: DashboardHub) -> dict[str, Any]:
    alarms = hub.service.store.live_alarms(LIVE_ALARMS)
    return {
        "alarms": shown_alarms(hub.queries, alarms),
        "open_total": hub.queries.open_total(),
        "live_max": LIVE_ALARMS,
    }


async def live_alarms(request: web.Request) -> web.Response:
    """The live view's cards again: the page refills the room a resolved card left."""
    return json_response(await asyncio.to_thread(_live, _hub(request)))


async def summary(request: web.Request) -> web.Response:
    hub = _hub(request)
    data = await asyncio.to_thread(hub.queries.summary)
    return json_response({"summary": data, "link": hub.service.link()})


def _int(request: web.Request, name: str, default: int, top: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or not 1 <= int(text) <= top:
        raise json_error(web.HTTPBadRequest, f"{name}: a whole number from 1 to {top}")
    return int(text)


def _paging(request: web.Request) -> tuple[int, int]:
    page = _int(request, "page", 1, MAX_PAGE)
    return page, _int(request, "per_page", SITES_PER_PAGE, MAX_PER_PAGE)


def _text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name) or None
    if value is not None and (len(value) > MAX_QUERY or not value.isprintable()):
        raise json_error(web.HTTPBadRequest, f"{name}: at most {MAX_QUERY} printable characters")
    return value


async def sites(request: web.Request) -> web.Response:
    hub = _hub(request)
    q = _text(request, "q")
    state = request.query.get("state") or None
    if state is not None and state not in FILTER_STATES:
        raise json_error(web.HTTPBadRequest, f"state is one of {', '.join(FILTER_STATES)}")
    page, per_page = _paging(request)
    found = await asyncio.to_thread(hub.queries.sites_page, q, state, page, per_page)
    found["sites"] = [live_site(hub.service, r) for r in found["sites"]]
    return json_response({**found, "link": hub.service.link()})


async def open_alarms(request: web.Request) -> web.Response:
    hub = _hub(request)
    site = _text(request, "site")
    page, per_page = _paging(request)

    def read() -> dict[str, Any]:
        found = hub.queries.open_alarms_page(page, per_page, site)
        return {**found, "alarms": shown_alarms(hub.queries, found["alarms"])}

    return json_response(await asyncio.to_thread(read))
