"""Schema migrations upgrade an older database in place, keeping its data, on both engines;
two processes starting at once on an empty database migrate it exactly once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chatui.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError
from chatui.store.dialect import SQLITE
from chatui.store.engines import open_engine
from chatui.store.schema import migrate

from .conftest import raw_execute

ROOT = Path(__file__).resolve().parents[2]


def make_v1_file(path):
    """A database exactly as version 1 of the schema left it, with data in it."""
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at REAL NOT NULL)")
    version, name, script = MIGRATIONS[0]
    assert version == 1
    conn.executescript(SQLITE.render(script))
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
        assert s.schema_version() == SCHEMA_VERSION >= 4
        assert s.applied_migrations == [v for v, _, _ in MIGRATIONS if v > 1]
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
        assert old["meta"] == {}
        s.update_message("alice", "a1", meta={"seed": 7, "notices": ["n"]})
        assert s.get_message("alice", "a1")["meta"] == {"seed": 7, "notices": ["n"]}
    assert {"reason", "comment"} <= columns(path, "feedback")
    conn = sqlite3.connect(str(path))
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")] == \
        [v for v, _, _ in MIGRATIONS]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Store(path) as s:                        # reopening does not re-apply anything
        assert s.schema_version() == SCHEMA_VERSION and s.applied_migrations == []
        assert s.get_feedback("alice", "a1")["comment"] == "outdated"


def test_fresh_file_is_in_wal_mode(db_path):
    with Store(db_path) as s:
        assert s.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(str(db_path))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_fresh_database_gets_latest_schema(db_url):
    with Store(db_url) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.applied_migrations == [v for v, _, _ in MIGRATIONS]
    assert [r[0] for r in raw_execute(db_url, "SELECT version FROM schema_migrations "
                                              "ORDER BY version")] == s.applied_migrations
    if db_url.startswith("postgresql://"):
        # 8-byte floats: a 4-byte REAL would round epoch timestamps to ~2 minutes
        types = dict(raw_execute(db_url, "SELECT column_name, data_type FROM "
                                         "information_schema.columns WHERE table_name = ?",
                                 ["messages"]))
        assert types["created_at"] == types["heartbeat_at"] == "double precision"


def test_upgrade_from_v1_keeps_data_on_both_engines(db_url):
    engine = open_engine(db_url)
    assert migrate(engine, upto=1) == [1]
    engine.close()
    raw_execute(db_url, "INSERT INTO users (id, kind, created_at, last_seen_at) "
                        "VALUES ('alice', 'anon', 1.0, 1.0)")
    raw_execute(db_url, "INSERT INTO conversations (id, user_id, title, current_leaf_id, "
                        "created_at, updated_at) VALUES ('c1', 'alice', 'old', 'a1', 1.0, 2.0)")
    raw_execute(db_url, "INSERT INTO messages (id, conversation_id, parent_id, role, content, "
                        "finish_reason, created_at, updated_at) VALUES "
                        "('q1', 'c1', NULL, 'user', 'hi', NULL, 1.0, 1.0), "
                        "('a1', 'c1', 'q1', 'assistant', 'hello', 'stop', 1.5, 1.5)")
    with Store(db_url) as s:
        assert s.applied_migrations == [v for v, _, _ in MIGRATIONS if v > 1]
        assert [m["content"] for m in s.branch("alice", "c1")] == ["hi", "hello"]
        s.update_message("alice", "a1", meta={"seed": 1}, sources=[{"url": "u"}])
        assert s.get_message("alice", "a1")["meta"] == {"seed": 1}
        assert s.get_message("alice", "a1")["created_at"] == 1.5


CHILD = """
import json, os, sys, time
from chatui.store import Store
go = sys.argv[2]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
s = Store(sys.argv[1])
print(json.dumps(s.applied_migrations), flush=True)
s.close()
"""


def test_processes_starting_at_once_on_an_empty_database_migrate_once(db_url, tmp_path):
    """Replicas starting together: every migration applied by exactly one of them."""
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, db_url, str(go)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    try:
        for p in procs:                               # all imported and waiting
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        go.write_text("go")
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * 4, [err[-1500:] for _, err in outs]
    applied = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    flat = sorted(v for a in applied for v in a)
    assert flat == [v for v, _, _ in MIGRATIONS], applied          # each exactly once
    assert [r[0] for r in raw_execute(db_url, "SELECT version FROM schema_migrations "
                                              "ORDER BY version")] == flat
    with Store(db_url) as s:
        assert s.applied_migrations == []
        s.create_conversation("u")


def test_newer_schema_is_refused(db_url):
    Store(db_url).close()
    raw_execute(db_url, "INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    with pytest.raises(StoreError, match=r"schema version 99 is newer"):
        Store(db_url)
