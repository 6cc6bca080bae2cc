"""The parts both consoles share: the login page, the page shell, who am I, the user's language
and password, user management (admins only), and the static files. A console adds its own
routes to the application `make_app` returns."""

from __future__ import annotations

import asyncio
import html
import json
import logging
from pathlib import Path
from typing import Any, cast

from aiohttp import web

from edgeguard.safe_text import preview
from edgeguard.web.config import LANGUAGES, Language, WebConfig
from edgeguard.web.i18n import TEXT, text
from edgeguard.web.responses import json_response
from edgeguard.web.security import (
    CONTEXT,
    WebContext,
    add_security_headers,
    auth_middleware,
    clear_session_cookie,
    client_key,
    context,
    current_session,
    current_user,
    host_middleware,
    json_error,
    own_hosts,
    require_admin,
    set_session_cookie,
)
from edgeguard.web.sessions import Sessions, SessionStore
from edgeguard.web.users import Role, UserError, UserStore

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 64 * 1024


def make_app(
    config: WebConfig,
    users: UserStore,
    app_name: str,
    version: str,
    sessions: Sessions | None = None,
) -> web.Application:
    """``sessions``: where the sessions live; default in this process's memory."""
    app = web.Application(middlewares=[host_middleware, auth_middleware], client_max_size=MAX_BODY)
    store = sessions or SessionStore(
        idle_s=config.session_idle_minutes * 60, max_s=config.session_max_hours * 3600
    )
    app[CONTEXT] = WebContext(
        config=config,
        users=users,
        sessions=store,
        limiter=store.login_limiter(config.login_attempts, config.login_lockout_minutes * 60),
        app_name=app_name,
        version=version,
        hosts=own_hosts(config),
    )
    app.on_response_prepare.append(add_security_headers)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", shell_page)
    app.router.add_get("/api/me", me)
    app.router.add_post("/api/me/language", set_language)
    app.router.add_post("/api/me/password", change_password)
    app.router.add_get("/api/users", list_users)
    app.router.add_post("/api/users", add_user)
    app.router.add_post("/api/users/{name}/delete", delete_user)
    app.router.add_post("/api/users/{name}/role", set_role)
    app.router.add_post("/api/users/{name}/password", reset_password)
    app.router.add_get("/static/{name}", static_file)
    return app


# The files shipped in web/static, by name: a request names one of them or gets 404 (aiohttp's
# own static handler answered 500 with a traceback to a file name too long for the OS).
STATIC_FILES = frozenset(path.name for path in STATIC.iterdir() if path.is_file())


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound
    return web.FileResponse(STATIC / name)


# --- pages -----------------------------------------------------------------------------------
def _page(title: str, body: str, language: Language, app_name: str) -> str:
    return (
        f'<!doctype html><html lang="{"zh-CN" if language == "zh" else "en"}"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title>"
        '<link rel="stylesheet" href="/static/app.css"></head>'
        f'<body data-app="{app_name}">{body}</body></html>'
    )


async def login_page(request: web.Request, *, error: str | None = None) -> web.Response:
    ctx = context(request)
    language = _query_language(request) or ctx.config.language
    t = TEXT[language]
    notes = []
    if error:
        notes.append(f'<p class="error" role="alert">{html.escape(t[error])}</p>')
    elif request.query.get("expired"):
        notes.append(f'<p class="notice">{html.escape(t["login.expired"])}</p>')
    if await asyncio.to_thread(ctx.users.count) == 0:
        notes.append(f'<p class="notice">{html.escape(t["login.no_users"])}</p>')
    other: Language = "en" if language == "zh" else "zh"
    body = (
        '<main class="login"><h1>' + html.escape(t[f"{ctx.app_name}.title"]) + "</h1>"
        + "".join(notes)
        + '<form method="post" action="/login">'
        f'<input type="hidden" name="lang" value="{language}">'
        f'<label>{html.escape(t["login.user"])}<input name="user" autocomplete="username" '
        'required maxlength="64" autofocus></label>'
        f'<label>{html.escape(t["login.password"])}<input name="password" type="password" '
        'autocomplete="current-password" required maxlength="256"></label>'
        f'<button type="submit">{html.escape(t["login.submit"])}</button></form>'
        f'<p><a href="/login?lang={other}">{html.escape(t["nav.language"])}</a></p></main>'
    )  # fmt: skip
    status = 429 if error == "login.locked" else 401 if error else 200
    return web.Response(
        text=_page(t["login.title"], body, language, ctx.app_name),
        content_type="text/html",
        status=status,
    )


def _query_language(request: web.Request) -> Language | None:
    value = request.query.get("lang")
    return value if value in LANGUAGES else None


async def shell_page(request: web.Request) -> web.Response:
    ctx = context(request)
    user = current_user(request)
    body = (
        '<div id="app" aria-live="polite"></div>'
        '<script src="/static/common.js"></script>'
        f'<script src="/static/{ctx.app_name}.js"></script>'
    )
    title = text(user.language, f"{ctx.app_name}.title")
    return web.Response(
        text=_page(title, body, user.language, ctx.app_name), content_type="text/html"
    )


