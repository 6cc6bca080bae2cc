"""The control-room console of a real `edgeguard run` (real mosquitto, real HTTP): login, a
press pushed live, local acknowledgement, reset with the operator's name, history and CSV, and
the security rules: every action refuses an unauthenticated, cross-site or token-less request,
sessions expire, operators cannot manage users, failed logins lock out."""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from edgeguard.console.backend import ConsoleBackend
from edgeguard.console.routes import console_app
from edgeguard.lab.broker import Mosquitto, free_port
from edgeguard.lab.harness import DaemonProcess, Site, make_site
from edgeguard.lab.web_client import ConsoleClient
from edgeguard.store import Store
from edgeguard.web.config import WebConfig
from edgeguard.web.users import UserStore

ADMIN, ADMIN_PW = "wang", "correct horse battery"
OPERATOR, OPERATOR_PW = "li", "operator password"
SAMPLE_EVENT = "01a20614-91ec-70e4-b533-6874e06fb7a0"


def console_site(tmp_path: Path, broker: Mosquitto, **console: Any) -> tuple[Site, str]:
    port = free_port()
    site = make_site(tmp_path / "site", broker, console_port=port)
    site.data["console"].update(console)
    site.write()
    users = UserStore(site.directory / "users.db")
    users.add(ADMIN, ADMIN_PW, "admin", display_name="王主任", language="zh")
    users.add(OPERATOR, OPERATOR_PW, "operator", display_name="李值班", language="en")
    return site, f"http://127.0.0.1:{port}"


