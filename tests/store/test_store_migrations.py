"""Schema migrations upgrade an older file in place, keeping its data."""

from __future__ import annotations

import json
import sqlite3

import pytest

from chatui.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError


def make_v1_file(path):
    """A database exactly as version 1 of the schema left it, with data in it."""
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at REAL NOT NULL)")
    version, name, script = MIGRATIONS[0]
    assert version == 1
    conn.executescript(script)
    conn.execute("INSERT INTO schema_migrations VALUES (1, ?, 1.0)", [name])
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO users VALUES ('alice', NULL, 'anon', 1.0, 1.0)")
    conn.execute("INSERT INTO conversations (id, user_id, title, model, system_prompt, "
                 "current_leaf_id, created_at, updated_at) "
                 "VALUES ('c1', 'alice', 'old chat', 'm1', 'sys', 'a1', 1.0, 2.0)")
    conn.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content, "
                 "created_at, updated_at) VALUES ('q1', 'c1', NULL, 'user', 'hi', 1.0, 1.0)")
    conn.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content, model, "
                 "params, system_prompt, finish_reason, created_at, updated_at) VALUES "
                 "('a1', 'c1', 'q1', 'assistant', 'hello', 'm1', '{\"top_p\": 0.9}', 'sys', "
                 "'stop', 2.0, 2.0)")
    ctx = {"prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
           "completion": [{"role": "assistant", "content": "hello"}], "model": "m1"}
    conn.execute("INSERT INTO feedback (message_id, conversation_id, user_id, model, label, "
                 "context, created_at, updated_at) VALUES ('a1', 'c1', 'alice', 'm1', 1, ?, "
                 "3.0, 3.0)", [json.dumps(ctx)])
    conn.commit()
    conn.close()


def columns(path, table):
    conn = sqlite3.connect(str(path))
    try:
        return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    finally:
        conn.close()


def test_upgrade_v1_file_with_data(tmp_path):
    path = tmp_path / "old.db"
    make_v1_file(path)
    assert "reason" not in columns(path, "feedback") and "sources" not in columns(path, "messages")
    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION == 2
        # old data readable through the API
        assert [m["content"] for m in s.branch("alice", "c1")] == ["hi", "hello"]
        old = s.get_message("alice", "a1")
        assert old["params"] == {"top_p": 0.9} and old["sources"] == []
        fb = s.get_feedback("alice", "a1")
        assert (fb["label"], fb["reason"], fb["comment"]) == (True, None, None)
        assert [r["id"] for r in s.list_conversations("alice")] == ["c1"]
        # the new columns work
        s.set_feedback("alice", "a1", False, reason="incorrect", comment="outdated")
        s.update_message("alice", "a1", sources=[{"url": "https://e.org"}])
        assert s.get_feedback("alice", "a1")["reason"] == "incorrect"
        assert s.get_message("alice", "a1")["sources"] == [{"url": "https://e.org"}]
    assert {"reason", "comment"} <= columns(path, "feedback")
    conn = sqlite3.connect(str(path))
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")] == [1, 2]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Store(path) as s:                        # reopening does not re-apply anything
        assert s.schema_version() == 2
        assert s.get_feedback("alice", "a1")["comment"] == "outdated"


def test_fresh_file_gets_latest_schema(db_path):
    with Store(db_path) as s:
        assert s.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(str(db_path))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_newer_schema_is_refused(db_path):
    Store(db_path).close()
    conn = sqlite3.connect(str(db_path))
    conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"schema version 99 is newer"):
        Store(db_path)
