"""The middleware every console request passes: the Host check, security headers, same-origin
and CSRF checks on every action, and the session that says who is asking.

- Every request must name one of the console's own hosts in its `Host` header (localhost, this
  machine's host name, the listen address, `allowed_hosts`, or an IP address), or it gets 421:
  a foreign name resolving to the console is DNS rebinding, where a page on that name would
  otherwise be "same-origin" with its requests.

- Every unsafe request (POST, PUT, PATCH, DELETE) must come from our own pages: its `Origin`
  (or, without one, its `Referer`) must be this server, and `Sec-Fetch-Site`, when the browser
  sends it, must not be `cross-site`. A request with neither header is refused: browsers
  always send one on a form or fetch POST.
- Every unsafe request of a logged-in user must also carry the session's CSRF token, in the
  `X-CSRF-Token` header (fetch) or a `csrf` form field.
- Pages without a session redirect to the login page; API calls get 401 JSON.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from edgeguard.safe_text import preview
from edgeguard.web.config import WebConfig
from edgeguard.web.sessions import Limiter, Session, Sessions
from edgeguard.web.users import User, UserStore

logger = logging.getLogger(__name__)

COOKIE = "eg_session"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC = frozenset({"/login", "/favicon.ico"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; media-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)


@dataclass
class WebContext:
    """What the handlers of one console share."""

    config: WebConfig
    users: UserStore
    sessions: Sessions
    limiter: Limiter
    app_name: str  # "console" or "police": the page script and the title
    version: str
    hosts: frozenset[str]  # the names besides IP addresses a request's Host may give: own_hosts

    async def session_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A call of the session store: in a thread when it blocks on a database."""
        if self.sessions.blocking:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def limiter_call(self, fn: Callable[..., T], *args: Any) -> T:
        """A call of the login limiter: in a thread when it blocks on a database."""
        if self.limiter.blocking:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def session_alive(self, token: str | None) -> bool:
        """The session of ``token`` has not ended (the live stream asks: not activity)."""
        return await self.session_call(self.sessions.get, token, touch=False) is not None


CONTEXT = web.AppKey("edgeguard_web", WebContext)
# request keys: the Session and the User. aiohttp 3.14 warns of plain string keys (an error
# under the tests' filterwarnings) and has web.RequestKey; older releases have only strings.
SESSION: Any = web.RequestKey("eg_session", Session) if hasattr(web, "RequestKey") else "eg_session"
USER: Any = web.RequestKey("eg_user", User) if hasattr(web, "RequestKey") else "eg_user"


