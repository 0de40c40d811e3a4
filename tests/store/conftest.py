"""Fixtures for the store tests: every engine-neutral test runs on a real SQLite file AND on a
real PostgreSQL database (a throwaway cluster for the session, one database per test).

    store      an open Store on the engine of the current parameter
    db_url     where that store lives: a file path (SQLite) or a postgresql:// URL
    db_path    a SQLite file path, for the tests that are about files (paths, WAL, upgrades)
"""

from __future__ import annotations

import sqlite3

import pytest

from chatui.store import Store
from tests.pgcluster import PgCluster

ENGINES = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=ENGINES)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield str(tmp_path / "chat.db")
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "chat.db"


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def raw_connect(target):
    """A connection independent of the Store: sqlite3 for a path, psycopg for a URL."""
    target = getattr(target, "url", None) if isinstance(target, Store) else target
    target = str(target)
    if target.startswith("postgresql://"):
        import psycopg

        return psycopg.connect(target, autocommit=True)
    return sqlite3.connect(target.removeprefix("sqlite:///"), isolation_level=None)


def raw_execute(target, sql: str, params=()) -> list[tuple]:
    """Run one statement outside the Store (``?`` placeholders on both engines)."""
    conn = raw_connect(target)
    try:
        if isinstance(conn, sqlite3.Connection):
            return conn.execute(sql, list(params)).fetchall()
        cur = conn.execute(sql.replace("?", "%s"), list(params))
        return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def raw_count(target, table: str) -> int:
    """Count rows with an independent connection (not the Store's)."""
    return raw_execute(target, f"SELECT COUNT(*) FROM {table}")[0][0]


def chat(store: Store, user: str, turns=(("hi", "hello"),), *, model="m1", system_prompt="Be brief.",
         **answer_meta):
    """A conversation with user/assistant turns; returns (conv_id, [msg ids in order])."""
    conv = store.create_conversation(user, "t", model=model, system_prompt=system_prompt)
    ids = []
    for question, answer in turns:
        ids.append(store.add_message(user, conv, "user", question))
        ids.append(store.add_message(user, conv, "assistant", answer, **answer_meta))
    return conv, ids
