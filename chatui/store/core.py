"""`Store`: opens an engine, migrates it, and joins the store's parts into one object.

The parts (`ConversationsMixin` …) hold the queries of one concept each; this module holds
what they share: the engine, error translation, and the ownership checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .attachments import AttachmentsMixin
from .battles import BattlesMixin
from .base import InvalidArgument, NotFound, StoreError, check_id
from .engines import Conn, PostgresEngine, open_engine, redact
from .exports import ExportsMixin
from .feedback import FeedbackMixin
from .replicas import ReplicasMixin
from .schema import current_version, migrate
from .search import SearchMixin
from .shares import SharesMixin
from .tree import CONV_COLUMNS, ConversationsMixin
from .turns import TurnsMixin

# A message joined to its conversation, only if that conversation belongs to the user.
_OWN_MSG_SELECT = """
SELECT m.*, f.label AS fb_label, f.reason AS fb_reason, f.comment AS fb_comment,
       c.title AS conv_title, c.system_prompt AS conv_system_prompt
FROM messages m JOIN conversations c ON c.id = m.conversation_id
LEFT JOIN feedback f ON f.message_id = m.id
WHERE m.id = ? AND c.user_id = ?
"""


class Store(ConversationsMixin, TurnsMixin, FeedbackMixin, ExportsMixin, ReplicasMixin,
            SearchMixin, SharesMixin, BattlesMixin, AttachmentsMixin):
    """Users, conversations, the message tree, feedback and replica state, on SQLite or
    PostgreSQL. See the package docstring for the API. Thread-safe; one per process is enough.

    ``target``: a file path, ``sqlite:///PATH``, or ``postgresql://USER:PASSWORD@HOST/DB``.
    ``busy_timeout`` (seconds): SQLite lock wait / PostgreSQL connect timeout.
    ``pool_size``: PostgreSQL connections at most (ignored for SQLite).
    """

    def __init__(self, target: str | os.PathLike, *,
                 on_feedback: Callable[[dict], Any] | None = None,
                 busy_timeout: float = 10.0, synchronous: str = "NORMAL",
                 pool_size: int = 16) -> None:
        self.on_feedback = on_feedback
        self._engine = open_engine(target, busy_timeout=busy_timeout, synchronous=synchronous,
                                   pool_size=pool_size)
        self.engine = self._engine.dialect.name          # "sqlite" | "postgresql"
        if isinstance(self._engine, PostgresEngine):
            self.path: Path | None = None
            self.url = self._engine.url
        else:
            self.path = self._engine.path
            self.url = f"sqlite:///{self.path}"
        try:
            self.applied_migrations = migrate(self._engine)
        except self._engine.Error as e:
            self._engine.close()
            raise self._engine.fail(self._engine.explain(e)) from None
        except BaseException:
            self._engine.close()
            raise

    # -- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Conn]:
        """One write transaction; driver errors become StoreError/InvalidArgument."""
        engine = self._engine
        try:
            with engine.write() as db:
                yield db
        except engine.IntegrityError as e:
            raise InvalidArgument(f"database {engine.name}: {e}") from None
        except engine.Error as e:
            raise StoreError(f"database {engine.name}: write failed: {e}") from None

    @contextmanager
    def _read(self, snapshot: bool = False) -> Iterator[Conn]:
        engine = self._engine
        try:
            with engine.read(snapshot) as db:
                yield db
        except engine.Error as e:
            raise StoreError(f"database {engine.name}: read failed: {e}") from None

    def _stream(self, sql: str, params: Any = ()) -> Iterator[dict]:
        engine = self._engine
        try:
            yield from engine.stream(sql, params)
        except engine.Error as e:
            raise StoreError(f"database {engine.name}: read failed: {e}") from None

    def schema_version(self) -> int:
        """The schema version of the open database (== SCHEMA_VERSION after opening)."""
        with self._read() as db:
            return current_version(db)

    def close(self) -> None:
        """Close every connection (SQLite: writer and per-thread readers; PostgreSQL: pool)."""
        self._engine.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path) if self.path is not None else redact(self.url)!r})"

    # -- ownership checks --------------------------------------------------------------------

    def _own_conversation(self, db: Conn, user_id: str, conv_id: str,
                          lock: bool = False) -> dict:
        """The user's conversation or NotFound; ``lock`` (in a write) serialises its writers."""
        check_id(user_id, "user_id")
        suffix = db.dialect.for_update if lock else ""
        row = db.one(f"SELECT {CONV_COLUMNS} FROM conversations WHERE id = ? AND user_id = ?"
                     + suffix, [conv_id, user_id]) if isinstance(conv_id, str) else None
        if row is None:
            raise NotFound(f"conversation {conv_id!r} not found")
        return row

    def _own_message(self, db: Conn, user_id: str, message_id: str, lock: bool = False) -> dict:
        check_id(user_id, "user_id")
        suffix = db.dialect.for_update_of_conv if lock else ""
        row = db.one(_OWN_MSG_SELECT + suffix, [message_id, user_id]) \
            if isinstance(message_id, str) else None
        if row is None:
            raise NotFound(f"message {message_id!r} not found")
        return row
