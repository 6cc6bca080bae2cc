"""The police dashboard's users and sessions in a REAL PostgreSQL (the city platform): any
dashboard instance serves any user, a restart logs nobody out, and logging out, a password
change or a deleted user ends the session on every instance. Also the same user rules as
users.db (tests/test_web_users.py) on PostgreSQL, the database session store's expiry rules,
and `edgeguard user --police` on a config with `postgres`.

The server is edgeguard/lab/postgres.py's, once for the session; every test gets a database of
its own (conftest.py's ``pg_dsn``), so the police migrations run afresh each time."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml

from edgeguard.lab.broker import free_port
from edgeguard.police.config import PoliceConfig
from edgeguard.police.db import PostgresDatabase, SqliteDatabase
from edgeguard.police.schema import migrate
from edgeguard.police.service import PoliceService
from edgeguard.police.web import accounts, police_app
from edgeguard.web.db_limiter import DbLoginLimiter
from edgeguard.web.security import COOKIE
from edgeguard.web.server import WebServer
from edgeguard.web.sessions import DbSessionStore
from edgeguard.web.users import UserError, UserStore

ADMIN, ADMIN_PW = "zhang", "police desk pw"
OPERATOR, OPERATOR_PW = "li", "operator pw 1"
EXE = str(Path(sys.executable).with_name("edgeguard"))
TIMEOUT = aiohttp.ClientTimeout(total=60)


# --- fixtures (the PostgreSQL server and a database per test: conftest.py) -----------------
class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def police_config(tmp_path: Path, dsn: str | None, **web: Any) -> PoliceConfig:
    return PoliceConfig.model_validate(config_data(tmp_path, dsn, **web))


def config_file(tmp_path: Path, dsn: str) -> Path:
    path = tmp_path / "police.yaml"
    path.write_text(yaml.safe_dump(config_data(tmp_path, dsn)), "utf-8")
    return path


def config_data(tmp_path: Path, dsn: str | None, **web: Any) -> dict[str, Any]:
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    data: dict[str, Any] = {
        "receiver_id": f"police-{free_port()}",
        "keys_dir": str(keys),
        "database": str(tmp_path / "police" / "police.db"),
        "web": {"host": "127.0.0.1", "port": free_port(), **web},
    }
    if dsn is not None:
        data["postgres"] = {"dsn": dsn, "pool_max": 4}
    return data


@pytest.fixture
def pg_db(pg_dsn: str) -> Iterator[PostgresDatabase]:
    db = PostgresDatabase(pg_dsn, max_size=2)
    migrate(db)
    yield db
    db.close()


@contextlib.asynccontextmanager
async def dashboard(config: PoliceConfig) -> AsyncIterator[str]:
    """One dashboard instance (a PoliceService and its app, not receiving) on its own port."""
    service = await asyncio.to_thread(PoliceService, config)
    users, sessions = await asyncio.to_thread(accounts, service, config)
    server = WebServer(police_app(service, config, users, sessions), config.web, "police")
    assert await server.start()
    try:
        yield f"http://127.0.0.1:{config.web.port}"
    finally:
        await server.stop()
        await asyncio.to_thread(service.close)


def instance(config: PoliceConfig) -> PoliceConfig:
    """Another dashboard instance of the same platform: its own port and receiver id."""
    web = config.web.model_copy(update={"port": free_port()})
    return config.model_copy(update={"web": web, "receiver_id": f"police-{free_port()}"})


class Browser:
    """One browser's session, taken to any instance: the cookie is sent by hand (aiohttp's jar
    does not tell ports apart), the CSRF token comes from /api/me, Origin on every POST."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.token = ""
        self.csrf = ""

    async def login(self, url: str, user: str, password: str) -> int:
        async with self.http.post(
            f"{url}/login",
            data={"user": user, "password": password},
            headers={"Origin": url},
            allow_redirects=False,
        ) as answer:
            await answer.read()
            if answer.status == 303:
                self.token = answer.cookies[COOKIE].value
                status, me = await self.get(url, "/api/me")
                assert status == 200
                self.csrf = me["csrf"]
            return answer.status

    async def get(self, url: str, path: str) -> tuple[int, Any]:
        async with self.http.get(
            f"{url}{path}", headers={"Cookie": f"{COOKIE}={self.token}"}, allow_redirects=False
        ) as answer:
            body = await answer.json() if answer.content_type == "application/json" else None
            return answer.status, body

    async def post(self, url: str, path: str, body: dict[str, Any] | None = None) -> int:
        headers = {"Cookie": f"{COOKIE}={self.token}", "Origin": url, "X-CSRF-Token": self.csrf}
        async with self.http.post(
            f"{url}{path}", json=body or {}, headers=headers, allow_redirects=False
        ) as answer:
            await answer.read()
            return answer.status


