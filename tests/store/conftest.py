"""Fixtures for the store tests: real SQLite files under tmp_path."""

from __future__ import annotations

import sqlite3

import pytest

from chatui.store import Store


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "chat.db"


@pytest.fixture
def store(db_path):
    s = Store(db_path)
    yield s
    s.close()


def raw_count(path, table: str) -> int:
    """Count rows with a plain sqlite3 connection (independent of the Store)."""
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def chat(store: Store, user: str, turns=(("hi", "hello"),), *, model="m1", system_prompt="Be brief.",
         **answer_meta):
    """A conversation with user/assistant turns; returns (conv_id, [msg ids in order])."""
    conv = store.create_conversation(user, "t", model=model, system_prompt=system_prompt)
    ids = []
    for question, answer in turns:
        ids.append(store.add_message(user, conv, "user", question))
        ids.append(store.add_message(user, conv, "assistant", answer, **answer_meta))
    return conv, ids
