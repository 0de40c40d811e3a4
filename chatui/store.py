"""Conversations, the message tree and feedback, in one SQLite file (sqlite-utils).

This is the only module in the project that knows SQL. The UI and `chat.py` talk to a `Store`
through the small interface below, so a server database can replace SQLite later without the
callers changing.

Model
-----
* **users** ``id`` (the caller's own stable id: an anonymous browser id or an OAuth name),
  ``name``, ``kind``.
* **conversations** belong to one user; remember ``current_leaf_id`` (the message the UI shows
  the branch up to), ``model`` and ``system_prompt``.
* **messages** form a *tree* through ``parent_id``. Nothing is overwritten: a retry adds a
  sibling assistant message under the same user message, an edit adds a sibling user message
  under the same parent. Roles are ``user`` and ``assistant``; the system prompt lives on the
  conversation and is copied onto every assistant message (what that answer was generated with).
  Assistant messages also carry ``model``, ``backend``, ``params`` (dict), ``finish_reason``
  (``stop`` | ``length`` | ``stopped`` | ``error``), ``error``, ``prompt_tokens``,
  ``completion_tokens``, ``ttft`` and ``duration`` (seconds), ``sources`` (list of dicts).
* **feedback** at most one vote per assistant message (the latest wins), with ``reason``
  (``incorrect`` | ``unhelpful`` | ``unsafe`` | ``other``) and ``comment``, and a **snapshot** of
  what was judged, taken at vote time: the prompt messages (system prompt first when
  non-empty), the completion, model, backend, params and sources.

IDs are ``uuid4().hex`` (122 random bits): safe to show to clients. Timestamps are **epoch
seconds (float, UTC)** everywhere (``created_at``, ``updated_at``).

Ownership
---------
Every method that takes a conversation or message id also takes the acting ``user_id`` and
raises `NotFound` when the id does not exist *or belongs to someone else* (same error, same
message, so ids cannot be probed). Only `feedback_stats`, `latest_comments` and the export
iterators (owner dashboard, CLI) read across users.

API (all methods are thread-safe)
---------------------------------
``Store(path, *, on_feedback=None, busy_timeout=10.0, synchronous="NORMAL")``
    Opens (creating parent folders) and migrates the file. Raises `StoreError`.
    ``on_feedback(event: dict)`` is called after each committed vote change (see
    `chatui.feedback_sync`); its exceptions are logged, never raised.
``close()`` / context manager.

``ensure_user(user_id, name=None, kind=None) -> None``
``create_conversation(user_id, title="", model="", system_prompt="") -> str``
``list_conversations(user_id, limit=200) -> list[dict]``  newest first (by ``updated_at``):
    ``id, title, model, created_at, updated_at``
``get_conversation(user_id, conv_id) -> dict``  ``id, title, model, system_prompt,
    current_leaf_id, created_at, updated_at``
``update_conversation(user_id, conv_id, *, title=None, model=None, system_prompt=None)``
``rename_conversation(user_id, conv_id, title)``
``delete_conversation(user_id, conv_id)``  cascades to messages and feedback.

``add_message(user_id, conv_id, role, content, parent_id=LEAF, **meta) -> str``
    ``parent_id=LEAF`` (default) appends under the current leaf; ``None`` makes a root message
    (editing the first message); any message id of that conversation adds a child there.
    So an edit is ``add_message(u, c, "user", text, parent_id=old["parent_id"])`` and a retry is
    ``add_message(u, c, "assistant", "", parent_id=user_msg_id, model=...)``. The new message
    becomes the current leaf. Assistant messages default ``model``/``system_prompt`` to the
    conversation's.
``update_message(user_id, message_id, **fields)``  when a streamed answer finishes:
    ``content, finish_reason, error, prompt_tokens, completion_tokens, ttft, duration, sources,
    params, model, backend``.
``get_message(user_id, message_id) -> dict``
``branch(user_id, conv_id, leaf_id=None) -> list[dict]``  root → leaf (default: current leaf).
    Each message dict also has ``feedback`` (None or ``{label, reason, comment}``) and
    ``sibling_ids`` (ids of it and its siblings, oldest first: the UI's "< 2/3 >").
``siblings(user_id, message_id) -> list[dict]``  the message and its siblings, oldest first.
``set_current_leaf(user_id, conv_id, message_id, descend=True) -> str``
    With ``descend`` the newest descendant chain below ``message_id`` is followed down to a leaf
    (switching to a sibling shows that sibling's latest continuation); returns the leaf id.

``set_feedback(user_id, message_id, label, reason=None, comment=None) -> None``
    ``label`` True (up), False (down) or None (remove the vote). Assistant messages only.
``get_feedback(user_id, message_id) -> dict | None``  ``label, reason, comment, model,
    context, created_at, updated_at``.

Owner dashboard / export (all users):
``feedback_stats(since=None) -> list[dict]``  ``day`` (UTC ``YYYY-MM-DD``), ``model``, ``up``,
    ``down``; newest day first.
``latest_comments(limit=20) -> list[dict]``
``iter_feedback(since=None, model=None)``  one dict per voted message (``label``, ``reason``,
    ``comment``, ``model``, ``context`` snapshot, ids, times), oldest vote first.
``iter_conversations(since=None, model=None)``  every conversation with all its messages
    (the whole tree) and their votes.
``since`` accepts epoch seconds, ``datetime``/``date`` (naive = UTC) or an ISO-8601 string.

Errors: `StoreError` (cannot open / migrate / write; one line naming the path and the reason),
`NotFound(StoreError, KeyError)`, `InvalidArgument(StoreError, ValueError)`.

Concurrency and durability
--------------------------
WAL mode, ``foreign_keys=ON``, ``busy_timeout``. All writes in this process go through one
writer connection guarded by a lock, each in a ``BEGIN IMMEDIATE`` transaction (so writers
never dead-lock on a lock upgrade and other processes wait on ``busy_timeout``); reads use one
connection per thread, so they run concurrently with the writer. ``synchronous=NORMAL`` (the
default) keeps every committed transaction across a process crash (``kill -9``); only an OS
crash or power loss may lose the last transactions — pass ``synchronous="FULL"`` to rule that
out too, at the cost of an fsync per write.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

log = logging.getLogger(__name__)

__all__ = [
    "LEAF", "FINISH_REASONS", "FEEDBACK_REASONS", "SCHEMA_VERSION",
    "Store", "StoreError", "NotFound", "InvalidArgument", "to_epoch",
]


class StoreError(Exception):
    """The store cannot do what was asked (open, migrate, write). One clear line."""


class NotFound(StoreError, KeyError):
    """No such conversation/message *for this user* (also raised for other users' ids)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "not found"


class InvalidArgument(StoreError, ValueError):
    """A value the store refuses (unknown role, finish_reason, reason, field...)."""


class _Leaf:
    def __repr__(self) -> str:
        return "LEAF"


LEAF: Any = _Leaf()
"""Default ``parent_id`` of `Store.add_message`: append under the conversation's current leaf."""

ROLES = ("user", "assistant")
FINISH_REASONS = ("stop", "length", "stopped", "error")
FEEDBACK_REASONS = ("incorrect", "unhelpful", "unsafe", "other")
MAX_COMMENT_CHARS = 4000
MAX_TITLE_CHARS = 300
MAX_ID_CHARS = 256

# Columns update_message may change, with a converter each.
_UPDATABLE: dict[str, Callable[[Any], Any]] = {
    "content": str,
    "finish_reason": lambda v: v,
    "error": lambda v: None if v is None else str(v),
    "prompt_tokens": lambda v: None if v is None else int(v),
    "completion_tokens": lambda v: None if v is None else int(v),
    "ttft": lambda v: None if v is None else float(v),
    "duration": lambda v: None if v is None else float(v),
    "sources": lambda v: json.dumps(list(v or []), ensure_ascii=False),
    "params": lambda v: json.dumps(dict(v or {}), ensure_ascii=False, sort_keys=True),
    "model": lambda v: None if v is None else str(v),
    "backend": lambda v: None if v is None else str(v),
    "system_prompt": lambda v: None if v is None else str(v),
}
_META_FIELDS = frozenset(_UPDATABLE) - {"content"}

# --------------------------------------------------------------------------------------------
# Schema. Migrations are frozen SQL: never edit a released one, append a new one.
# --------------------------------------------------------------------------------------------

_MIGRATION_1 = """
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    kind          TEXT NOT NULL DEFAULT 'anon',
    created_at    REAL NOT NULL,
    last_seen_at  REAL NOT NULL
);
CREATE TABLE conversations (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title            TEXT NOT NULL DEFAULT '',
    model            TEXT NOT NULL DEFAULT '',
    system_prompt    TEXT NOT NULL DEFAULT '',
    current_leaf_id  TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX conversations_user_updated ON conversations(user_id, updated_at DESC);
CREATE TABLE messages (
    id                 TEXT PRIMARY KEY,
    conversation_id    TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    parent_id          TEXT REFERENCES messages(id) ON DELETE CASCADE,
    role               TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content            TEXT NOT NULL DEFAULT '',
    model              TEXT,
    backend            TEXT,
    params             TEXT NOT NULL DEFAULT '{}',
    system_prompt      TEXT,
    finish_reason      TEXT CHECK (finish_reason IS NULL
                                   OR finish_reason IN ('stop', 'length', 'stopped', 'error')),
    error              TEXT,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    ttft               REAL,
    duration           REAL,
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL
);
CREATE INDEX messages_conversation ON messages(conversation_id, created_at);
CREATE INDEX messages_parent ON messages(parent_id);
CREATE TABLE feedback (
    message_id       TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL,
    model            TEXT,
    label            INTEGER NOT NULL CHECK (label IN (0, 1)),
    context          TEXT NOT NULL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX feedback_conversation ON feedback(conversation_id);
CREATE INDEX feedback_updated ON feedback(updated_at);
"""

# v2: why a vote was cast (reason/comment, for the thumbs-down dialog), the web sources an
# answer was grounded on, and an index for the per-model dashboard.
_MIGRATION_2 = """
ALTER TABLE feedback ADD COLUMN reason TEXT
    CHECK (reason IS NULL OR reason IN ('incorrect', 'unhelpful', 'unsafe', 'other'));
ALTER TABLE feedback ADD COLUMN comment TEXT;
ALTER TABLE messages ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
CREATE INDEX feedback_model_updated ON feedback(model, updated_at);
"""

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial schema", _MIGRATION_1),
    (2, "feedback reason/comment, message sources", _MIGRATION_2),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _split_sql(script: str) -> list[str]:
    """Statements of a migration script (no ';' inside our statements' literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def _new_id() -> str:
    return uuid.uuid4().hex


def to_epoch(value: Any) -> float | None:
    """None | epoch seconds | datetime | date | ISO-8601 string → epoch seconds (naive = UTC)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidArgument(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidArgument(
                f"not an ISO date or datetime: {value!r} (e.g. 2026-11-01 or 2026-11-01T12:00)"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    raise InvalidArgument(f"not a time: {value!r}")


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise InvalidArgument(f"{what} must be a non-empty string of at most {MAX_ID_CHARS} chars")
    return value


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _message_dict(row: dict) -> dict:
    """DB row (messages.* plus optional fb_* columns) → public message dict."""
    msg = {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "parent_id": row["parent_id"],
        "role": row["role"],
        "content": row["content"],
        "model": row["model"],
        "backend": row["backend"],
        "params": _loads(row["params"], {}),
        "system_prompt": row["system_prompt"],
        "finish_reason": row["finish_reason"],
        "error": row["error"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "ttft": row["ttft"],
        "duration": row["duration"],
        "sources": _loads(row.get("sources"), []),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if "fb_label" in row:
        msg["feedback"] = (None if row["fb_label"] is None else
                           {"label": bool(row["fb_label"]), "reason": row["fb_reason"],
                            "comment": row["fb_comment"]})
    return msg


_MSG_SELECT = """
SELECT m.*, f.label AS fb_label, f.reason AS fb_reason, f.comment AS fb_comment
FROM messages m LEFT JOIN feedback f ON f.message_id = m.id
"""

# A message joined to its conversation, only if that conversation belongs to the user.
_OWN_MSG_SELECT = """
SELECT m.*, f.label AS fb_label, f.reason AS fb_reason, f.comment AS fb_comment,
       c.title AS conv_title, c.system_prompt AS conv_system_prompt
FROM messages m JOIN conversations c ON c.id = m.conversation_id
LEFT JOIN feedback f ON f.message_id = m.id
WHERE m.id = ? AND c.user_id = ?
"""

_CONV_COLUMNS = "id, title, model, system_prompt, current_leaf_id, created_at, updated_at"


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------

class Store:
    """SQLite-backed store of users, conversations, the message tree and feedback.

    See the module docstring for the full API. Thread-safe; one instance per process is enough.
    """

    def __init__(self, path: str | os.PathLike, *,
                 on_feedback: Callable[[dict], Any] | None = None,
                 busy_timeout: float = 10.0,
                 synchronous: str = "NORMAL") -> None:
        if str(path) in ("", ":memory:"):
            raise StoreError(f"cannot open database {str(path)!r}: a file path is required "
                             "(WAL mode and per-thread connections need a real file)")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise InvalidArgument(f"synchronous must be NORMAL, FULL, EXTRA or OFF, "
                                  f"not {synchronous!r}")
        self.path = Path(path).expanduser()
        self.on_feedback = on_feedback
        self._busy_timeout = float(busy_timeout)
        self._synchronous = synchronous.upper()
        self._lock = threading.RLock()
        self._local = threading.local()
        # Weak: a reader dies with its thread (thread-local), close() closes the living ones.
        self._readers: weakref.WeakSet[sqlite_utils.Database] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._closed = False
        self._writer = self._open()

    # -- opening -----------------------------------------------------------------------------

    def _fail(self, reason: str) -> StoreError:
        return StoreError(f"cannot open database {self.path}: {reason}")

    def _explain(self, err: sqlite3.Error) -> str:
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
            raise self._fail("it is a directory, not a file")
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._fail(f"cannot create folder {parent}: {e.strerror or e}") from None
        if not parent.is_dir():
            raise self._fail(f"{parent} is not a folder")
        db = None
        try:
            db = self._connect()
            db.enable_wal()  # outside any transaction (sqlite-utils refuses otherwise)
            if db.journal_mode != "wal":
                raise self._fail(f"could not switch to WAL mode (got {db.journal_mode!r})")
            self._migrate(db)
        except sqlite3.Error as e:
            if db is not None:
                db.close()
            raise self._fail(self._explain(e)) from None
        except StoreError:
            if db is not None:
                db.close()
            raise
        return db

    @staticmethod
    def _schema_version(db: sqlite_utils.Database) -> int:
        row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def _migrate(self, db: sqlite_utils.Database, upto: int | None = None) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                   "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
        if self._schema_version(db) > SCHEMA_VERSION:
            raise self._fail(f"schema version {self._schema_version(db)} is newer than this "
                             f"code understands ({SCHEMA_VERSION}); upgrade chatui")
        for version, name, script in MIGRATIONS:
            if upto is not None and version > upto:
                break
            # Re-check inside the write lock: another process may be migrating the same file.
            db.execute("BEGIN IMMEDIATE")
            try:
                if self._schema_version(db) >= version:
                    db.execute("COMMIT")
                    continue
                for stmt in _split_sql(script):
                    db.execute(stmt)
                db.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                           "VALUES (?, ?, ?)", [version, name, time.time()])
                db.execute(f"PRAGMA user_version = {version}")
                db.execute("COMMIT")
                log.info("store %s: applied migration %d (%s)", self.path, version, name)
            except BaseException:
                if db.conn.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        """The schema version of the open file (== SCHEMA_VERSION after opening)."""
        return self._schema_version(self._reader())

    # -- connections -------------------------------------------------------------------------

    def _reader(self) -> sqlite_utils.Database:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = self._connect()
                db.execute("PRAGMA query_only = ON")
            except sqlite3.Error as e:
                raise self._fail(self._explain(e)) from None
            self._local.db = db
            with self._readers_lock:
                self._readers.add(db)
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction on the single writer connection (BEGIN IMMEDIATE)."""
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self.path} is closed")
            db = self._writer
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise StoreError(f"database {self.path}: cannot start a write: {e}") from None
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.conn.in_transaction:
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise InvalidArgument(f"database {self.path}: {exc}") from None
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"database {self.path}: write failed: {exc}") from None
                raise

    # Reads go through ``db.execute`` rather than ``db.query``: query() wraps every statement
    # in a SAVEPOINT (two extra statements), which costs ~30% of a vote's time.
    @staticmethod
    def _rows(db: sqlite_utils.Database, sql: str, params: Any = ()) -> list[dict]:
        cur = db.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, values)) for values in cur.fetchall()]

    @staticmethod
    def _one(db: sqlite_utils.Database, sql: str, params: Any = ()) -> dict | None:
        cur = db.execute(sql, params)
        values = cur.fetchone()
        return None if values is None else dict(zip([d[0] for d in cur.description], values))

    def close(self) -> None:
        """Close every connection (the writer and all per-thread readers)."""
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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- ownership checks --------------------------------------------------------------------

    def _own_conversation(self, db: sqlite_utils.Database, user_id: str, conv_id: str) -> dict:
        _check_id(user_id, "user_id")
        row = self._one(db, f"SELECT {_CONV_COLUMNS} FROM conversations WHERE id = ? AND user_id = ?",
                        [conv_id, user_id]) if isinstance(conv_id, str) else None
        if row is None:
            raise NotFound(f"conversation {conv_id!r} not found")
        return row

    def _own_message(self, db: sqlite_utils.Database, user_id: str, message_id: str) -> dict:
        _check_id(user_id, "user_id")
        row = self._one(
            db, _OWN_MSG_SELECT, [message_id, user_id],
        ) if isinstance(message_id, str) else None
        if row is None:
            raise NotFound(f"message {message_id!r} not found")
        return row

    # -- users -------------------------------------------------------------------------------

    def ensure_user(self, user_id: str, name: str | None = None, kind: str | None = None) -> None:
        """Create the user if new (kind defaults to "anon"), else refresh name/kind/last seen."""
        _check_id(user_id, "user_id")
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO users (id, name, kind, created_at, last_seen_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "name = COALESCE(excluded.name, users.name), "
                "kind = COALESCE(?, users.kind), last_seen_at = excluded.last_seen_at",
                [user_id, name, kind or "anon", now, now, kind],
            )

    # -- conversations -----------------------------------------------------------------------

    def create_conversation(self, user_id: str, title: str = "", model: str = "",
                            system_prompt: str = "") -> str:
        _check_id(user_id, "user_id")
        conv_id, now = _new_id(), time.time()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO users (id, kind, created_at, last_seen_at) "
                       "VALUES (?, 'anon', ?, ?)", [user_id, now, now])
            db.execute(
                "INSERT INTO conversations (id, user_id, title, model, system_prompt, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [conv_id, user_id, (title or "")[:MAX_TITLE_CHARS], model or "",
                 system_prompt or "", now, now],
            )
        return conv_id

    def list_conversations(self, user_id: str, limit: int = 200) -> list[dict]:
        _check_id(user_id, "user_id")
        return self._rows(
            self._reader(),
            "SELECT id, title, model, created_at, updated_at FROM conversations "
            "WHERE user_id = ? ORDER BY updated_at DESC, rowid DESC LIMIT ?",
            [user_id, max(0, int(limit))],
        )

    def get_conversation(self, user_id: str, conv_id: str) -> dict:
        return self._own_conversation(self._reader(), user_id, conv_id)

    def update_conversation(self, user_id: str, conv_id: str, *, title: str | None = None,
                            model: str | None = None, system_prompt: str | None = None) -> None:
        changes = {k: v for k, v in
                   (("title", None if title is None else title[:MAX_TITLE_CHARS]),
                    ("model", model), ("system_prompt", system_prompt)) if v is not None}
        with self._tx() as db:
            self._own_conversation(db, user_id, conv_id)
            if changes:
                sets = ", ".join(f"{k} = ?" for k in changes)
                db.execute(f"UPDATE conversations SET {sets} WHERE id = ?",
                           [*changes.values(), conv_id])

    def rename_conversation(self, user_id: str, conv_id: str, title: str) -> None:
        self.update_conversation(user_id, conv_id, title=str(title))

    def delete_conversation(self, user_id: str, conv_id: str) -> None:
        with self._tx() as db:
            self._own_conversation(db, user_id, conv_id)
            db.execute("DELETE FROM conversations WHERE id = ?", [conv_id])

    # -- messages ----------------------------------------------------------------------------

    def add_message(self, user_id: str, conv_id: str, role: str, content: str,
                    parent_id: str | None = LEAF, **meta: Any) -> str:
        """Add a message; see the module docstring for ``parent_id`` (LEAF / None / an id)."""
        if role not in ROLES:
            raise InvalidArgument(f"role must be one of {ROLES}, not {role!r}")
        unknown = set(meta) - _META_FIELDS
        if unknown:
            raise InvalidArgument(f"unknown message field(s): {', '.join(sorted(unknown))}")
        self._check_finish_reason(meta.get("finish_reason"))
        msg_id, now = _new_id(), time.time()
        with self._tx() as db:
            conv = self._own_conversation(db, user_id, conv_id)
            if parent_id is LEAF:
                parent_id = conv["current_leaf_id"]
            elif parent_id is not None:
                row = self._one(db, "SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?",
                                [parent_id, conv_id]) if isinstance(parent_id, str) else None
                if row is None:
                    raise NotFound(f"message {parent_id!r} not found")
            if role == "assistant":
                meta.setdefault("model", conv["model"] or None)
                meta.setdefault("system_prompt", conv["system_prompt"])
            cols = {k: _UPDATABLE[k](v) for k, v in meta.items()}
            cols.update(id=msg_id, conversation_id=conv_id, parent_id=parent_id, role=role,
                        content=str(content or ""), created_at=now, updated_at=now)
            names = ", ".join(cols)
            marks = ", ".join("?" for _ in cols)
            db.execute(f"INSERT INTO messages ({names}) VALUES ({marks})", list(cols.values()))
            db.execute("UPDATE conversations SET current_leaf_id = ?, updated_at = ? WHERE id = ?",
                       [msg_id, now, conv_id])
        return msg_id

    @staticmethod
    def _check_finish_reason(value: Any) -> None:
        if value is not None and value not in FINISH_REASONS:
            raise InvalidArgument(f"finish_reason must be one of {FINISH_REASONS} or None, "
                                  f"not {value!r}")

    def update_message(self, user_id: str, message_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(_UPDATABLE)
        if unknown:
            raise InvalidArgument(f"unknown message field(s): {', '.join(sorted(unknown))}")
        self._check_finish_reason(fields.get("finish_reason"))
        cols = {k: _UPDATABLE[k](v) for k, v in fields.items()}
        with self._tx() as db:
            self._own_message(db, user_id, message_id)
            if not cols:
                return
            cols["updated_at"] = time.time()
            sets = ", ".join(f"{k} = ?" for k in cols)
            db.execute(f"UPDATE messages SET {sets} WHERE id = ?", [*cols.values(), message_id])

    def get_message(self, user_id: str, message_id: str) -> dict:
        return _message_dict(self._own_message(self._reader(), user_id, message_id))

    def _path_rows(self, db: sqlite_utils.Database, conv_id: str, leaf_id: str) -> list[dict]:
        """Rows root → leaf_id (leaf_id must be in conv_id)."""
        return self._rows(db, """
            WITH RECURSIVE path(id, parent_id, depth) AS (
                SELECT id, parent_id, 0 FROM messages WHERE id = ? AND conversation_id = ?
                UNION ALL
                SELECT m.id, m.parent_id, path.depth + 1
                FROM messages m JOIN path ON m.id = path.parent_id
            )
            SELECT m.*, f.label AS fb_label, f.reason AS fb_reason, f.comment AS fb_comment
            FROM path JOIN messages m ON m.id = path.id
            LEFT JOIN feedback f ON f.message_id = m.id
            ORDER BY path.depth DESC
        """, [leaf_id, conv_id])

    def branch(self, user_id: str, conv_id: str, leaf_id: str | None = None) -> list[dict]:
        db = self._reader()
        db.execute("BEGIN")  # one snapshot for the three reads
        try:
            conv = self._own_conversation(db, user_id, conv_id)
            leaf = leaf_id if leaf_id is not None else conv["current_leaf_id"]
            if leaf is None:
                return []
            rows = self._path_rows(db, conv_id, leaf) if isinstance(leaf, str) else []
            if not rows:
                raise NotFound(f"message {leaf!r} not found")
            children: dict[str | None, list[str]] = {}
            for r in db.execute("SELECT id, parent_id FROM messages WHERE conversation_id = ? "
                                "ORDER BY created_at, rowid", [conv_id]):
                children.setdefault(r[1], []).append(r[0])
        finally:
            db.execute("COMMIT")
        out = []
        for row in rows:
            msg = _message_dict(row)
            msg["sibling_ids"] = children.get(row["parent_id"], [row["id"]])
            out.append(msg)
        return out

    def siblings(self, user_id: str, message_id: str) -> list[dict]:
        db = self._reader()
        row = self._own_message(db, user_id, message_id)
        rows = self._rows(
            db, _MSG_SELECT + " WHERE m.conversation_id = ? AND m.parent_id IS ? "
            "ORDER BY m.created_at, m.rowid", [row["conversation_id"], row["parent_id"]])
        return [_message_dict(r) for r in rows]

    def set_current_leaf(self, user_id: str, conv_id: str, message_id: str,
                         descend: bool = True) -> str:
        with self._tx() as db:
            self._own_conversation(db, user_id, conv_id)
            if not isinstance(message_id, str) or self._one(
                    db, "SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?",
                    [message_id, conv_id]) is None:
                raise NotFound(f"message {message_id!r} not found")
            leaf = message_id
            while descend:
                child = db.execute("SELECT id FROM messages WHERE parent_id = ? "
                                   "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                                   [leaf]).fetchone()
                if child is None:
                    break
                leaf = child[0]
            db.execute("UPDATE conversations SET current_leaf_id = ? WHERE id = ?", [leaf, conv_id])
        return leaf

    # -- feedback ----------------------------------------------------------------------------

    @staticmethod
    def _snapshot(conv: dict, path: list[dict]) -> dict:
        """What a vote judged: prompt messages (system first), the completion, its settings."""
        answer = path[-1]
        system_prompt = (answer["system_prompt"] if answer["system_prompt"] is not None
                         else conv["system_prompt"]) or ""
        prompt = [{"role": "system", "content": system_prompt}] if system_prompt else []
        prompt += [{"role": r["role"], "content": r["content"]} for r in path[:-1]]
        return {
            "prompt": prompt,
            "completion": [{"role": "assistant", "content": answer["content"]}],
            "system_prompt": system_prompt,
            "model": answer["model"],
            "backend": answer["backend"],
            "params": _loads(answer["params"], {}),
            "sources": _loads(answer.get("sources"), []),
            "finish_reason": answer["finish_reason"],
            "conversation_title": conv["title"],
        }

    def set_feedback(self, user_id: str, message_id: str, label: bool | None,
                     reason: str | None = None, comment: str | None = None) -> None:
        """Vote on an assistant message: True up, False down, None removes the vote."""
        if label is not None and not isinstance(label, bool):
            raise InvalidArgument(f"label must be True, False or None, not {label!r}")
        if reason is not None and reason not in FEEDBACK_REASONS:
            raise InvalidArgument(f"reason must be one of {FEEDBACK_REASONS} or None, "
                                  f"not {reason!r}")
        if comment is not None:
            comment = str(comment).strip()[:MAX_COMMENT_CHARS] or None
        now = time.time()
        event: dict | None = None
        with self._tx() as db:
            msg = self._own_message(db, user_id, message_id)
            if msg["role"] != "assistant":
                raise InvalidArgument("only assistant messages can be rated")
            conv_id = msg["conversation_id"]
            if label is None:
                gone = db.execute("DELETE FROM feedback WHERE message_id = ?", [message_id])
                if gone.rowcount:
                    event = {"event": "unvote", "label": None}
            else:
                conv = {"title": msg["conv_title"], "system_prompt": msg["conv_system_prompt"]}
                snapshot = self._snapshot(conv, self._path_rows(db, conv_id, message_id))
                db.execute(
                    "INSERT INTO feedback (message_id, conversation_id, user_id, model, label, "
                    "reason, comment, context, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET "
                    "label = excluded.label, reason = excluded.reason, "
                    "comment = excluded.comment, context = excluded.context, "
                    "model = excluded.model, updated_at = excluded.updated_at",
                    [message_id, conv_id, user_id, msg["model"], int(label), reason, comment,
                     json.dumps(snapshot, ensure_ascii=False), now, now],
                )
                event = {"event": "vote", "label": label, "reason": reason, "comment": comment,
                         **snapshot}
        if event is not None and self.on_feedback is not None:
            event.update(message_id=message_id, conversation_id=conv_id, user_id=user_id,
                         time=now)
            try:
                self.on_feedback(event)
            except Exception:  # a sink must never break voting
                log.exception("on_feedback hook failed for message %s", message_id)

    def get_feedback(self, user_id: str, message_id: str) -> dict | None:
        db = self._reader()
        self._own_message(db, user_id, message_id)
        row = self._one(db, "SELECT label, reason, comment, model, context, created_at, "
                            "updated_at FROM feedback WHERE message_id = ?", [message_id])
        if row is None:
            return None
        row["label"] = bool(row["label"])
        row["context"] = _loads(row["context"], {})
        return row

    # -- owner dashboard ---------------------------------------------------------------------

    def feedback_stats(self, since: Any = None) -> list[dict]:
        """Up/down votes per UTC day and model, newest day first (all users)."""
        start = to_epoch(since)
        rows = self._rows(
            self._reader(),
            "SELECT date(updated_at, 'unixepoch') AS day, COALESCE(model, '') AS model, "
            "SUM(label = 1) AS up, SUM(label = 0) AS down FROM feedback "
            "WHERE updated_at >= ? GROUP BY day, model ORDER BY day DESC, model",
            [start if start is not None else float("-inf")],
        )
        return rows

    def latest_comments(self, limit: int = 20) -> list[dict]:
        """Newest votes that carry a comment (all users), with what they judged."""
        rows = self._rows(
            self._reader(),
            "SELECT message_id, model, label, reason, comment, context, updated_at "
            "FROM feedback WHERE comment IS NOT NULL AND comment != '' "
            "ORDER BY updated_at DESC LIMIT ?", [max(0, int(limit))])
        for r in rows:
            ctx = _loads(r.pop("context"), {})
            users = [m["content"] for m in ctx.get("prompt", []) if m.get("role") == "user"]
            r["label"] = bool(r["label"])
            r["prompt"] = users[-1] if users else ""
            r["completion"] = (ctx.get("completion") or [{}])[0].get("content", "")
        return rows

    # -- export iterators --------------------------------------------------------------------

    def iter_feedback(self, since: Any = None, model: str | None = None) -> Iterator[dict]:
        """Every current vote (latest per message), oldest first; ``since`` = vote time."""
        start = to_epoch(since)
        sql = ("SELECT message_id, conversation_id, model, label, reason, comment, context, "
               "created_at, updated_at FROM feedback WHERE updated_at >= ?")
        params: list[Any] = [start if start is not None else float("-inf")]
        if model is not None:
            sql += " AND model = ?"
            params.append(model)
        cur = self._reader().execute(sql + " ORDER BY updated_at, rowid", params)
        cols = [d[0] for d in cur.description]
        while batch := cur.fetchmany(500):
            for values in batch:
                row = dict(zip(cols, values))
                row["label"] = bool(row["label"])
                row["context"] = _loads(row["context"], {})
                yield row

    def iter_conversations(self, since: Any = None, model: str | None = None) -> Iterator[dict]:
        """Every conversation (all users) with its whole message tree and votes.

        ``since``: conversations updated at or after it. ``model``: conversations whose model,
        or the model of one of whose answers, is ``model``. Messages are oldest first; follow
        ``parent_id`` for the tree and ``current_leaf_id`` for the branch the user last saw.
        """
        start = to_epoch(since)
        sql = "SELECT id FROM conversations c WHERE updated_at >= ?"
        params: list[Any] = [start if start is not None else float("-inf")]
        if model is not None:
            sql += (" AND (c.model = ? OR EXISTS (SELECT 1 FROM messages m WHERE "
                    "m.conversation_id = c.id AND m.model = ?))")
            params += [model, model]
        db = self._reader()
        ids = [r[0] for r in db.execute(sql + " ORDER BY created_at, rowid", params).fetchall()]
        for conv_id in ids:
            conv = self._one(db, f"SELECT {_CONV_COLUMNS}, user_id FROM conversations "
                                 "WHERE id = ?", [conv_id])
            if conv is None:  # deleted meanwhile
                continue
            msgs = self._rows(db, _MSG_SELECT + " WHERE m.conversation_id = ? "
                                                "ORDER BY m.created_at, m.rowid", [conv_id])
            conv["messages"] = [_message_dict(m) for m in msgs]
            yield conv