def add_users(db: Any) -> None:
    users = UserStore(db)
    users.add(ADMIN, ADMIN_PW, "admin", display_name="110 张警官", language="zh")
    users.add(OPERATOR, OPERATOR_PW, "operator", language="en")


def session_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT * FROM sessions ORDER BY user_name").fetchall()


# --- two instances, one database -------------------------------------------------------------
def test_a_session_from_one_instance_works_on_another_and_after_a_restart(
    tmp_path: Path, pg_dsn: str, pg_db: PostgresDatabase
) -> None:
    add_users(pg_db)
    config = police_config(tmp_path, pg_dsn)

    async def scenario() -> None:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            desk = Browser(http)
            async with dashboard(config) as a, dashboard(instance(config)) as b:
                assert await desk.login(a, ADMIN, ADMIN_PW) == 303
                status, me = await desk.get(b, "/api/me")
                assert status == 200
                assert (me["user"]["name"], me["csrf"]) == (ADMIN, desk.csrf)
                assert await desk.post(b, "/api/me/language", {"language": "en"}) == 200
                status, me = await desk.get(a, "/api/me")
                assert me["user"]["language"] == "en"  # one users table
            # both instances stopped; a new one (a restart) knows the session
            async with dashboard(instance(config)) as c:
                status, me = await desk.get(c, "/api/me")
                assert (status, me["user"]["name"]) == (200, ADMIN)
                assert await desk.post(c, "/logout") == 303
                async with dashboard(instance(config)) as d:
                    assert (await desk.get(d, "/api/me"))[0] == 401  # ended everywhere
                    assert (await desk.get(c, "/api/me"))[0] == 401

    asyncio.run(scenario())


def test_failed_logins_are_counted_by_every_instance_and_kept_across_a_restart(
    tmp_path: Path, pg_dsn: str, pg_db: PostgresDatabase
) -> None:
    """Going round the instances gives a guesser no more tries: login_attempts is 3 for the
    platform, not per instance, and a restarted instance still refuses the locked name."""
    add_users(pg_db)
    config = police_config(tmp_path, pg_dsn, login_attempts=3)

    async def scenario() -> None:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            guesser = Browser(http)
            async with dashboard(config) as a, dashboard(instance(config)) as b:
                assert await guesser.login(a, ADMIN, "guess 1") == 401
                assert await guesser.login(b, ADMIN, "guess 2") == 401
                assert await guesser.login(a, ADMIN, "guess 3") == 401
                assert await guesser.login(b, ADMIN, ADMIN_PW) == 429  # locked everywhere
                assert await guesser.login(b, OPERATOR, OPERATOR_PW) == 429  # same address
            async with dashboard(instance(config)) as c:
                assert await guesser.login(c, ADMIN, ADMIN_PW) == 429  # a restart forgives nobody

    asyncio.run(scenario())
    with psycopg.connect(pg_dsn) as conn:
        keys = {row[0] for row in conn.execute("SELECT login_key FROM login_attempts")}
    assert keys == {f"user:{ADMIN}", "addr:127.0.0.1"}


