"""Responses both consoles send: JSON (Chinese as is, times and paths as text) and CSV
streamed in pieces (UTF-8 with a byte-order mark, for Excel)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from edgeguard.ledger_csv import csv_chunks


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def json_response(data: Any) -> web.Response:
    return web.json_response(data, dumps=dumps)


def csv_stream(name: str) -> web.StreamResponse:
    """A CSV download response, not yet prepared: write pieces to it."""
    return web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
        }
    )


async def csv_response(
    request: web.Request, rows: list[dict[str, Any]], columns: list[str], name: str
) -> web.StreamResponse:
    response = csv_stream(name)
    await response.prepare(request)
    for chunk in csv_chunks(rows, columns):
        await response.write(chunk.encode("utf-8"))
    await response.write_eof()
    return response