@pytest.fixture
def running(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> tuple[DaemonProcess, str]:
    site, url = console_site(tmp_path, broker)
    return daemons(site), url


@pytest.fixture
def admin(running: tuple[DaemonProcess, str]) -> Iterator[ConsoleClient]:
    with ConsoleClient(running[1]) as client:
        assert client.login(ADMIN, ADMIN_PW).status_code == 303
        yield client


def _collect(
    client: ConsoleClient, events: list[dict[str, Any]], timeout: float
) -> threading.Thread:
    def read() -> None:
        for event in client.events(timeout=timeout):
            events.append(event)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_press_live_ack_reset_history_and_csv(
    running: tuple[DaemonProcess, str], admin: ConsoleClient
) -> None:
    daemon, _ = running
    events: list[dict[str, Any]] = []
    _collect(admin, events, timeout=20)
    _wait(lambda: any(e["type"] == "state" for e in events))
    assert events[0] == {"type": "state", "data": {"alarms": []}}
    daemon.press("er-button")
    _wait(lambda: any(e["type"] == "alarm" for e in events))
    alarm = next(e for e in events if e["type"] == "alarm")["data"]
    assert alarm["kind"] == "panic"
    assert alarm["location"]["label"] == "急诊分诊台"
    assert alarm["location"]["building"] == "门诊楼"
    event_id = alarm["event_id"]
    _wait(lambda: any(e["data"].get("state") == "delivered" for e in events
                      if e["type"] == "alarm"))  # fmt: skip

    acked = admin.post(f"/api/alarms/{event_id}/ack-local")
    assert acked.status_code == 200
    assert acked.json()["alarm"]["local_ack"]["by"] == "王主任 (wang)"
    refused = admin.post(f"/api/alarms/{event_id}/reset")
    assert refused.status_code == 409
    assert "still in alarm" in refused.json()["error"]  # a latched button still pressed
    daemon.release("er-button")
    _wait(lambda: any(e["data"].get("restored") for e in events if e["type"] == "alarm"))
    reset = admin.post(f"/api/alarms/{event_id}/reset")
    assert reset.status_code == 200
    assert reset.json()["alarm"]["reset_by"] == "王主任 (wang)"
    _wait(lambda: any(e["data"].get("state") == "reset" for e in events if e["type"] == "alarm"))

    history = admin.get("/api/alarms", kind="panic").json()["alarms"]
    assert [a["event_id"] for a in history] == [event_id]
    assert admin.get("/api/alarms", state="active").json()["alarms"] == []
    detail = admin.get(f"/api/alarms/{event_id}").json()["alarm"]
    types = [row["type"] for row in detail["timeline"]]
    assert types[0] == "alarm.new"
    assert {"alarm.local_ack", "alarm.delivered", "alarm.restored", "alarm.reset"} <= set(types)
    ledger = admin.get("/api/ledger.csv")
    assert ledger.headers["content-type"].startswith("text/csv")
    text = ledger.content.decode("utf-8")
    assert text.startswith("\ufeffid,recorded_at")
    assert "alarm.reset" in text
    assert "王主任 (wang)" in text
    alarms_csv = admin.get("/api/alarms.csv").content.decode("utf-8")
    assert event_id in alarms_csv
    assert admin.get("/api/alarms", since="yesterday").status_code == 400


def test_pages_health_and_language(
    running: tuple[DaemonProcess, str], admin: ConsoleClient
) -> None:
    login = admin.http.get("/login")
    assert 'lang="zh-CN"' in login.text
    assert "安防监控中心" in login.text
    assert "Security control room" in admin.http.get("/login?lang=en").text
    page = admin.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert admin.get("/static/console.js").status_code == 200
    health = admin.get("/api/health").json()
    assert health["link"]["connected"] is True
    assert health["site"] == "hosp-01"
    me = admin.get("/api/me").json()
    assert me["text"]["kind.panic"] == "紧急求助"
    assert admin.post("/api/me/language", {"language": "en"}).json()["user"]["language"] == "en"
    assert admin.get("/api/me").json()["text"]["kind.panic"] == "Panic"


def _action_paths() -> list[str]:
    """Every POST route of the console, with sample values in its placeholders."""
    backend = ConsoleBackend(SimpleNamespace(service=SimpleNamespace(listeners=[])))  # type: ignore[arg-type]
    app = console_app(backend, WebConfig(), UserStore.__new__(UserStore))
    paths = []
    for route in app.router.routes():
        if route.method != "POST":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        paths.append(re.sub(r"\{event_id\}", SAMPLE_EVENT, path).replace("{name}", OPERATOR))
    assert len(paths) >= 10
    return paths


def test_every_action_refuses_unauthenticated_cross_site_and_tokenless(
    running: tuple[DaemonProcess, str], admin: ConsoleClient
) -> None:
    _, url = running
    with ConsoleClient(url) as anonymous:
        for path in _action_paths():
            if path == "/login":
                continue
            answer = anonymous.post(path)
            assert answer.status_code in (401, 403), (path, answer.status_code)
    for path in _action_paths():
        evil = admin.post(path, Origin="http://evil.example")
        assert evil.status_code == 403, (path, evil.status_code)
        assert "cross-site" in evil.text
        cross = admin.post(path, **{"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403, path
        if path != "/login":
            tokenless = admin.post(path, **{"X-CSRF-Token": "guessed"})
            assert tokenless.status_code == 403, path
            assert "CSRF" in tokenless.text
    no_origin = admin.http.post("/api/me/language", json={"language": "en"},
                                headers={"X-CSRF-Token": admin.csrf})  # fmt: skip
    assert no_origin.status_code == 403
    assert admin.get("/api/me").json()["user"]["language"] == "zh"  # nothing got through
    assert [u["name"] for u in admin.get("/api/users").json()["users"]] == [OPERATOR, ADMIN]


def test_unauthenticated_pages_redirect_and_api_says_401(
    running: tuple[DaemonProcess, str],
) -> None:
    with ConsoleClient(running[1]) as anonymous:
        page = anonymous.get("/")
        assert page.status_code == 303
        assert page.headers["location"] == "/login"
        for path in ("/api/me", "/api/alarms", "/api/ledger.csv", "/api/health", "/api/stream",
                     f"/api/alarms/{SAMPLE_EVENT}", "/api/users"):  # fmt: skip
            assert anonymous.get(path).status_code == 401, path
        anonymous.http.cookies.set("eg_session", "forged")
        assert anonymous.get("/api/me").status_code == 401


def test_operator_cannot_manage_users(
    running: tuple[DaemonProcess, str], admin: ConsoleClient
) -> None:
    with ConsoleClient(running[1]) as operator:
        assert operator.login(OPERATOR, OPERATOR_PW).status_code == 303
        assert operator.get("/api/users").status_code == 403
        new = {"name": "zhao", "password": "a good password", "role": "admin"}
        assert operator.post("/api/users", new).status_code == 403
        assert operator.post(f"/api/users/{ADMIN}/delete").status_code == 403
        assert operator.post(f"/api/users/{OPERATOR}/role", {"role": "admin"}).status_code == 403
        takeover = operator.post(f"/api/users/{ADMIN}/password", {"password": "taken over!"})
        assert takeover.status_code == 403
        assert operator.get("/api/me").json()["user"]["role"] == "operator"
        # the admin can, and deleting a user ends their session at once
        assert admin.post("/api/users", new).status_code == 200
        assert admin.post("/api/users", {**new, "password": "short"}).status_code == 400
        assert admin.post(f"/api/users/{OPERATOR}/delete").status_code == 200
        assert operator.get("/api/me").status_code == 401
    with ConsoleClient(running[1]) as zhao:
        assert zhao.login("zhao", "a good password").status_code == 303


def test_failed_logins_lock_the_name_out(running: tuple[DaemonProcess, str]) -> None:
    with ConsoleClient(running[1]) as client:
        for _ in range(5):
            answer = client.login(ADMIN, "wrong password")
            assert answer.status_code == 401
            assert "用户名或密码错误" in answer.text
        locked = client.login(ADMIN, ADMIN_PW)
        assert locked.status_code == 429  # even the right password, for a while
        assert client.get("/api/me").status_code == 401


def test_sessions_expire(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    site, url = console_site(tmp_path, broker, session_idle_minutes=0.02)  # 1.2 s
    daemons(site)
    with ConsoleClient(url) as client:
        assert client.login(ADMIN, ADMIN_PW).status_code == 303
        assert client.get("/api/me").status_code == 200
        time.sleep(1.6)
        assert client.get("/api/me").status_code == 401
        page = client.get("/")
        assert page.headers["location"] == "/login?expired=1"
        assert "会话已过期" in client.http.get(page.headers["location"]).text
        assert client.post("/api/me/language", {"language": "en"}).status_code == 401


def test_a_password_changed_on_the_appliance_ends_open_sessions(
    running: tuple[DaemonProcess, str], admin: ConsoleClient
) -> None:
    """`edgeguard user password` writes the users database directly: the daemon must not let
    a session opened with the old password go on."""
    time.sleep(0.01)  # a password change in the same millisecond as the login is not 'after'
    UserStore(running[0].site.directory / "users.db").set_password(ADMIN, "a brand new one")
    assert admin.get("/api/me").status_code == 401
    assert admin.login(ADMIN, ADMIN_PW).status_code == 401
    assert admin.login(ADMIN, "a brand new one").status_code == 303


def test_https_when_a_certificate_is_configured(
    tmp_path: Path, broker: Mosquitto, daemons: Callable[..., DaemonProcess]
) -> None:
    assert broker.pki is not None
    pair = broker.pki.server()
    site, url = console_site(
        tmp_path, broker, tls_cert=str(pair.cert), tls_key=str(pair.key)
    )
    daemons(site)
    secure = url.replace("http://127.0.0.1", "https://localhost")
    trust = ssl.create_default_context(cafile=str(broker.pki.ca_file))
    with ConsoleClient(secure, verify=trust) as client:
        login = client.login(ADMIN, ADMIN_PW)
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        me = client.get("/api/me")
        assert me.status_code == 200
        assert me.headers["strict-transport-security"].startswith("max-age=")
    with ConsoleClient(url) as plain:  # no plain HTTP beside HTTPS
        with pytest.raises(httpx.HTTPError):
            plain.get("/login")


def test_an_open_page_does_not_hold_up_a_stop(
    running: tuple[DaemonProcess, str], admin: ConsoleClient
) -> None:
    """A console page keeps its live stream open for hours: SIGTERM must still stop the daemon
    cleanly (exit 0) well within the stop timeout, not wait for the browser."""
    events: list[dict[str, Any]] = []
    _collect(admin, events, timeout=60)
    _wait(lambda: any(e["type"] == "state" for e in events))
    assert running[0].stop(timeout=15) == 0  # after 15 s it would be SIGKILLed: -9


def test_the_ledger_export_reads_page_by_page(tmp_path: Path) -> None:
    """A year of events must not be held in the daemon's memory: pages, in id order, complete."""
    store = Store(tmp_path / "edgeguard.db")
    with store.transaction():
        for n in range(5):
            store.append_event("test.row", data={"n": n})
    store.close()
    daemon = SimpleNamespace(
        config=SimpleNamespace(store=SimpleNamespace(path=tmp_path / "edgeguard.db")),
        service=SimpleNamespace(listeners=[]),
    )
    backend = ConsoleBackend(daemon)  # type: ignore[arg-type]

    async def pages() -> list[list[int]]:
        return [[r["id"] for r in page] async for page in backend.ledger_pages(None, None, 2)]

    assert asyncio.run(pages()) == [[1, 2], [3, 4], [5]]


def test_csv_exports_never_hand_a_spreadsheet_a_formula() -> None:
    """A label or a name like `=HYPERLINK(...)` must reach Excel as text (CSV injection)."""
    from edgeguard.ledger_csv import csv_chunks

    rows = [{"location": "=HYPERLINK(\"http://evil\")", "by": "@SUM(A1)", "n": -3, "ok": "急诊"}]
    text = "".join(csv_chunks(rows, ["location", "by", "n", "ok"]))
    assert text.startswith("\ufefflocation,by,n,ok")
    assert "'=HYPERLINK" in text
    assert "'@SUM(A1)" in text
    assert ",-3," in text  # numbers stay numbers
    assert "急诊" in text