def test_database_limiter_ages_out_and_forgets_a_success(pg_db: PostgresDatabase) -> None:
    clock = FakeClock(1_000_000.0)
    limiter = DbLoginLimiter(pg_db, attempts=2, window_s=60, clock=clock)
    keys = ("user:wang", "addr:10.0.0.5")
    assert limiter.attempt(*keys)
    assert limiter.attempt(*keys)
    assert limiter.blocked(*keys)
    assert not limiter.attempt(*keys)  # refused: nothing counted
    assert limiter.blocked("user:wang", "addr:10.0.0.9")  # the name, from anywhere
    assert not limiter.blocked("user:li", "addr:10.0.0.9")
    clock.now += 61
    assert not limiter.blocked(*keys)
    assert limiter.attempt(*keys)  # and the aged-out rows are gone
    with pg_db.read() as tx:
        assert tx.execute("SELECT COUNT(*) AS n FROM login_attempts").scalar() == 2
    limiter.succeeded(*keys)
    assert not limiter.blocked(*keys)
    with pg_db.read() as tx:
        assert tx.execute("SELECT COUNT(*) AS n FROM login_attempts").scalar() == 0


def test_concurrent_attempts_from_two_instances_pass_at_most_the_limit(pg_dsn: str) -> None:
    """Two instances (two pools) trying the same name at the same moment: the check and the
    count are one step (an advisory lock per key), so no more than ``attempts`` pass."""
    dbs = [PostgresDatabase(pg_dsn, max_size=8) for _ in range(2)]
    migrate(dbs[0])
    limiters = [DbLoginLimiter(db, attempts=5, window_s=300) for db in dbs]
    start = threading.Barrier(16)

    def guess(name: str, n: int) -> bool:
        start.wait()
        return limiters[n % 2].attempt(f"user:{name}", f"addr:10.0.{len(name)}.{n}")

    passed = []
    try:
        with ThreadPoolExecutor(16) as pool:
            for name in ("wang", "li", "zhao", "qian", "sun", "zhou", "wu", "zheng"):
                passed.append(sum(pool.map(guess, [name] * 16, range(16))))
    finally:
        for db in dbs:
            db.close()
    assert passed == [5] * 8


def test_database_limiter_on_sqlite(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "police.db")
    migrate(db)
    clock = FakeClock(1_000_000.0)
    limiter = DbLoginLimiter(db, attempts=1, window_s=10, clock=clock)
    assert limiter.attempt("user:wang")
    assert not limiter.attempt("user:wang")
    clock.now += 11
    assert limiter.attempt("user:wang")
    db.close()


def test_only_the_tokens_hash_is_stored(
    tmp_path: Path, pg_dsn: str, pg_db: PostgresDatabase
) -> None:
    add_users(pg_db)
    config = police_config(tmp_path, pg_dsn)

    async def scenario() -> Browser:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http, dashboard(config) as a:
            desk = Browser(http)
            assert await desk.login(a, ADMIN, ADMIN_PW) == 303
            return desk

    desk = asyncio.run(scenario())
    (row,) = session_rows(pg_dsn)
    assert hashlib.sha256(desk.token.encode()).hexdigest() in row
    assert not any(desk.token in str(value) for value in row)


def test_a_password_change_or_role_change_ends_the_users_sessions_on_every_instance(
    tmp_path: Path, pg_dsn: str, pg_db: PostgresDatabase
) -> None:
    add_users(pg_db)
    config = police_config(tmp_path, pg_dsn)

    async def scenario() -> None:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as http,
            dashboard(config) as a,
            dashboard(instance(config)) as b,
        ):
            first, second, admin = Browser(http), Browser(http), Browser(http)
            assert await first.login(a, OPERATOR, OPERATOR_PW) == 303
            assert await second.login(b, OPERATOR, OPERATOR_PW) == 303
            body = {"old": OPERATOR_PW, "new": "a new password"}
            assert await first.post(a, "/api/me/password", body) == 200
            assert (await second.get(a, "/api/me"))[0] == 401
            assert (await first.get(b, "/api/me"))[0] == 200  # the one that changed it stays
            # an admin on B resets the operator's password: the operator's session on A ends
            assert await admin.login(b, ADMIN, ADMIN_PW) == 303
            body = {"password": "set by the admin"}
            assert await admin.post(b, f"/api/users/{OPERATOR}/password", body) == 200
            assert (await first.get(a, "/api/me"))[0] == 401
            assert await first.login(a, OPERATOR, "set by the admin") == 303
            assert await admin.post(b, f"/api/users/{OPERATOR}/role", {"role": "admin"}) == 200
            assert (await first.get(b, "/api/me"))[0] == 401
            assert (await admin.get(a, "/api/me"))[0] == 200

    asyncio.run(scenario())


