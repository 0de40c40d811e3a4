"""The two engines: connections, transactions and their errors, behind one small surface.

    engine.write()            -> context: one transaction that serialises with other writers
    engine.read(snapshot=...) -> context: a connection for reads (one snapshot if asked)
    engine.stream(sql, args)  -> iterator of row dicts, fetched in batches (exports)
    engine.close()

Each yields a `Conn`, which runs SQLite-spelled SQL through the engine's `Dialect`.

* `SqliteEngine` (sqlite-utils, a file): WAL, ``foreign_keys=ON``, ``busy_timeout``. All writes
  of this process go through one writer connection guarded by a lock, each in ``BEGIN
  IMMEDIATE`` (writers never dead-lock on a lock upgrade; other processes wait on
  ``busy_timeout``); reads use one connection per thread, concurrently with the writer.
  ``synchronous=NORMAL`` keeps every committed transaction across a process crash
  (``kill -9``); only an OS crash may lose the last ones (``FULL`` rules that out too).
* `PostgresEngine` (psycopg 3 + psycopg_pool): a pool of autocommit connections; writes run in
  an explicit transaction, snapshot reads in ``REPEATABLE READ READ ONLY``, exports through a
  server-side cursor. Writers of one conversation serialise on its row (``FOR UPDATE``).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from .base import InvalidArgument, StoreError, new_id
from .dialect import POSTGRES, SQLITE, Dialect


class Conn:
    """A DB-API connection plus the dialect that turns our SQL into its SQL."""

    __slots__ = ("raw", "dialect")

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw, self.dialect = raw, dialect

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.raw.execute(self.dialect.sql(sql), list(params))

    def rows(self, sql: str, params: Any = ()) -> list[dict]:
        cur = self.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, values)) for values in cur.fetchall()]

    def one(self, sql: str, params: Any = ()) -> dict | None:
        cur = self.execute(sql, params)
        values = cur.fetchone()
        return None if values is None else dict(zip([d[0] for d in cur.description], values))

    def scalar(self, sql: str, params: Any = ()) -> Any:
        values = self.execute(sql, params).fetchone()
        return None if values is None else values[0]


def one_line(err: BaseException) -> str:
    """Driver errors can span lines (DETAIL, HINT): one line for logs and the CLI."""
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip())


def redact(url: str) -> str:
    """A database URL without its password, safe for messages and logs."""
    return re.sub(r"^([a-z0-9+]+://[^:/@]*):[^@]*@", r"\1:***@", url)


def is_postgres_url(target: Any) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def sqlite_path(target: str | os.PathLike) -> str:
    """``sqlite:///relative.db`` / ``sqlite:////abs.db`` / a plain path → a path."""
    text = os.fspath(target)
    if text.startswith("sqlite://"):
        rest = text[len("sqlite://"):]
        if not rest.startswith("/") or rest == "/":
            raise StoreError(f"cannot open database {text}: expected sqlite:///PATH")
        return rest[1:]
    return text


# --------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------

