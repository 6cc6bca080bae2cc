"""Console users, sessions and the login limit, without a server: scrypt hashes, roles, the last
admin kept, sessions that end when idle or too old, and failed logins that lock a name out."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeguard.web.config import WebConfig
from edgeguard.web.i18n import _TEXT, TEXT
from edgeguard.web.sessions import LoginLimiter, SessionStore
from edgeguard.web.users import UserError, UserStore, check_password, hash_password


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "users.db")


def test_passwords_are_scrypt_hashes_with_their_own_salt() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("scrypt$16384$8$1$")
    assert first != second  # a salt each
    assert "correct horse" not in first
    assert check_password("correct horse", first)
    assert not check_password("correct horsE", first)
    assert not check_password("x", "md5$abc")  # another scheme is never accepted
    assert not check_password("x", "scrypt$broken")


def test_add_authenticate_and_refuse(users: UserStore, tmp_path: Path) -> None:
    users.add("wang", "correct horse", "admin", display_name="王主任", language="zh")
    user = users.authenticate("wang", "correct horse")
    assert user is not None
    assert (user.display_name, user.role, user.language) == ("王主任", "admin", "zh")
    assert user.is_admin
    assert users.authenticate("wang", "wrong password") is None
    assert users.authenticate("nobody", "correct horse") is None
    assert (tmp_path / "users.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("name", "password", "role", "display", "message"),
    [
        ("wang", "short", "admin", "", "8 to 256"),
        ("wang li", "long enough", "admin", "", "user name"),
        ("", "long enough", "admin", "", "user name"),
        ("wang", "long enough", "root", "", "role"),
        ("wang", "long enough", "operator", "a\nb", "control characters"),
    ],
)
def test_bad_user_fields_are_refused(
    users: UserStore, name: str, password: str, role: str, display: str, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        users.add(name, password, role, display_name=display, language="zh")  # type: ignore[arg-type]


def test_duplicates_roles_language_and_the_last_admin(users: UserStore) -> None:
    users.add("wang", "correct horse", "admin", language="zh")
    with pytest.raises(UserError, match="exists"):
        users.add("wang", "another one", "operator", language="en")
    users.add("li", "operator pw", "operator", language="en")
    with pytest.raises(UserError, match="last admin"):
        users.delete("wang")
    with pytest.raises(UserError, match="last admin"):
        users.set_role("wang", "operator")
    users.set_role("li", "admin")
    users.delete("wang")
    assert [u.name for u in users.all()] == ["li"]
    assert users.set_language("li", "zh").language == "zh"
    with pytest.raises(UserError, match="language"):
        users.set_language("li", "fr")  # type: ignore[arg-type]
    users.set_password("li", "a new password")
    assert users.authenticate("li", "operator pw") is None
    assert users.authenticate("li", "a new password") is not None
    with pytest.raises(UserError, match="no user"):
        users.delete("nobody")


def test_sessions_end_when_idle_or_too_old() -> None:
    clock = Clock()
    sessions = SessionStore(idle_s=60, max_s=300, clock=clock)
    session = sessions.create("wang")
    assert session.token != session.csrf
    clock.now += 50
    assert sessions.get(session.token) is session  # activity
    clock.now += 50
    assert sessions.get(session.token) is session
    clock.now += 50
    assert sessions.get(session.token, touch=False) is session  # the live stream: not activity
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


def test_ending_a_users_sessions_keeps_the_one_asked_for() -> None:
    sessions = SessionStore(idle_s=60, max_s=300)
    a, b, other = sessions.create("wang"), sessions.create("wang"), sessions.create("li")
    sessions.end_user("wang", keep=a.token)
    assert sessions.get(a.token) is not None
    assert sessions.get(b.token) is None
    assert sessions.get(other.token) is not None


def test_failed_logins_lock_out_for_a_while() -> None:
    clock = Clock()
    limiter = LoginLimiter(attempts=3, window_s=60, clock=clock)
    keys = ("user:wang", "addr:10.0.0.5")
    for _ in range(3):
        assert not limiter.blocked(*keys)
        assert limiter.attempt(*keys)  # counted before the password is checked
    assert limiter.blocked(*keys)
    assert not limiter.attempt(*keys)
    assert limiter.blocked("user:wang", "addr:10.0.0.9")  # the name, from anywhere
    assert not limiter.blocked("user:li", "addr:10.0.0.9")
    clock.now += 61
    assert not limiter.blocked(*keys)


def test_web_config_defaults_and_tls_pair(tmp_path: Path) -> None:
    config = WebConfig()
    assert (config.host, config.port, config.language) == ("127.0.0.1", 8080, "zh")
    assert not config.https
    assert config.users_path(tmp_path / "edgeguard.db") == tmp_path / "users.db"
    with pytest.raises(ValueError, match="go together"):
        WebConfig(tls_cert=tmp_path / "cert.pem")


def test_every_text_has_both_languages() -> None:
    assert set(TEXT["zh"]) == set(TEXT["en"]) == set(_TEXT)
    assert all(zh and en for zh, en in _TEXT.values())
    assert TEXT["zh"]["kind.panic"] == "紧急求助"
