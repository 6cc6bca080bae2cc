"""The control-room console's own routes, on top of the shared web application
(edgeguard/web/app.py: login, users, static files)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from edgeguard import __version__
from edgeguard.console.backend import ConsoleBackend, ConsoleError
from edgeguard.console.views import FilterError, HistoryFilter
from edgeguard.ledger_csv import EVENT_COLUMNS, csv_chunks
from edgeguard.web.app import make_app
from edgeguard.web.config import WebConfig
from edgeguard.web.responses import csv_response, csv_stream, json_response
from edgeguard.web.security import context, current_user, json_error
from edgeguard.web.sse import stream
from edgeguard.web.users import UserStore

logger = logging.getLogger(__name__)

BACKEND = web.AppKey("console_backend", ConsoleBackend)
EVENT_ID = r"{event_id:[0-9a-f-]{36}}"
ALARM_COLUMNS = [
    "event_id", "occurred_at", "recorded_at", "kind", "priority", "source", "location_key",
    "state", "delivered_at", "received_at", "acknowledged_at", "acknowledged_by", "dispatched_at",
    "dispatched_by", "resolved_at", "resolved_by", "restored_at", "reset_at", "reset_by",
]  # fmt: skip
MEDIA_TYPES = {"snapshot": "image/jpeg", "clip": "video/mp4"}


def console_app(backend: ConsoleBackend, config: WebConfig, users: UserStore) -> web.Application:
    app = make_app(config, users, "console", __version__)
    app[BACKEND] = backend
    r = app.router
    r.add_get("/api/stream", live_stream)
    r.add_get("/api/alarms", history)
    r.add_get("/api/alarms.csv", history_csv)
    r.add_get("/api/ledger.csv", ledger_csv)
    r.add_get(f"/api/alarms/{EVENT_ID}", alarm_detail)
    r.add_post(f"/api/alarms/{EVENT_ID}/reset", reset_alarm)
    r.add_post(f"/api/alarms/{EVENT_ID}/ack-local", ack_alarm_locally)
    r.add_get(f"/api/evidence/{EVENT_ID}/{{camera:[A-Za-z0-9_.-]{{1,64}}}}/{{kind:snapshot|clip}}",
              evidence_file)  # fmt: skip
    r.add_get("/api/health", health)
    return app


def _backend(request: web.Request) -> ConsoleBackend:
    return request.app[BACKEND]


async def live_stream(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    ctx = context(request)
    token = request.cookies.get("eg_session")
    queue = backend.hub.subscribe()
    try:
        alarms = await backend.open_alarms()
        first = [{"type": "state", "data": {"alarms": alarms}}]
        return await stream(
            request, queue, first, lambda: ctx.sessions.get(token, touch=False) is not None
        )
    finally:
        backend.hub.unsubscribe(queue)


def _filter(request: web.Request) -> HistoryFilter:
    try:
        return HistoryFilter.parse(dict(request.query))
    except FilterError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from exc


async def history(request: web.Request) -> web.Response:
    return json_response({"alarms": await _backend(request).history(_filter(request))})


async def history_csv(request: web.Request) -> web.StreamResponse:
    query = _filter(request)
    rows = await _backend(request).history(query)
    return await csv_response(request, rows, ALARM_COLUMNS, "edgeguard-alarms.csv")


async def ledger_csv(request: web.Request) -> web.StreamResponse:
    query = _filter(request)
    response = csv_stream("edgeguard-ledger.csv")
    await response.prepare(request)
    count, header = 0, True
    async for rows in _backend(request).ledger_pages(query.since, query.until):
        for chunk in csv_chunks(rows, EVENT_COLUMNS, header=header):
            await response.write(chunk.encode("utf-8"))
        count, header = count + len(rows), False
    if header:  # no rows: the header alone
        await response.write("".join(csv_chunks([], EVENT_COLUMNS)).encode("utf-8"))
    await response.write_eof()
    logger.info("console: %s exported the ledger (%d rows)", current_user(request).name, count)
    return response


async def alarm_detail(request: web.Request) -> web.Response:
    found = await _backend(request).alarm(request.match_info["event_id"])
    if found is None:
        raise json_error(web.HTTPNotFound, "no such alarm")
    return json_response({"alarm": found})


async def reset_alarm(request: web.Request) -> web.Response:
    user = current_user(request)
    event_id = request.match_info["event_id"]
    try:
        view = await _backend(request).reset(event_id, user.recorded_name)
    except ConsoleError as exc:
        raise json_error(web.HTTPConflict, str(exc)) from exc
    logger.info("console: alarm %s reset by %s", event_id, user.name)
    return json_response({"alarm": view})


async def ack_alarm_locally(request: web.Request) -> web.Response:
    user = current_user(request)
    try:
        view = await _backend(request).local_ack(request.match_info["event_id"], user.recorded_name)
    except ConsoleError as exc:
        raise json_error(web.HTTPNotFound, str(exc)) from exc
    return json_response({"alarm": view})


async def evidence_file(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    info = request.match_info
    row = await backend.evidence_file(info["event_id"], info["camera"], info["kind"])
    if row is None or not row.get("path"):
        raise json_error(web.HTTPNotFound, "no such evidence")
    root = backend.daemon.config.store.evidence_path()
    path = await asyncio.to_thread(_evidence_path, root, str(row["path"]))
    if path is None:
        raise json_error(web.HTTPNotFound, "the evidence file is gone (pruned or moved)")
    return web.FileResponse(path, headers={"Content-Type": MEDIA_TYPES[info["kind"]]})


def _evidence_path(root: Path, recorded: str) -> Path | None:
    """The recorded file if it is a file inside the evidence folder, else None."""
    path = Path(recorded).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        logger.warning("console: evidence %s is not a file under %s", path, root)
        return None
    return path


async def health(request: web.Request) -> web.Response:
    return json_response(await _backend(request).health())
