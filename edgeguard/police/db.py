"""One database interface for the police store, on SQLite or PostgreSQL.

The store writes its SQL once, with ``?`` placeholders and what both engines understand
(``ON CONFLICT``, ``RETURNING``, quoted ``"by"``); rows come back as dicts. SQLite is the
embedded default of a single station: one connection (WAL, ``synchronous=FULL``) behind a lock,
so the store may be used from a worker thread. PostgreSQL is the city platform's: a psycopg 3
connection pool (connections checked before use, so a restarted server costs one failed
transaction, not a broken pool), each transaction on a connection of its own.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal

Dialect = Literal["sqlite", "postgresql"]
Params = Sequence[Any]


class Result:
    """What a statement returned: its rows as dicts, and how many rows it changed."""

    def __init__(self, rows: list[dict[str, Any]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def one(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        """The first column of the first row (None without rows)."""
        row = self.one()
        return None if row is None else next(iter(row.values()))


class Tx(ABC):
    """A transaction (or a read) in progress."""

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> Result: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    @abstractmethod
    def executemany_returning(self, sql: str, rows: Sequence[Params]) -> list[list[dict[str, Any]]]:
        """One statement run for each row (pipelined on PostgreSQL): each run's RETURNING rows."""


class Database(ABC):
    dialect: Dialect
    name: str  # for messages: the file, or the server and database

    @abstractmethod
    def write(self) -> AbstractContextManager[Tx]:
        """One transaction, committed on exit, rolled back on an error."""

    @abstractmethod
    def read(self) -> AbstractContextManager[Tx]:
        """Statements that only read."""

    @abstractmethod
    def close(self) -> None: ...


# --- SQLite --------------------------------------------------------------------------------
def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class SqliteTx(Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> Result:
        cursor = self.conn.cursor()
        cursor.row_factory = _dict_row
        cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description is not None else []
        return Result(rows, cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self.conn.executemany(sql, rows)

    def executemany_returning(self, sql: str, rows: Sequence[Params]) -> list[list[dict[str, Any]]]:
        return [self.execute(sql, row).rows for row in rows]


class SqliteDatabase(Database):
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row  # for tools using .conn; a Tx returns dicts
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self._lock = threading.RLock()

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """BEGIN IMMEDIATE: another receiver on the same file waits (up to 5 s)."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteTx(self.conn)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._lock:
            yield SqliteTx(self.conn)

    def close(self) -> None:
        with self._lock:
            self.conn.close()


# --- PostgreSQL ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _PgTx(Tx):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> Result:
        cursor = self.conn.execute(to_pyformat(sql), tuple(params))
        rows = cursor.fetchall() if cursor.description is not None else []
        return Result(rows, cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(to_pyformat(sql), [tuple(r) for r in rows])

    def executemany_returning(self, sql: str, rows: Sequence[Params]) -> list[list[dict[str, Any]]]:
        if not rows:
            return []
        with self.conn.cursor() as cursor:
            cursor.executemany(to_pyformat(sql), [tuple(r) for r in rows], returning=True)
            return [list(result.fetchall()) for result in cursor.results()]


class PostgresDatabase(Database):
    dialect: Dialect = "postgresql"

    def __init__(
        self, dsn: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 10
    ) -> None:
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        info = psycopg.conninfo.conninfo_to_dict(dsn)
        self.name = (
            f"postgresql {info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"
        )
        self.dsn = dsn
        self.pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"row_factory": dict_row, "autocommit": False},
            check=ConnectionPool.check_connection,
            name="edgeguard-police",
            open=False,
        )
        self.pool.open(wait=True, timeout=timeout)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with self.pool.connection() as conn, conn.transaction():
            yield _PgTx(conn)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self.pool.connection() as conn:
            yield _PgTx(conn)

    def close(self) -> None:
        self.pool.close()