def test_a_deleted_users_session_ends_whoever_deleted_them(
    tmp_path: Path, pg_dsn: str, pg_db: PostgresDatabase
) -> None:
    add_users(pg_db)
    config = police_config(tmp_path, pg_dsn)
    path = config_file(tmp_path, pg_dsn)

    async def scenario() -> None:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as http,
            dashboard(config) as a,
            dashboard(instance(config)) as b,
        ):
            operator, admin = Browser(http), Browser(http)
            assert await operator.login(b, OPERATOR, OPERATOR_PW) == 303
            assert await admin.login(a, ADMIN, ADMIN_PW) == 303
            assert await admin.post(a, f"/api/users/{OPERATOR}/delete") == 200
            assert (await operator.get(b, "/api/me"))[0] == 401
            assert [r[2] for r in session_rows(pg_dsn)] == [ADMIN]

            # the CLI deletes a user in PostgreSQL: their sessions go with the row
            await asyncio.to_thread(UserStore(pg_db).add, "wu", "wu's password", "operator",
                                    language="zh")  # fmt: skip
            wu = Browser(http)
            assert await wu.login(a, "wu", "wu's password") == 303
            done = await asyncio.to_thread(cli, "delete", "wu", "-c", str(path))
            assert done.returncode == 0, done.stderr
            assert (await wu.get(b, "/api/me"))[0] == 401

            # a user row gone any other way: the session ends at its next request
            await asyncio.to_thread(UserStore(pg_db).add, "zhao", "zhao's password", "operator",
                                    language="zh")  # fmt: skip
            zhao = Browser(http)
            assert await zhao.login(b, "zhao", "zhao's password") == 303
            with psycopg.connect(pg_dsn) as conn:
                conn.execute("DELETE FROM users WHERE name = 'zhao'")
            assert (await zhao.get(a, "/api/me"))[0] == 401
            assert "zhao" not in [r[2] for r in session_rows(pg_dsn)]

    asyncio.run(scenario())


def test_without_postgres_users_db_and_memory_as_before(tmp_path: Path) -> None:
    config = police_config(tmp_path, None)
    service = PoliceService(config)
    try:
        users, sessions = accounts(service, config)
        assert sessions is None  # make_app's in-memory SessionStore
        assert users.path == tmp_path / "police" / "users.db"
        assert users.path.stat().st_mode & 0o777 == 0o600
    finally:
        service.close()


# --- the user rules on PostgreSQL ------------------------------------------------------------
@pytest.fixture(params=["users.db", "postgresql"])
def users(request: pytest.FixtureRequest, tmp_path: Path) -> UserStore:
    if request.param == "users.db":
        return UserStore(tmp_path / "users.db")
    return UserStore(request.getfixturevalue("pg_db"))


def test_user_rules_on_both_stores(users: UserStore) -> None:
    users.add("wang", "correct horse", "admin", display_name="王主任", language="zh")
    assert users.count() == 1
    with pytest.raises(UserError, match="exists"):
        users.add("wang", "another one", "operator", language="en")
    user = users.authenticate("wang", "correct horse")
    assert user is not None
    assert (user.display_name, user.role, user.language) == ("王主任", "admin", "zh")
    assert users.authenticate("wang", "wrong password") is None
    assert users.authenticate("nobody", "correct horse") is None
    users.add("li", "operator pw", "operator", language="en")
    with pytest.raises(UserError, match="last admin"):
        users.delete("wang")
    with pytest.raises(UserError, match="last admin"):
        users.set_role("wang", "operator")
    users.set_role("li", "admin")
    users.delete("wang")
    assert [u.name for u in users.all()] == ["li"]
    assert users.set_language("li", "zh").language == "zh"
    before = users.get("li")
    users.set_password("li", "a new password")
    after = users.get("li")
    assert before is not None
    assert after is not None
    assert after.password_changed_at >= before.password_changed_at
    assert users.authenticate("li", "operator pw") is None
    assert users.authenticate("li", "a new password") is not None
    with pytest.raises(UserError, match="no user"):
        users.delete("nobody")
    with pytest.raises(UserError, match="no user"):
        users.set_password("nobody", "long enough")


