"""The shared web layer under attack, on a real aiohttp server (the consoles' own WebServer and
make_app, on a free port): concurrent password guesses, a flood of names for the login limit,
a foreign Host (DNS rebinding), control characters in logged request data, and malformed HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from edgeguard.lab.broker import free_port
from edgeguard.web.app import make_app
from edgeguard.web.config import WebConfig
from edgeguard.web.server import WebServer
from edgeguard.web.users import UserStore

ADMIN, ADMIN_PW = "wang", "correct horse battery"
TIMEOUT = aiohttp.ClientTimeout(total=120)  # bounds a wait on a busy machine; never asserted


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **config: Any) -> AsyncIterator[str]:
    """A console's shared routes (login, /api/me, users) served on 127.0.0.1; yields its URL."""
    users = UserStore(tmp_path / "users.db")
    if users.get(ADMIN) is None:
        users.add(ADMIN, ADMIN_PW, "admin", language="en")
    web_config = WebConfig(port=free_port(), **config)
    server = WebServer(make_app(web_config, users, "console", "test"), web_config, "test")
    assert await server.start()
    try:
        yield f"http://127.0.0.1:{web_config.port}"
    finally:
        await server.stop()


async def login(
    http: aiohttp.ClientSession, url: str, user: str, password: str, **headers: str
) -> int:
    async with http.post(
        f"{url}/login",
        data={"user": user, "password": password},
        headers={"Origin": url, **headers},
        allow_redirects=False,
    ) as answer:
        await answer.read()
        return answer.status


# --- 1. the lockout holds against concurrent guesses ------------------------------------------
def test_concurrent_wrong_guesses_cannot_outrun_the_lockout(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[int], int]:
        async with serving(tmp_path) as url, aiohttp.ClientSession(timeout=TIMEOUT) as http:
            guesses = [login(http, url, ADMIN, f"wrong guess {n}") for n in range(40)]
            statuses = await asyncio.gather(*guesses)
            right = await login(http, url, ADMIN, ADMIN_PW)
        return list(statuses), right

    statuses, right = asyncio.run(scenario())
    assert statuses.count(401) == 5  # login_attempts: only that many were checked at all
    assert statuses.count(429) == 35
    assert right == 429  # locked: the right password does not get in either
