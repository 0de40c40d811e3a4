"""Schema and migrations, run on both engines and recorded in ``schema_migrations``.

Migrations are frozen: never edit a released one, append a new one. They are templates in
SQLite's spelling with `Dialect` tokens (``{REAL}``, ``{ROWID}``, ``{BLOB}``); rendered for SQLite
they are exactly the SQL that shipped.

Each migration runs in its own transaction that first takes the migration lock (SQLite: the
write lock of ``BEGIN IMMEDIATE``; PostgreSQL: ``pg_advisory_xact_lock``, as DDL is
transactional there), re-reads the version and only then applies it. So two processes that
start at once against an empty database apply every migration exactly once, and a process
killed mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import logging
import re
import time

from .engines import Conn

log = logging.getLogger("chatui.store")

_MIGRATION_1 = """
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    kind          TEXT NOT NULL DEFAULT 'anon',
    created_at    {REAL} NOT NULL,
    last_seen_at  {REAL} NOT NULL
);
CREATE TABLE conversations (
    {ROWID}
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title            TEXT NOT NULL DEFAULT '',
    model            TEXT NOT NULL DEFAULT '',
    system_prompt    TEXT NOT NULL DEFAULT '',
    current_leaf_id  TEXT,
    created_at       {REAL} NOT NULL,
    updated_at       {REAL} NOT NULL
);
CREATE INDEX conversations_user_updated ON conversations(user_id, updated_at DESC);
CREATE TABLE messages (
    {ROWID}
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
    ttft               {REAL},
    duration           {REAL},
    created_at         {REAL} NOT NULL,
    updated_at         {REAL} NOT NULL
);
CREATE INDEX messages_conversation ON messages(conversation_id, created_at);
CREATE INDEX messages_parent ON messages(parent_id);
CREATE TABLE feedback (
    {ROWID}
    message_id       TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL,
    model            TEXT,
    label            INTEGER NOT NULL CHECK (label IN (0, 1)),
    context          TEXT NOT NULL,
    created_at       {REAL} NOT NULL,
    updated_at       {REAL} NOT NULL
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

# v3: per-answer extras that are shown again on reload but are not columns of their own:
# web-search steps and notices, the sampling seed, the variant of the answer (continued…).
_MIGRATION_3 = """
ALTER TABLE messages ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';
"""

# v4: state shared by replicas. An answer being generated (finish_reason NULL) carries the
# time its writer last reported in, so a reader can tell a dead writer's answer from a live
# one; per-user limits live here (leases that expire, message times for the per-minute rate)
# so they hold across replicas and a dead replica never locks a user out.
_MIGRATION_4 = """
ALTER TABLE messages ADD COLUMN heartbeat_at {REAL};
CREATE INDEX messages_generating ON messages(conversation_id)
    WHERE finish_reason IS NULL AND role = 'assistant';
CREATE TABLE generation_leases (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    acquired_at  {REAL} NOT NULL,
    expires_at   {REAL} NOT NULL
);
CREATE INDEX generation_leases_user ON generation_leases(user_id, expires_at);
CREATE TABLE rate_events (
    user_id  TEXT NOT NULL,
    at       {REAL} NOT NULL
);
CREATE INDEX rate_events_user_at ON rate_events(user_id, at);
"""

# v5 (issue 11): full-text search of a user's own conversations, engine-specific (a dict
# by dialect name: the two engines' full-text machinery has nothing in common). SQLite:
# FTS5 tables over messages.content and conversations.title as *external content* (the
# text is not stored twice), kept in step by triggers, so every write path (add_message,
# begin_turn, heartbeat, update_message, cascading deletes, and writers added later) updates
# the index in its own transaction without knowing it exists; 'rebuild' indexes the rows an
# older database already has. PostgreSQL: GIN expression indexes on to_tsvector('simple',
# …), maintained by the server itself (no triggers); building them indexes old rows. The
# 'simple' configuration and unicode61 both fold case without stemming, so the same words
# find the same messages on both engines. PostgreSQL indexes the first 100,000 characters
# of a message (a tsvector is capped at 1 MB; a longer one would fail the INSERT).
# Also v5 (issue 11): share links, each a snapshot of one branch taken when it was shared
# (see shares.py). The owner's id is kept only to list and revoke; deleting the conversation
# deletes its links.
_SHARES = """
CREATE TABLE shares (
    {ROWID}
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    title            TEXT NOT NULL DEFAULT '',
    model            TEXT NOT NULL DEFAULT '',
    messages         TEXT NOT NULL,
    created_at       {REAL} NOT NULL
);
CREATE INDEX shares_user ON shares(user_id, created_at);
CREATE INDEX shares_conversation ON shares(conversation_id);
"""
_MIGRATION_5 = {
    "sqlite": """
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content='messages', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
WHEN old.content IS NOT new.content BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
END;
CREATE VIRTUAL TABLE conversations_fts USING fts5(
    title, content='conversations', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversations_fts(rowid, title) VALUES (new.rowid, new.title);
END;
CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
    INSERT INTO conversations_fts(conversations_fts, rowid, title) VALUES ('delete', old.rowid, old.title);
END;
CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations
WHEN old.title IS NOT new.title BEGIN
    INSERT INTO conversations_fts(conversations_fts, rowid, title) VALUES ('delete', old.rowid, old.title);
    INSERT INTO conversations_fts(rowid, title) VALUES (new.rowid, new.title);
END;
INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild');
""" + _SHARES,
    "postgresql": """
CREATE INDEX messages_search ON messages
    USING GIN (to_tsvector('simple', left(content, 100000)));
CREATE INDEX conversations_search ON conversations USING GIN (to_tsvector('simple', title));
""" + _SHARES,
}

# v6 (issue 12): arena battles. A battle is two ordinary conversations (side A and side B,
# each message with its full context as every answer has) owned by the battle's user, and a
# vote per turn. `auto`: identical answers, recorded as a tie without asking; `anony`: the
# vote was cast while the model names were still hidden; `vote_delay`: seconds from the
# later of the two answers' last token to the vote.
_MIGRATION_6 = """
CREATE TABLE battles (
    {ROWID}
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_a  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    conversation_b  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    model_a         TEXT NOT NULL,
    model_b         TEXT NOT NULL,
    created_at      {REAL} NOT NULL,
    updated_at      {REAL} NOT NULL,
    CHECK (model_a <> model_b)
);
CREATE INDEX battles_user ON battles(user_id, created_at);
CREATE INDEX battles_pair ON battles(model_a, model_b);
CREATE TABLE battle_turns (
    {ROWID}
    battle_id   TEXT NOT NULL REFERENCES battles(id) ON DELETE CASCADE,
    turn        INTEGER NOT NULL,
    message_a   TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    message_b   TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    winner      TEXT CHECK (winner IS NULL
                            OR winner IN ('model_a', 'model_b', 'tie', 'tie (bothbad)')),
    auto        INTEGER NOT NULL DEFAULT 0,
    anony       INTEGER NOT NULL DEFAULT 1,
    reason      TEXT,
    comment     TEXT,
    voted_at    {REAL},
    vote_delay  {REAL},
    created_at  {REAL} NOT NULL,
    PRIMARY KEY (battle_id, turn)
);
CREATE INDEX battle_turns_voted ON battle_turns(voted_at) WHERE winner IS NOT NULL;
"""

# v7 (issue 13): files sent with a message, kept beside its conversation. An image keeps its
# re-encoded bytes (what the model got) and a small preview (what the chat shows); a document
# keeps no file, only its extracted text as chunks with their pages (`text_index`, JSON), which
# later questions in the conversation search again. Owned through the conversation.
_MIGRATION_7 = """
CREATE TABLE attachments (
    {ROWID}
    id               TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    message_id       TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('image', 'document')),
    name             TEXT NOT NULL,
    mime             TEXT NOT NULL,
    size             INTEGER NOT NULL,
    data             {BLOB},
    preview          {BLOB},
    text_index       TEXT,
    meta             TEXT NOT NULL DEFAULT '{}',
    created_at       {REAL} NOT NULL
);
CREATE INDEX attachments_conversation ON attachments(conversation_id, kind);
CREATE INDEX attachments_message ON attachments(message_id)
"""

# v8: who set a conversation's title, so a title follows an edit of the first question unless
# the user chose it: 'auto' (the first question's first words), 'model' (written by the model,
# titles.py), 'user' (a rename). NULL: a title from before v8 (or a copy: share, battle);
# whether the user chose it is unknown, so it follows only while it is the first words.
_MIGRATION_8 = """
ALTER TABLE conversations ADD COLUMN title_source TEXT
    CHECK (title_source IS NULL OR title_source IN ('auto', 'model', 'user'))
"""

MIGRATIONS: list[tuple[int, str, str | dict[str, str]]] = [
    (1, "initial schema", _MIGRATION_1),
    (2, "feedback reason/comment, message sources", _MIGRATION_2),
    (3, "message meta (steps, notices, seed)", _MIGRATION_3),
    (4, "generation heartbeats, leases and rate events", _MIGRATION_4),
    (5, "full-text search of conversations, share links", _MIGRATION_5),
    (6, "arena battles and per-turn votes", _MIGRATION_6),
    (7, "attachments: images and documents sent with messages", _MIGRATION_7),
    (8, "conversation title source (first words, model, user)", _MIGRATION_8),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_CREATE_LEDGER = ("CREATE TABLE IF NOT EXISTS schema_migrations ("
                  "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {REAL} NOT NULL)")


_TRIGGER_START = re.compile(r"\s*CREATE\s+(?:TEMP\w*\s+)?TRIGGER\b", re.IGNORECASE)
_TRIGGER_END = re.compile(r"\s*END\s*$", re.IGNORECASE)


def split_sql(script: str) -> list[str]:
    """Statements of a migration script (no ';' inside our statements' literals).

    A ``CREATE TRIGGER … BEGIN …; …; END`` is one statement although its body holds ';':
    its pieces are joined back up to the piece that is just ``END``.
    """
    out: list[str] = []
    trigger: str | None = None
    for piece in script.split(";"):
        if trigger is not None:
            trigger += ";" + piece
            if _TRIGGER_END.match(piece):
                out.append(trigger.strip())
                trigger = None
        elif piece.strip():
            if _TRIGGER_START.match(piece):
                trigger = piece
            else:
                out.append(piece.strip())
    if trigger is not None:
        raise ValueError("unterminated CREATE TRIGGER (no END) in a migration script")
    return out


def current_version(db: Conn) -> int:
    return int(db.scalar("SELECT MAX(version) FROM schema_migrations") or 0)


def _locked(db: Conn) -> None:
    if db.dialect.migration_lock:
        db.execute(db.dialect.migration_lock)


def migrate(engine, upto: int | None = None) -> list[int]:
    """Bring the database to SCHEMA_VERSION (or ``upto``); returns the versions applied here.

    Raises the engine's `fail` error for a database newer than this code.
    """
    with engine.write() as db:
        _locked(db)
        db.execute(db.dialect.render(_CREATE_LEDGER))
        found = current_version(db)
    if found > SCHEMA_VERSION:
        raise engine.fail(f"schema version {found} is newer than this code understands "
                          f"({SCHEMA_VERSION}); upgrade chatui")
    applied = []
    for version, name, script in MIGRATIONS:
        if upto is not None and version > upto:
            break
        if version <= found:
            continue
        with engine.write() as db:
            _locked(db)                      # another process may be migrating right now
            if current_version(db) >= version:
                continue
            if isinstance(script, dict):         # one script per engine (v5)
                script = script[db.dialect.name]
            for stmt in split_sql(db.dialect.render(script)):
                db.execute(stmt)
            db.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                       "VALUES (?, ?, ?)", [version, name, time.time()])
            if extra := db.dialect.after_migration(version):
                db.execute(extra)
        applied.append(version)
        log.info("store %s: applied migration %d (%s)", engine.name, version, name)
    return applied