class SqliteEngine:
    dialect = SQLITE
    Error = sqlite3.Error
    IntegrityError = sqlite3.IntegrityError

    def __init__(self, path: str | os.PathLike, *, busy_timeout: float = 10.0,
                 synchronous: str = "NORMAL") -> None:
        if str(path) in ("", ":memory:"):
            raise StoreError(f"cannot open database {str(path)!r}: a file path is required "
                             "(WAL mode and per-thread connections need a real file)")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise InvalidArgument(f"synchronous must be NORMAL, FULL, EXTRA or OFF, "
                                  f"not {synchronous!r}")
        self.path = Path(path).expanduser()
        self.name = str(self.path)
        self._busy_timeout = float(busy_timeout)
        self._synchronous = synchronous.upper()
        self._lock = threading.RLock()
        self._local = threading.local()
        # Weak: a reader dies with its thread (thread-local), close() closes the living ones.
        self._readers: weakref.WeakSet[sqlite_utils.Database] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._closed = False
        self._writer = self._open()

    def fail(self, reason: str) -> StoreError:
        return StoreError(f"cannot open database {self.path}: {reason}")

    def explain(self, err: BaseException) -> str:
        text = str(err)
        if "not a database" in text or "malformed" in text:
            return f"not a SQLite database ({text})"
        if "readonly" in text or "read-only" in text:
            return f"the file or its folder is read-only ({text})"
        if "unable to open" in text:
            folder = self.path.parent
            if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
                return f"permission denied on the file ({text})"
            if not os.access(folder, os.W_OK):
                return f"folder {folder} is not writable ({text})"
        return text

    def _connect(self) -> sqlite_utils.Database:
        conn = sqlite3.connect(str(self.path), timeout=self._busy_timeout,
                               isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            return sqlite_utils.Database(conn, execute_plugins=False)
        except BaseException:
            conn.close()
            raise

    def _open(self) -> sqlite_utils.Database:
        if self.path.is_dir():
            raise self.fail("it is a directory, not a file")
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self.fail(f"cannot create folder {parent}: {e.strerror or e}") from None
        if not parent.is_dir():
            raise self.fail(f"{parent} is not a folder")
        db = None
        try:
            db = self._connect()
            self._enable_wal(db)
            if db.journal_mode != "wal":
                raise self.fail(f"could not switch to WAL mode (got {db.journal_mode!r})")
        except sqlite3.Error as e:
            if db is not None:
                db.close()
            raise self.fail(self.explain(e)) from None
        except StoreError:
            if db is not None:
                db.close()
            raise
        return db

    def _enable_wal(self, db: sqlite_utils.Database) -> None:
        """Outside any transaction (sqlite-utils refuses otherwise). Switching the journal
        mode while another process migrates a new file can fail at once with "database is
        locked" (SQLite does not always call the busy handler for that lock), so retry within
        ``busy_timeout``: replicas starting together all open the file."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                db.enable_wal()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _reader(self) -> sqlite_utils.Database:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = self._connect()
                db.execute("PRAGMA query_only = ON")
            except sqlite3.Error as e:
                raise self.fail(self.explain(e)) from None
            self._local.db = db
            with self._readers_lock:
                self._readers.add(db)
        return db

    @contextmanager
    def write(self) -> Iterator[Conn]:
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self.path} is closed")
            db = self._writer
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise StoreError(f"database {self.path}: cannot start a write: {e}") from None
            try:
                yield Conn(db, SQLITE)
                db.execute("COMMIT")
            except BaseException:
                if db.conn.in_transaction:
                    db.execute("ROLLBACK")
                raise

    @contextmanager
    def read(self, snapshot: bool = False) -> Iterator[Conn]:
        db = self._reader()
        if not snapshot:
            yield Conn(db, SQLITE)
            return
        db.execute("BEGIN")  # a read transaction: one snapshot for every statement in it
        try:
            yield Conn(db, SQLITE)
        finally:
            db.execute("COMMIT")

    def stream(self, sql: str, params: Any = (), batch: int = 500) -> Iterator[dict]:
        # A single statement reads one snapshot; the thread's reader stays usable meanwhile.
        cur = self._reader().execute(sql, list(params))
        cols = [d[0] for d in cur.description]
        while rows := cur.fetchmany(batch):
            for values in rows:
                yield dict(zip(cols, values))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with self._readers_lock:
                readers, self._readers = list(self._readers), weakref.WeakSet()
            for db in readers:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
            self._writer.close()


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

class PostgresEngine:
    dialect = POSTGRES

    def __init__(self, url: str, *, pool_size: int = 16, connect_timeout: float = 10.0) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as e:
            raise StoreError(f"cannot open database {redact(url)}: PostgreSQL needs psycopg 3 "
                             f"and psycopg_pool (pip install 'chatui[postgres]'): {e}") from None
        self.Error = psycopg.Error
        self.IntegrityError = psycopg.IntegrityError
        self.url = url
        self.name = redact(url)
        self._closed = False
        # A plain first connection turns "wrong password / no such database / refused" into one
        # clear line now, instead of a pool timeout later.
        try:
            psycopg.connect(url, connect_timeout=max(1, int(connect_timeout))).close()
        except psycopg.Error as e:
            raise StoreError(f"cannot open database {self.name}: {one_line(e)}") from None
        self.pool = ConnectionPool(url, min_size=1, max_size=max(1, int(pool_size)),
                                   kwargs={"autocommit": True}, timeout=connect_timeout * 3,
                                   name="chatui-store", open=False)
        try:
            self.pool.open(wait=True, timeout=connect_timeout)
        except psycopg.Error as e:
            self.pool.close()
            raise StoreError(f"cannot open database {self.name}: {one_line(e)}") from None

    def fail(self, reason: str) -> StoreError:
        return StoreError(f"cannot open database {self.name}: {reason}")

    def explain(self, err: BaseException) -> str:
        return one_line(err)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.name} is closed")

    @contextmanager
    def write(self) -> Iterator[Conn]:
        self._check_open()
        with self.pool.connection() as raw, raw.transaction():
            yield Conn(raw, POSTGRES)

    @contextmanager
    def read(self, snapshot: bool = False) -> Iterator[Conn]:
        self._check_open()
        with self.pool.connection() as raw:
            if not snapshot:
                yield Conn(raw, POSTGRES)
                return
            # one round trip to open the snapshot (transaction() + SET TRANSACTION take two)
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                yield Conn(raw, POSTGRES)
            except BaseException:
                try:
                    raw.execute("ROLLBACK")
                except self.Error:
                    pass            # a broken connection: the pool discards it
                raise
            raw.execute("COMMIT")

    def stream(self, sql: str, params: Any = (), batch: int = 500) -> Iterator[dict]:
        self._check_open()
        with self.pool.connection() as raw, raw.transaction():
            # server-side cursor: rows arrive batch by batch, not all at once
            with raw.cursor(name=f"chatui_{new_id()}") as cur:
                cur.execute(POSTGRES.sql(sql), list(params))
                cols = None
                while rows := cur.fetchmany(batch):
                    cols = cols or [d.name for d in cur.description]
                    for values in rows:
                        yield dict(zip(cols, values))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.pool.close()


def open_engine(target: str | os.PathLike, *, busy_timeout: float = 10.0,
                synchronous: str = "NORMAL", pool_size: int = 16) -> SqliteEngine | PostgresEngine:
    """A path or ``sqlite:///PATH`` → SQLite; ``postgresql://…`` → PostgreSQL."""
    if is_postgres_url(target):
        return PostgresEngine(str(target), pool_size=pool_size, connect_timeout=busy_timeout)
    if isinstance(target, str) and "://" in target and not target.startswith("sqlite://"):
        raise StoreError(f"cannot open database {redact(target)}: unknown URL scheme "
                         "(use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB)")
    return SqliteEngine(sqlite_path(target), busy_timeout=busy_timeout, synchronous=synchronous)