# --- the database session store's rules ------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_database_sessions_end_when_idle_or_too_old(pg_db: PostgresDatabase) -> None:
    clock = Clock()
    sessions = DbSessionStore(pg_db, idle_s=60, max_s=300, clock=clock, touch_every_s=0)
    session = sessions.create("wang")
    assert session.token != session.csrf
    clock.now += 50
    assert sessions.get(session.token) is not None  # activity
    clock.now += 50
    assert sessions.get(session.token) is not None
    clock.now += 50
    assert sessions.get(session.token, touch=False) is not None  # the stream: not activity
    clock.now += 20
    assert sessions.get(session.token) is None  # 70 s idle
    second = sessions.create("wang")
    for _ in range(7):
        clock.now += 40
        assert sessions.get(second.token) is not None
    clock.now += 40
    assert sessions.get(second.token) is None  # 320 s after login, active or not
    assert sessions.get("forged") is None
    assert sessions.get(None) is None
    with pg_db.read() as tx:
        assert tx.execute("SELECT COUNT(*) AS n FROM sessions").scalar() == 0  # expired go


def test_database_sessions_touch_sparingly_and_keep_at_most_max(pg_db: PostgresDatabase) -> None:
    clock = Clock()
    sessions = DbSessionStore(pg_db, idle_s=600, max_s=3600, clock=clock, max_sessions=3)
    assert sessions.touch_every_s == 30  # min(30 s, idle / 20)
    first = sessions.create("a")
    clock.now += 10
    got = sessions.get(first.token)
    assert got is not None
    assert got.last_seen == first.last_seen  # within 30 s: not written
    clock.now += 25
    got = sessions.get(first.token)
    assert got is not None
    assert got.last_seen == clock.now
    clock.now -= 20  # "b" and "c" were last seen before "a"
    others = [sessions.create("b"), sessions.create("c")]
    clock.now += 40
    others.append(sessions.create("d"))
    assert sessions.get(others[0].token) is None  # the least recently used went for "d"
    assert sessions.get(first.token) is not None
    assert all(sessions.get(s.token) is not None for s in others[1:])


def test_database_sessions_end_user_keeps_the_one_asked_for(pg_db: PostgresDatabase) -> None:
    sessions = DbSessionStore(pg_db, idle_s=60, max_s=300)
    a, b, other = sessions.create("wang"), sessions.create("wang"), sessions.create("li")
    sessions.end_user("wang", keep=a.token)
    assert sessions.get(a.token) is not None
    assert sessions.get(b.token) is None
    assert sessions.get(other.token) is not None
    sessions.end_user("wang")
    assert sessions.get(a.token) is None
    sessions.end(other.token)
    assert sessions.get(other.token) is None


# --- `edgeguard user --police` on PostgreSQL -------------------------------------------------
def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "user", *args, "--police"],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_cli_manages_the_police_users_in_postgres(tmp_path: Path, pg_dsn: str) -> None:
    c = ("-c", str(config_file(tmp_path, pg_dsn)))
    added = cli("add", "zhang", "--role", "admin", "--display-name", "张警官", *c,
                stdin="police pw!\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "postgresql 127.0.0.1" in added.stdout
    assert "password" not in added.stdout  # the DSN's password is never printed
    assert cli("add", "li", *c, stdin="operator pw\n").returncode == 0
    assert "张警官" in cli("list", *c).stdout
    assert cli("role", "li", "admin", *c).returncode == 0
    assert cli("password", "li", *c, stdin="a new password\n").returncode == 0
    assert cli("delete", "zhang", *c).returncode == 0
    last = cli("delete", "li", *c)
    assert (last.returncode, "last admin" in last.stderr) == (1, True)
    db = PostgresDatabase(pg_dsn, max_size=1)
    try:
        store = UserStore(db)
        assert [u.name for u in store.all()] == ["li"]
        assert store.authenticate("li", "a new password") is not None
    finally:
        db.close()
    assert not (tmp_path / "police" / "users.db").exists()  # nothing went to a file