def context(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


def current_user(request: web.Request) -> User:
    user = request.get(USER)
    if not isinstance(user, User):
        raise web.HTTPUnauthorized(text="not logged in")
    return user


def current_session(request: web.Request) -> Session:
    session = request.get(SESSION)
    if not isinstance(session, Session):
        raise web.HTTPUnauthorized(text="not logged in")
    return session


def require_admin(request: web.Request) -> User:
    user = current_user(request)
    if not user.is_admin:
        logger.warning(
            "console: operator %s tried %s %s", user.name, request.method, preview(request.path)
        )
        raise json_error(web.HTTPForbidden, "admins only")
    return user


def json_error(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    body = json.dumps({"error": message}, ensure_ascii=False)
    return kind(text=body, content_type="application/json")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors and redirects included."""
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-store")
    if context(request).config.https:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")


def own_hosts(config: WebConfig) -> frozenset[str]:
    """The host names a request may name (any IP address may be named too)."""
    names = {"localhost", socket.gethostname(), config.host, *config.allowed_hosts}
    return frozenset(_normal_name(name) for name in names)


def host_name(host: str) -> str:
    """The name in a Host header's value: no port, no IPv6 brackets, lower case."""
    if host.startswith("["):
        return _normal_name(host[1:].partition("]")[0])
    name, colon, port = host.rpartition(":")
    return _normal_name(name if colon and port.isdigit() and ":" not in name else host)


def _normal_name(name: str) -> str:
    return name.lower().rstrip(".")


def is_own_host(host: str, hosts: frozenset[str]) -> bool:
    name = host_name(host)
    if name in hosts:
        return True
    try:
        ipaddress.ip_address(name)  # a browser that names an address is not being rebound
    except ValueError:
        return False
    return True


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a request for a foreign Host before anything else looks at it."""
    if not is_own_host(request.host, context(request).hosts):
        logger.warning(
            "console: refused %s %s for Host %s: not one of the console's names "
            "(allowed_hosts)", request.method, preview(request.path), preview(request.host),
        )  # fmt: skip
        raise web.HTTPMisdirectedRequest(text="this console is not served under that name")
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = context(request)
    if request.method in UNSAFE:
        _check_same_origin(request, ctx)
    if request.path in PUBLIC or request.path.startswith("/static/"):
        return await handler(request)
    token = request.cookies.get(COOKIE)
    # the live stream keeps a page open for hours: it is not activity
    touch = not request.path.endswith("/stream")
    if ctx.sessions.blocking:  # the session and its user, in one trip to a thread
        session, user = await asyncio.to_thread(_who, ctx, token, touch)
    else:
        session = ctx.sessions.get(token, touch=touch)
        user = await asyncio.to_thread(ctx.users.get, session.user) if session else None
        if session is not None and not _still_valid(session, user):
            ctx.sessions.end(session.token)
            session = None
    if session is None or user is None:
        return _not_logged_in(request, had_cookie=bool(token))
    if request.method in UNSAFE:
        await _check_csrf(request, session)
    request[SESSION] = session
    request[USER] = user
    return await handler(request)


def _who(ctx: WebContext, token: str | None, touch: bool) -> tuple[Session | None, User | None]:
    """The live session of ``token`` and its user (blocking: in a thread)."""
    session = ctx.sessions.get(token, touch=touch)
    if session is None:
        return None, None
    user = ctx.users.get(session.user)
    if not _still_valid(session, user):
        ctx.sessions.end(session.token)
        return None, None
    return session, user


def _still_valid(session: Session, user: User | None) -> bool:
    """False when the user was deleted, or their password changed since this login."""
    return user is not None and user.password_changed_at <= session.login_at


def _not_logged_in(request: web.Request, *, had_cookie: bool) -> web.StreamResponse:
    if request.path.startswith("/api/") or request.method in UNSAFE:
        raise json_error(web.HTTPUnauthorized, "not logged in or session expired")
    raise web.HTTPSeeOther("/login?expired=1" if had_cookie else "/login")


def _check_same_origin(request: web.Request, ctx: WebContext) -> None:
    own = f"{'https' if ctx.config.https else 'http'}://{request.host}"
    origin = request.headers.get("Origin")
    referer = request.headers.get("Referer")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site == "cross-site":
        _refuse(request, f"Sec-Fetch-Site {fetch_site}")
    if origin is not None and origin != "null":
        if origin != own:
            _refuse(request, f"Origin {preview(origin)}")
        return
    if referer is not None and (referer == own or referer.startswith(own + "/")):
        return
    _refuse(request, "no Origin or Referer of this server")


def _refuse(request: web.Request, why: str) -> None:
    logger.warning(
        "console: refused cross-site %s %s (%s)", request.method, preview(request.path), why
    )
    raise json_error(web.HTTPForbidden, "cross-site request refused")


async def _check_csrf(request: web.Request, session: Session) -> None:
    token = request.headers.get("X-CSRF-Token")
    if token is None and request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        value = form.get("csrf")
        token = value if isinstance(value, str) else None
    if token is None or not hmac.compare_digest(token, session.csrf):
        logger.warning(
            "console: refused %s %s: bad CSRF token", request.method, preview(request.path)
        )
        raise json_error(web.HTTPForbidden, "missing or wrong CSRF token")


def set_session_cookie(response: web.StreamResponse, ctx: WebContext, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.token,
        httponly=True,
        samesite="Strict",
        secure=ctx.config.https,
        path="/",
        max_age=int(ctx.config.session_max_hours * 3600),
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


def client_key(request: web.Request) -> str:
    peer: Any = request.transport.get_extra_info("peername") if request.transport else None
    return f"addr:{peer[0] if peer else '?'}"
