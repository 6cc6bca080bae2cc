"""The shared web layer under attack, on a real aiohttp server (the consoles' own WebServer and
make_app, on a free port): concurrent password guesses, a flood of names for the login limit,
a foreign Host (DNS rebinding), control characters in logged request data, and malformed HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edgeguard.lab.broker import free_port
from edgeguard.safe_text import preview
from edgeguard.web.app import make_app
from edgeguard.web.config import WebConfig
from edgeguard.web.server import WebServer
from edgeguard.web.sessions import MAX_TRACKED_FAILURES, LoginLimiter
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


# --- 2. a flood of names does not make the limiter forget its lockouts -------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_names_keeps_the_lockouts_and_bounds_memory() -> None:
    limiter = LoginLimiter(attempts=3, window_s=300)
    for _ in range(3):
        assert limiter.attempt("user:wang")
    assert limiter.blocked("user:wang")
    for n in range(MAX_TRACKED_FAILURES + 1):
        assert limiter.attempt(f"user:flood{n}")
    assert limiter.blocked("user:wang")  # the lockout stays
    assert not limiter.attempt("user:wang")
    assert limiter.tracked <= MAX_TRACKED_FAILURES


def test_aged_out_keys_go_first_then_unlocked_ones_and_lockouts_never() -> None:
    clock = Clock()
    limiter = LoginLimiter(attempts=2, window_s=60, clock=clock, max_keys=3)
    assert limiter.attempt("addr:old")
    clock.now += 30
    assert limiter.attempt("user:wang")
    assert limiter.attempt("user:wang")  # locked out
    assert limiter.attempt("user:li")
    clock.now += 31  # addr:old aged out, the others not
    assert limiter.attempt("user:zhao")
    assert limiter.tracked == 3
    assert limiter.blocked("user:wang")
    assert limiter.attempt("user:zhao")  # now locked out too
    assert limiter.attempt("user:new")  # room made by forgetting user:li (not locked out)
    assert limiter.blocked("user:wang")
    assert limiter.blocked("user:zhao")
    assert limiter.attempt("user:new")  # three lockouts: the table is full of them
    assert not limiter.attempt("user:another")  # refused rather than forget one
    assert not limiter.attempt("user:li", "addr:10.0.0.5")
    assert all(limiter.blocked(k) for k in ("user:wang", "user:zhao", "user:new"))
    clock.now += 61
    assert limiter.attempt("user:another")  # the lockouts aged out: room again


# --- 3. a foreign Host is refused: DNS rebinding ----------------------------------------------
async def get_status(http: aiohttp.ClientSession, url: str, path: str, **headers: str) -> int:
    async with http.get(f"{url}{path}", headers=headers, allow_redirects=False) as answer:
        await answer.read()
        return answer.status


def test_a_foreign_host_is_refused_with_its_origin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A page on rebind.example whose name now resolves to the console: the browser sends
    Host and Origin of rebind.example, which match each other but are not the console's."""
    extra = "console.hospital.example"

    async def scenario() -> dict[str, int]:
        async with (
            serving(tmp_path, allowed_hosts=[extra]) as url,
            aiohttp.ClientSession(timeout=TIMEOUT) as http,
        ):
            port = url.rsplit(":", 1)[1]

            async def as_host(host: str) -> int:
                return await login(http, url, ADMIN, ADMIN_PW, Host=host, Origin=f"http://{host}")

            return {
                "rebind": await as_host(f"rebind.example:{port}"),
                "rebind page": await get_status(http, url, "/login", Host="rebind.example"),
                "rebind static": await get_status(http, url, "/static/app.css", Host="a.example"),
                "127.0.0.1": await as_host(f"127.0.0.1:{port}"),
                "localhost": await as_host(f"LOCALHOST:{port}"),
                "::1": await as_host(f"[::1]:{port}"),
                "hostname": await as_host(f"{socket.gethostname()}:{port}"),
                "configured": await as_host(f"{extra}:{port}"),
                "LAN address": await as_host(f"10.20.0.5:{port}"),
            }

    with caplog.at_level(logging.WARNING, logger="edgeguard.web"):
        statuses = asyncio.run(scenario())
    assert statuses["rebind"] == 421
    assert statuses["rebind page"] == 421
    assert statuses["rebind static"] == 421
    refusals = [r for r in caplog.records if "Host" in r.getMessage()]
    assert len(refusals) == 3
    assert all(r.levelno == logging.WARNING for r in refusals)
    assert "rebind.example" in refusals[0].getMessage()
    for own in ("127.0.0.1", "localhost", "::1", "hostname", "configured", "LAN address"):
        assert statuses[own] == 303, own  # logged in


