"""The users of a web console: in their own small SQLite file, or in the police store's
PostgreSQL database when the dashboard has several instances (docs/city-platform.md).

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
from typing import Any, Literal, cast

from edgeguard.filemodes import PRIVATE_DIR, PRIVATE_FILE, make_dir, private_file
from edgeguard.ids import iso_ms, utc_now
from edgeguard.police.db import (
    Database,
    Dialect,
    SqliteTx,  # the store's, on users.db's connections
    Tx,
)
from edgeguard.web.config import LANGUAGES, Language

logger = logging.getLogger(__name__)

Role = Literal["admin", "operator"]
ROLES: tuple[Role, ...] = ("admin", "operator")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MIN_PASSWORD = 8
MAX_PASSWORD = 256
USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
USERS_LOCK = 0x6567_7573  # pg_advisory_xact_lock key of role changes and deletions ("egus")
_COLUMNS = "name, display_name, role, password_hash, language, created_at, password_changed_at"
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


class UsersFile(Database):
    """users.db as a Database: a connection per operation (the CLI, the daemon and the receiver
    may open the file at once), SQLite's rollback journal as it always had (it takes the
    file's mode), writes under BEGIN IMMEDIATE so that a check and its change are one step."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[Tx]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteTx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        with self._connect() as conn:
            yield SqliteTx(conn)

    def close(self) -> None:
        """Nothing stays open between operations."""


class UserStore:
    """The users table: in users.db, its own SQLite file (a single station: the control room,
    one police receiver), or in the police store's database (PostgreSQL: its tables `users`
    and `sessions`, made by the police migrations, shared by every dashboard instance).
    Every call blocks on the database: callers run it in a thread."""

    def __init__(self, where: Path | Database) -> None:
        self.path: Path | None = None
        if isinstance(where, Database):
            self.db = where  # the police schema: its sessions table goes with the users
            self._sessions_table = True
        else:
            self.path = where
            make_dir(where.parent, PRIVATE_DIR)
            # made private before SQLite opens it: its rollback journal takes the file's mode
            private_file(where, PRIVATE_FILE)
            self.db = UsersFile(where)
            self._sessions_table = False
            with self.db.write() as tx:
                tx.execute(_SCHEMA)
        self.where = self.db.name  # for messages: the file, or the server and database

    def add(
        self, name: str, password: str, role: Role, *, display_name: str = "", language: Language
    ) -> User:
        _check_user_fields(name, role, language, display_name)
        check_new_password(password)
        hashed = hash_password(password)  # ~50 ms: not inside the transaction
        now = iso_ms(utc_now())
        with self.db.write() as tx:
            added = tx.execute(
                f"INSERT INTO users ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, display_name or name, role, hashed, language, now, now),
            ).rows
        if not added:
            raise UserError(f"user {name!r} exists already")
        logger.info("console user %s added (%s)", name, role)
        return self._get(name)

    def get(self, name: str) -> User | None:
        row = self._row(name)
        return _user(row) if row is not None else None

    def _row(self, name: str) -> dict[str, Any] | None:
        tx: Tx
        with self.db.read() as tx:
            sql = f"SELECT {_COLUMNS} FROM users WHERE name = ?"  # noqa: S608
            return tx.execute(sql, (name,)).one()

    def _get(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        return user

    def all(self) -> list[User]:
        with self.db.read() as tx:
            rows = tx.execute(f"SELECT {_COLUMNS} FROM users ORDER BY name").rows  # noqa: S608
        return [_user(row) for row in rows]

    def count(self) -> int:
        with self.db.read() as tx:
            return int(tx.execute("SELECT COUNT(*) AS n FROM users").scalar())

    def authenticate(self, name: str, password: str) -> User | None:
        row = self._row(name)
        if row is None:
            check_password(password, _dummy_hash())  # the same time as a wrong password
            return None
        return _user(row) if check_password(password, str(row["password_hash"])) else None

    def set_password(self, name: str, password: str) -> User:
        """Every session of the user that logged in before this ends at its next request
        (the sessions' rule: password changed since the login)."""
        check_new_password(password)
        hashed = hash_password(password)
        now = iso_ms(utc_now())
        self._update(name, "password_hash = ?, password_changed_at = ?", (hashed, now))
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
        with self.db.write() as tx:
            self._lock(tx)
            if role != "admin":
                self._keep_an_admin(tx, name)
            self._update_in(tx, name, "role = ?", (role,))
        logger.info("console user %s is now %s", name, role)
        return self._get(name)

    def delete(self, name: str) -> None:
        """Delete a user; in the police database their sessions go in the same transaction
        (elsewhere a session whose user is gone ends at its next request)."""
        with self.db.write() as tx:
            self._lock(tx)
            self._keep_an_admin(tx, name)
            if tx.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise UserError(f"no user {name!r}")
            if self._sessions_table:
                tx.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
        logger.info("console user %s deleted", name)

    def _lock(self, tx: Tx) -> None:
        """Role changes and deletions one at a time (SQLite's BEGIN IMMEDIATE already does
        that): two instances must not each remove one of the last two admins."""
        if self.db.dialect == "postgresql":
            tx.execute("SELECT pg_advisory_xact_lock(?)", (USERS_LOCK,))

    @staticmethod
    def _keep_an_admin(tx: Tx, name: str) -> None:
        admins = [r["name"] for r in tx.execute("SELECT name FROM users WHERE role = 'admin'").rows]
        if admins == [name]:
            raise UserError(f"{name!r} is the last admin: make another admin first")

    def _update(self, name: str, assignments: str, values: tuple[str, ...]) -> None:
        with self.db.write() as tx:
            self._update_in(tx, name, assignments, values)

    @staticmethod
    def _update_in(tx: Tx, name: str, assignments: str, values: tuple[str, ...]) -> None:
        changed = tx.execute(
            f"UPDATE users SET {assignments} WHERE name = ?",  # noqa: S608 (fixed text)
            (*values, name),
        ).rowcount
        if changed == 0:
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


def _user(row: dict[str, Any]) -> User:
    return User(
        name=str(row["name"]),
        display_name=str(row["display_name"]),
        role=cast(Role, row["role"]),
        language=cast(Language, row["language"]),
        password_changed_at=str(row["password_changed_at"]),
    )