# --- login -----------------------------------------------------------------------------------
async def login(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    form = await request.post()
    name = str(form.get("user", ""))[:64]
    password = str(form.get("password", ""))[:256]
    keys = (f"user:{name}", client_key(request))
    # counted now, before the slow check: see LoginLimiter
    if not await ctx.limiter_call(ctx.limiter.attempt, *keys):
        logger.warning("console: login of %s refused: too many failures", preview(name))
        return await login_page(request, error="login.locked")
    user = await asyncio.to_thread(ctx.users.authenticate, name, password)
    if user is None:
        logger.warning("console: failed login for %s from %s", preview(name), keys[1])
        return await login_page(request, error="login.failed")
    await ctx.limiter_call(ctx.limiter.succeeded, *keys)
    session = await ctx.session_call(ctx.sessions.create, user.name)
    logger.info("console: %s logged in (%s)", user.name, user.role)
    response = web.HTTPSeeOther("/")
    set_session_cookie(response, ctx, session)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    session = current_session(request)
    ctx = context(request)
    await ctx.session_call(ctx.sessions.end, session.token)
    logger.info("console: %s logged out", session.user)
    response = web.HTTPSeeOther("/login")
    clear_session_cookie(response)
    raise response


async def me(request: web.Request) -> web.Response:
    ctx = context(request)
    user = current_user(request)
    return json_response(
        {
            "user": user.public(),
            "csrf": current_session(request).csrf,
            "text": TEXT[user.language],
            "app": ctx.app_name,
            "version": ctx.version,
        }
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or 400 with a clear message."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise json_error(web.HTTPBadRequest, f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise json_error(web.HTTPBadRequest, f"{name} must be a string")
    return value


async def _user_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except UserError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from exc


# --- the user's own settings -----------------------------------------------------------------
async def set_language(request: web.Request) -> web.Response:
    user = current_user(request)
    language = _field(await read_json(request), "language")
    updated = await _user_call(context(request).users.set_language, user.name, language)
    return json_response({"user": updated.public()})


async def change_password(request: web.Request) -> web.Response:
    ctx = context(request)
    user = current_user(request)
    body = await read_json(request)
    if await asyncio.to_thread(ctx.users.authenticate, user.name, _field(body, "old")) is None:
        raise json_error(web.HTTPForbidden, "the current password is wrong")
    updated = await _user_call(ctx.users.set_password, user.name, _field(body, "new"))
    token = current_session(request).token
    await ctx.session_call(ctx.sessions.end_user, user.name, keep=token)
    # this session knew the old password: it stays (the others end at their next request)
    await ctx.session_call(ctx.sessions.relogin, token, updated.password_changed_at)
    return web.json_response({"ok": True})


# --- user management (admins) ----------------------------------------------------------------
async def list_users(request: web.Request) -> web.Response:
    require_admin(request)
    users = await asyncio.to_thread(context(request).users.all)
    return json_response({"users": [u.public() for u in users]})


async def add_user(request: web.Request) -> web.Response:
    admin = require_admin(request)
    ctx = context(request)
    body = await read_json(request)
    user = await _user_call(
        ctx.users.add,
        _field(body, "name"),
        _field(body, "password"),
        cast(Role, _field(body, "role")),
        display_name=_field(body, "display_name", required=False),
        language=cast(Language, body.get("language") or ctx.config.language),
    )
    logger.info("console: %s added user %s (%s)", admin.name, user.name, user.role)
    return json_response({"user": user.public()})


async def delete_user(request: web.Request) -> web.Response:
    admin = require_admin(request)
    ctx = context(request)
    name = request.match_info["name"]
    await _user_call(ctx.users.delete, name)
    await ctx.session_call(ctx.sessions.end_user, name)
    logger.info("console: %s deleted user %s", admin.name, preview(name))
    return web.json_response({"ok": True})


async def set_role(request: web.Request) -> web.Response:
    admin = require_admin(request)
    ctx = context(request)
    name = request.match_info["name"]
    role = cast(Role, _field(await read_json(request), "role"))
    user = await _user_call(ctx.users.set_role, name, role)
    await ctx.session_call(ctx.sessions.end_user, name, keep=current_session(request).token)
    logger.info("console: %s made %s %s", admin.name, preview(name), role)
    return json_response({"user": user.public()})


async def reset_password(request: web.Request) -> web.Response:
    admin = require_admin(request)
    ctx = context(request)
    name = request.match_info["name"]
    await _user_call(ctx.users.set_password, name, _field(await read_json(request), "password"))
    await ctx.session_call(ctx.sessions.end_user, name, keep=current_session(request).token)
    logger.info("console: %s set the password of %s", admin.name, preview(name))
    return web.json_response({"ok": True})
