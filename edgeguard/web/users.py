"""The users of a web console, in their own small SQLite file.

Passwords are hashed with scrypt (hashlib; N=2^14, r=8, p=1: ~16 MB and ~50 ms per check), a
random 16-byte salt each, stored as ``scrypt$N$r$p$salt$hash`` (base64). Checking a name that
does not exist costs the same as a wrong password, so response times do not tell which names
exist."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import functools
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from edgeguard.filemodes import PRIVATE_DIR, PRIVATE_FILE, make_dir, private_file
from edgeguard.ids import iso_ms, utc_now
from edgeguard.web.config import LANGUAGES, Language

logger = logging.getLogger(__name__)

Role = Literal["admin", "operator"]
ROLES: tuple[Role, ...] = ("admin", "operator")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MIN_PASSWORD = 8
MAX_PASSWORD = 256
USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    language TEXT NOT NULL,
    created_at TEXT NOT NULL,
    password_changed_at TEXT NOT NULL
)
"""


class UserError(ValueError):
    """A user operation that cannot be done; the message is for the person who asked."""


@dataclass(frozen=True)
class User:
    name: str
    display_name: str
    role: Role
    language: Language
    password_changed_at: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def recorded_name(self) -> str:
        """How this user's actions go into logs and acks: the name, and the login if other."""
        if self.display_name == self.name:
            return self.name[:100]
        return f"{self.display_name} ({self.name})"[:100]

    def public(self) -> dict[str, str]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "role": self.role,
            "language": self.language,
        }


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
        return hmac.compare_digest(actual, base64.b64decode(digest))
    except (ValueError, TypeError):
        logger.warning("a stored password hash is malformed")
        return False


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


@functools.cache
def _big_blocks_mapped() -> None:
    """scrypt takes 16 MB per check. glibc raises its mmap threshold once such a block is freed,
    so later ones come from the heap and stay in the daemon's RSS (+16 MB a login, measured).
    Fixing the threshold at glibc's default (128 KB) keeps big blocks mapped and unmapped."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    _big_blocks_mapped()
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=32
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_new_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


class UserStore:
    """The users table. Each call opens its own connection: callers run it in a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        make_dir(path.parent, PRIVATE_DIR)
        # made private before SQLite opens it: its rollback journal takes the file's mode
        private_file(path, PRIVATE_FILE)
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one operation: committed (or rolled back) and closed."""
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def add(
        self, name: str, password: str, role: Role, *, display_name: str = "", language: Language
    ) -> User:
        _check_user_fields(name, role, language, display_name)
        check_new_password(password)
        now = iso_ms(utc_now())
        try:
            with self._connect() as conn:
                conn.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, display_name or name, role, hash_password(password), language, now, now),
                )
        except sqlite3.IntegrityError as exc:
            raise UserError(f"user {name!r} exists already") from exc
        logger.info("console user %s added (%s)", name, role)
        return self._get(name)

    def get(self, name: str) -> User | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        return _user(row) if row is not None else None

    def _get(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        return user

    def all(self) -> list[User]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM users ORDER BY name").fetchall()
        return [_user(row) for row in rows]

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def authenticate(self, name: str, password: str) -> User | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            check_password(password, _dummy_hash())  # the same time as a wrong password
            return None
        return _user(row) if check_password(password, str(row["password_hash"])) else None

    def set_password(self, name: str, password: str) -> User:
        check_new_password(password)
        self._update(name, "password_hash = ?, password_changed_at = ?",
                     (hash_password(password), iso_ms(utc_now())))  # fmt: skip
        logger.info("console user %s: password changed", name)
        return self._get(name)

    def set_language(self, name: str, language: Language) -> User:
        if language not in LANGUAGES:
            raise UserError(f"language is one of {', '.join(LANGUAGES)}")
        self._update(name, "language = ?", (language,))
        return self._get(name)

    def set_role(self, name: str, role: Role) -> User:
        if role not in ROLES:
            raise UserError(f"role is one of {', '.join(ROLES)}")
        if role != "admin":
            self._keep_an_admin(name)
        self._update(name, "role = ?", (role,))
        logger.info("console user %s is now %s", name, role)
        return self._get(name)

    def delete(self, name: str) -> None:
        self._keep_an_admin(name)
        with self._connect() as conn:
            if conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise UserError(f"no user {name!r}")
        logger.info("console user %s deleted", name)

    def _keep_an_admin(self, name: str) -> None:
        with self._connect() as conn:
            admins = [r[0] for r in conn.execute("SELECT name FROM users WHERE role = 'admin'")]
        if admins == [name]:
            raise UserError(f"{name!r} is the last admin: make another admin first")

    def _update(self, name: str, assignments: str, values: tuple[str, ...]) -> None:
        with self._connect() as conn:
            cursor = conn.execute(
                f"UPDATE users SET {assignments} WHERE name = ?",  # noqa: S608 (fixed text)
                (*values, name),
            )
            if cursor.rowcount == 0:
                raise UserError(f"no user {name!r}")


def _check_user_fields(name: str, role: str, language: str, display_name: str) -> None:
    if not USER_NAME.match(name):
        raise UserError("a user name is 1-64 letters, digits, '.', '_', '@' or '-'")
    if role not in ROLES:
        raise UserError(f"role is one of {', '.join(ROLES)}")
    if language not in LANGUAGES:
        raise UserError(f"language is one of {', '.join(LANGUAGES)}")
    if len(display_name) > 100 or any(ord(c) < 32 or ord(c) == 127 for c in display_name):
        raise UserError("a display name has at most 100 characters and no control characters")


def _user(row: sqlite3.Row) -> User:
    return User(
        name=str(row["name"]),
        display_name=str(row["display_name"]),
        role=cast(Role, row["role"]),
        language=cast(Language, row["language"]),
        password_changed_at=str(row["password_changed_at"]),
    )