def test_allowed_hosts_are_host_names() -> None:
    assert WebConfig(allowed_hosts=["console.hospital.example"]).allowed_hosts
    for bad in ("http://console.example", "console.example:8080", "", "a b"):
        with pytest.raises(ValueError, match="allowed_hosts"):
            WebConfig(allowed_hosts=[bad])


# --- 4. what the web layer logs from outside is shown safely -----------------------------------
def _has_control(text: str) -> bool:
    return any(not ch.isprintable() for ch in text)


def test_logged_paths_names_and_hosts_carry_no_control_characters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> list[int]:
        async with serving(tmp_path) as url, aiohttp.ClientSession(timeout=TIMEOUT) as http:
            evil = {"Origin": "http://evil.example"}
            async with http.post(f"{url}/%00", headers=evil) as nul:
                pass
            async with http.post(f"{url}/%1B[31mred%1B[0m", headers=evil) as ansi:
                pass
            rebound = await get_status(http, url, "/%1B[2J%0A", Host="rebind.example")
            failed = await login(http, url, "wang\x1b[31m\x00\u202e", "wrong password")
            return [nul.status, ansi.status, rebound, failed]

    with caplog.at_level(logging.WARNING, logger="edgeguard.web"):
        statuses = asyncio.run(scenario())
    assert statuses == [403, 403, 421, 401]
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("edgeguard.web")]
    assert len(messages) == 4, messages
    assert not [m for m in messages if _has_control(m)]
    assert "/\\x00" in messages[0]
    assert "/\\x1b[31mred\\x1b[0m" in messages[1]
    assert "/\\x1b[2J\\n" in messages[2]
    assert "wang\\x1b[31m\\x00\\u202e" in messages[3]


def test_preview_escapes_and_truncates() -> None:
    assert preview("急诊 room 1") == "急诊 room 1"  # printable text as it is
    assert preview("a\x00b\x1b[0m\n\t\\") == "a\\x00b\\x1b[0m\\n\\t\\\\"
    assert preview("\u200b\u2028\U000e0041") == "\\u200b\\u2028\\U000e0041"
    assert preview(b"GET \xff\x00") == "GET \\xff\\x00"
    assert preview("x" * 200, limit=10) == "xxxxxxxxxx…(+190 chars)"
    assert preview(None) == "None"


# --- 5. a malformed HTTP request: 400 and one WARNING, no traceback -----------------------------
MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /\x00\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 10_000 + b"\r\n\r\n",
]


async def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` as is and read the answer until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=60)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.mark.parametrize(
    "request_bytes", MALFORMED, ids=["length", "header", "nul", "version", "long"]
)
def test_a_malformed_request_gets_400_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    async def scenario() -> bytes:
        async with serving(tmp_path) as url:
            return await raw_exchange(int(url.rsplit(":", 1)[1]), request_bytes)

    with caplog.at_level(logging.DEBUG):
        answer = asyncio.run(scenario())
    assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 "))
    http = [r for r in caplog.records if r.name.startswith(("aiohttp", "edgeguard.web.http"))]
    assert len(http) == 1, [r.getMessage() for r in http]
    (record,) = http
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert "\n" not in record.getMessage()
    assert not _has_control(record.getMessage())
    assert "127.0.0.1" in record.getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_garbage_on_a_connection_is_400_and_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are no HTTP at all (a TLS hello to the plain port, a scanner): aiohttp keeps
    them at DEBUG, so a scanned port does not fill the journal; never an ERROR or traceback."""

    async def scenario() -> bytes:
        async with serving(tmp_path) as url:
            return await raw_exchange(
                int(url.rsplit(":", 1)[1]), b"\x16\x03\x01\x00\xa5\x00\r\n\r\n"
            )

    with caplog.at_level(logging.DEBUG):
        answer = asyncio.run(scenario())
    assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 "))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info]


# --- static files: only the shipped ones, and a hostile name is a 404 -------------------------
def test_static_files_are_served_and_odd_names_are_404(tmp_path: Path) -> None:
    async def scenario() -> dict[str, int]:
        async with serving(tmp_path) as url, aiohttp.ClientSession(timeout=TIMEOUT) as http:
            statuses: dict[str, int] = {}
            for name in ("app.css", "common.js", "a" * 5000, "..%2f..%2fetc%2fpasswd", "nope.js",
                         "%00", ""):
                async with http.get(f"{url}/static/{name}") as answer:
                    await answer.read()
                    statuses[name[:20]] = answer.status
            return statuses

    statuses = asyncio.run(scenario())
    assert statuses.pop("app.css") == 200
    assert statuses.pop("common.js") == 200
    assert set(statuses.values()) == {404}, statuses
