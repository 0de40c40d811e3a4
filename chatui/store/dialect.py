"""Where SQLite and PostgreSQL SQL differ: the one place that says so.

Every query in the store is written once, in SQLite's spelling with ``?`` placeholders, and
runs on both engines. What is *the same* on both and therefore used freely: ``ON CONFLICT …
DO UPDATE/DO NOTHING`` upserts with ``excluded.``, ``WITH RECURSIVE``, ``LIMIT ?``, partial
indexes, ``CASE``, ``COALESCE``. What differs is below, as data on a `Dialect`:

* placeholders: ``?`` (sqlite3) vs ``%s`` (psycopg) — `Dialect.sql` rewrites;
* float columns: ``REAL`` is 8 bytes in SQLite but 4 in PostgreSQL, which would round epoch
  timestamps to minutes: migrations say ``{REAL}``;
* binary columns: ``BLOB`` in SQLite, ``BYTEA`` in PostgreSQL (migrations say ``{BLOB}``); both
  drivers take and give ``bytes``;
* insertion order: SQLite tables have an implicit ``rowid``; PostgreSQL tables that are
  ordered by it get a real identity column of that name (``{ROWID}`` in migrations), so
  ``ORDER BY created_at, rowid`` reads the same on both;
* row locks: PostgreSQL needs ``FOR UPDATE`` to serialise writers of one conversation; SQLite
  already serialises every writer (``BEGIN IMMEDIATE``) and has no such clause;
* advisory locks (migrations, per-user limits) exist only in PostgreSQL, for the same reason;
* epoch seconds → UTC day; ``PRAGMA user_version`` (SQLite only, kept for file tools).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

# pg_advisory_*lock(int4, int4) keys: a namespace for this app, then the kind of lock.
_NS = 0x63687475                    # "chtu"
_MIGRATIONS_KEY = 1
_USERS_NS = _NS + 1                 # second key: hashtext(user id)


@dataclass(frozen=True)
class Dialect:
    name: str
    paramstyle: str                 # "qmark" | "format"
    real: str                       # 8-byte float column type
    rowid_column: str               # DDL of an explicit insertion-order column, or ""
    for_update: str                 # suffix locking a selected conversations row
    for_update_of_conv: str         # same, in a query joining conversations AS c
    migration_lock: str | None      # statement run first in every migration transaction
    user_lock: str | None           # statement (one ? = user id) serialising a user's limits
    blob: str = "BLOB"              # binary column type (attachments)

    def sql(self, text: str) -> str:
        """A query in SQLite spelling → this engine's spelling (cached)."""
        return _to_format(text) if self.paramstyle == "format" else text

    def render(self, ddl: str) -> str:
        """A migration template → this engine's DDL."""
        return (ddl.replace("{REAL}", self.real).replace("{ROWID}", self.rowid_column)
                .replace("{BLOB}", self.blob))

    def utc_day(self, column: str) -> str:
        """SQL for epoch seconds in ``column`` → 'YYYY-MM-DD' (UTC)."""
        if self.name == "sqlite":
            return f"date({column}, 'unixepoch')"
        return f"to_char(to_timestamp({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def after_migration(self, version: int) -> str | None:
        return f"PRAGMA user_version = {int(version)}" if self.name == "sqlite" else None


@lru_cache(maxsize=512)
def _to_format(text: str) -> str:
    # Our statements carry no '?' or '%' inside string literals, so a plain rewrite is exact.
    return text.replace("%", "%%").replace("?", "%s")


SQLITE = Dialect(
    name="sqlite", paramstyle="qmark", real="REAL", rowid_column="",
    for_update="", for_update_of_conv="", migration_lock=None, user_lock=None,
)

POSTGRES = Dialect(
    name="postgresql", paramstyle="format", real="DOUBLE PRECISION",
    rowid_column="rowid BIGINT GENERATED ALWAYS AS IDENTITY,",
    for_update=" FOR UPDATE", for_update_of_conv=" FOR UPDATE OF c",
    # Transaction-scoped: released by COMMIT/ROLLBACK, and by the server if the client dies.
    migration_lock=f"SELECT pg_advisory_xact_lock({_NS}, {_MIGRATIONS_KEY})",
    user_lock=f"SELECT pg_advisory_xact_lock({_USERS_NS}, hashtext(?))",
    blob="BYTEA",
)
