"""The police dashboard, served by `edgeguard police` on the receiver's own loop: every
hospital's state, open alarms in priority order with their snapshots, acknowledge / dispatch /
resolve (published to the site's ack topic, see PoliceService.act), history with CSV export,
and the security warnings; the summary, the pages of sites and of open alarms and the live
stream are edgeguard/police/web_city.py's. Login, sessions, CSRF and users come from
edgeguard/web (in the police database when it is PostgreSQL). The database is read in
threads, never on the loop."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from edgeguard import __version__
from edgeguard.console.views import FilterError, HistoryFilter
from edgeguard.police.config import PoliceConfig
from edgeguard.police.service import ActionError, PoliceService
from edgeguard.police.web_city import HUB, LIVE_ALARMS, SERVICE, install, shown_alarms
from edgeguard.web.app import make_app
from edgeguard.web.responses import csv_stream, json_response
from edgeguard.web.security import current_user, json_error
from edgeguard.web.server import WebServer
from edgeguard.web.sessions import DbSessionStore, Sessions
from edgeguard.web.users import UserStore

logger = logging.getLogger(__name__)

EVENT_ID = r"{event_id:[0-9a-f-]{36}}"
ACTIONS: dict[str, Literal["acknowledged", "dispatched", "resolved"]] = {
    "ack": "acknowledged",
    "dispatch": "dispatched",
    "resolve": "resolved",
}
__all__ = ["LIVE_ALARMS", "SERVICE", "accounts", "police_app", "start_dashboard"]


def police_app(
    service: PoliceService,
    config: PoliceConfig,
    users: UserStore,
    sessions: Sessions | None = None,
) -> web.Application:
    app = make_app(config.web, users, "police", __version__, sessions)
    install(app, service)  # the live stream, the summary, the pages of sites and open alarms
    r = app.router
    r.add_get("/api/alarms", history)
    r.add_get("/api/alarms.csv", history_csv)
    r.add_get(f"/api/alarms/{EVENT_ID}", alarm_detail)
    r.add_post(f"/api/alarms/{EVENT_ID}/{{action:ack|dispatch|resolve}}", act)
    r.add_get(f"/api/snapshots/{EVENT_ID}/{{camera:[A-Za-z0-9_.-]{{1,64}}}}", snapshot)
    r.add_get("/api/warnings", warnings)
    return app


def _service(request: web.Request) -> PoliceService:
    return request.app[SERVICE]


POLICE_STATES = ("new", *ACTIONS.values())


@dataclass(frozen=True)
class PoliceFilter:
    common: HistoryFilter  # time, kind, paging
    site: str | None
    state: str | None  # the police state


def _filter(request: web.Request) -> PoliceFilter:
    own = ("site", "state")
    try:
        common = HistoryFilter.parse({k: v for k, v in request.query.items() if k not in own})
    except FilterError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from exc
    site = request.query.get("site") or None
    if site is not None and (len(site) > 64 or not site.isprintable()):
        raise json_error(web.HTTPBadRequest, "site: a site id")
    state = request.query.get("state") or None
    if state is not None and state not in POLICE_STATES:
        raise json_error(web.HTTPBadRequest, f"state is one of {', '.join(POLICE_STATES)}")
    return PoliceFilter(common, site, state)


def _history(service: PoliceService, query: PoliceFilter) -> list[dict[str, Any]]:
    c = query.common
    return service.store.history(
        c.since, c.until, query.site, c.kind, query.state, c.limit, c.offset
    )


async def history(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(_history, _service(request), _filter(request))
    return json_response({"alarms": [{k: v for k, v in r.items() if k != "payload"} for r in rows]})


async def history_csv(request: web.Request) -> web.StreamResponse:
    """The store's own export (paged, spreadsheet-safe, BOM first) with the page's filters;
    each page of rows is read in a thread."""
    query = _filter(request)
    c = query.common
    lines = _service(request).store.export_csv(c.since, c.until, query.site, c.kind, query.state)
    response = csv_stream("police-alarms.csv")
    await response.prepare(request)
    while (line := await asyncio.to_thread(next, lines, None)) is not None:
        await response.write(line.encode("utf-8"))
    await response.write_eof()
    return response


async def alarm_detail(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(_service(request).store.alarm, request.match_info["event_id"])
    if found is None:
        raise json_error(web.HTTPNotFound, "no such alarm")
    return json_response({"alarm": found})


async def act(request: web.Request) -> web.Response:
    user = current_user(request)
    service = _service(request)
    event_id = request.match_info["event_id"]
    state = ACTIONS[request.match_info["action"]]
    try:
        row = await service.act(event_id, state, user.recorded_name)
    except ActionError as exc:
        raise json_error(web.HTTPConflict, str(exc)) from exc
    queries = request.app[HUB].queries
    (shown,) = await asyncio.to_thread(shown_alarms, queries, [row])
    return json_response({"alarm": shown})


async def snapshot(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    event_id, camera = request.match_info["event_id"], request.match_info["camera"]
    root = service.config.snapshots_path()
    checked = await asyncio.to_thread(_snapshot_file, service, root, event_id, camera)
    if checked is None:
        raise json_error(web.HTTPNotFound, "no such snapshot")
    return web.FileResponse(checked, headers={"Content-Type": "image/jpeg"})


def _snapshot_file(service: PoliceService, root: Path, event_id: str, camera: str) -> Path | None:
    alarm = service.store.alarm_row(event_id)
    path = service.store.snapshot_path(alarm["site"], event_id, camera) if alarm else None
    return None if path is None else _inside(root, path)


def _inside(root: Path, path: Path) -> Path | None:
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
        logger.warning("dashboard: snapshot %s is not a file under %s", path, root)
        return None
    return resolved


async def warnings(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(_service(request).store.warnings, 200)
    return json_response({"warnings": rows})


class Dashboard:
    def __init__(self, server: WebServer) -> None:
        self.server = server

    async def stop(self) -> None:
        await self.server.stop()


def accounts(service: PoliceService, config: PoliceConfig) -> tuple[UserStore, Sessions | None]:
    """The dashboard's users and sessions: in the police database when it is PostgreSQL
    (shared by every dashboard instance, kept across restarts), else users.db and this
    process's memory (a single station). Blocking: call it in a thread."""
    db = service.store.db
    if db.dialect != "postgresql":
        return UserStore(config.web.users_path(config.database)), None
    web_config = config.web
    sessions = DbSessionStore(
        db, web_config.session_idle_minutes * 60, web_config.session_max_hours * 3600
    )
    return UserStore(db), sessions


async def start_dashboard(service: PoliceService, config: PoliceConfig) -> Dashboard:
    users, sessions = await asyncio.to_thread(accounts, service, config)
    server = WebServer(police_app(service, config, users, sessions), config.web, "police")
    await server.start()
    return Dashboard(server)
