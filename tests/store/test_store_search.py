"""Full-text search of a user's own conversations, on SQLite (FTS5) and PostgreSQL (tsvector):
titles and message text, ranked, one result per conversation with a snippet, never another
user's words; the index follows every write path and an upgraded database finds its old
messages."""

from __future__ import annotations

import pytest

from chatui.store import Store
from chatui.store.engines import open_engine
from chatui.store.schema import migrate, split_sql
from chatui.store.search import make_snippet, query_terms

from .conftest import chat, raw_execute

A, B = "alice", "bob"


def ids(results):
    return [r["id"] for r in results]


def test_finds_message_text_with_a_snippet_around_the_match(store: Store):
    long = ("Intro words. " * 30 + "Set proxy_read_timeout for the websocket upgrade. "
            + "Closing words. " * 30)
    conv, (q, a) = chat(store, A, [("How do I keep a socket open?", long)])
    other, _ = chat(store, A, [("A recipe for bread", "Flour, water, salt.")])
    found = store.search_conversations(A, "websocket")
    assert ids(found) == [conv]
    hit = found[0]
    assert hit["message_id"] == a and hit["title"] == "t" and hit["title_match"] is False
    assert "websocket" in hit["snippet"] and len(hit["snippet"]) <= 170
    assert hit["snippet"].startswith("…") and hit["snippet"].endswith("…")
    assert ids(store.search_conversations(A, "BREAD")) == [other]     # case-folded


def test_titles_match_and_rank_first(store: Store):
    by_text, _ = chat(store, A, [("paris is lovely", "paris paris paris")])
    by_title = store.create_conversation(A, "Weekend in Paris")
    store.add_message(A, by_title, "user", "plans")
    found = store.search_conversations(A, "paris")
    assert ids(found) == [by_title, by_text]
    assert found[0]["title_match"] and found[0]["snippet"] == ""
    assert not found[1]["title_match"] and "paris" in found[1]["snippet"]


def test_ranking_prefers_the_more_relevant_message(store: Store):
    weak, _ = chat(store, A, [("kubernetes " + "other words " * 40, "ok")])
    strong, _ = chat(store, A, [("kubernetes kubernetes kubernetes", "ok")])
    assert ids(store.search_conversations(A, "kubernetes")) == [strong, weak]


def test_all_words_required_last_one_as_prefix(store: Store):
    both, _ = chat(store, A, [("tuning postgres autovacuum", "ok")])
    one, _ = chat(store, A, [("tuning a guitar", "ok")])
    assert ids(store.search_conversations(A, "tuning autovac")) == [both]
    assert set(ids(store.search_conversations(A, "tuning"))) == {both, one}
    assert ids(store.search_conversations(A, "autovacuum tun")) == [both]
    assert store.search_conversations(A, "tun autovacuum") == []   # only the last is a prefix


def test_one_result_per_conversation_and_limit(store: Store):
    convs = [chat(store, A, [("alpha one", "alpha two"), ("alpha three", "x")])[0]
             for _ in range(5)]
    found = store.search_conversations(A, "alpha")
    assert sorted(ids(found)) == sorted(convs)
    assert len(store.search_conversations(A, "alpha", limit=2)) == 2


@pytest.mark.parametrize("query", ["", "   ", "!!! ??", None, "\"", "AND OR NOT", "*", "a:*",
                                   "'; DROP TABLE messages; --", "NEAR(x y)", "title:foo"])
def test_odd_queries_are_words_not_syntax(store: Store, query):
    chat(store, A, [("AND OR NOT are words here; DROP TABLE too", "ok")])
    found = store.search_conversations(A, query)          # never raises
    assert isinstance(found, list)
    assert raw_execute(store.url, "SELECT COUNT(*) FROM messages")[0][0] == 2


def test_isolation_b_never_finds_a(store: Store):
    a_conv, _ = chat(store, A, [("my secret zebra password", "noted")])
    store.rename_conversation(A, a_conv, "zebra diary")
    b_conv, _ = chat(store, B, [("nothing here", "ok")])
    assert store.search_conversations(B, "zebra") == []
    assert store.search_conversations(B, "secret") == []
    assert ids(store.search_conversations(A, "zebra")) == [a_conv]
    chat(store, B, [("zebra of bob", "ok")])
    assert a_conv not in ids(store.search_conversations(B, "zebra"))


def test_index_follows_every_write_path(store: Store):
    conv, (q, a) = chat(store, A, [("first question", "first answer")])
    store.update_message(A, a, content="rewritten with quasar", finish_reason="stop")
    assert ids(store.search_conversations(A, "quasar")) == [conv]
    assert store.search_conversations(A, "first answer") == []
    turn = store.begin_turn(A, conv, "a nebula question", model="m1")
    assert ids(store.search_conversations(A, "nebula")) == [conv]
    store.heartbeat(A, turn["assistant_message_id"], content="pulsar so far")
    assert ids(store.search_conversations(A, "pulsar")) == [conv]
    store.rename_conversation(A, conv, "Astronomy")
    assert store.search_conversations(A, "astronomy")[0]["title_match"]
    store.delete_conversation(A, conv)
    for word in ("quasar", "nebula", "pulsar", "astronomy"):
        assert store.search_conversations(A, word) == []


def test_upgrade_indexes_existing_messages(db_url):
    engine = open_engine(db_url)
    assert migrate(engine, upto=4) == [1, 2, 3, 4]
    engine.close()
    raw_execute(db_url, "INSERT INTO users (id, kind, created_at, last_seen_at) "
                        "VALUES ('alice', 'anon', 1.0, 1.0)")
    raw_execute(db_url, "INSERT INTO conversations (id, user_id, title, current_leaf_id, "
                        "created_at, updated_at) VALUES ('c1', 'alice', 'Old volcano chat', "
                        "'a1', 1.0, 2.0)")
    raw_execute(db_url, "INSERT INTO messages (id, conversation_id, parent_id, role, content, "
                        "finish_reason, created_at, updated_at) VALUES "
                        "('q1', 'c1', NULL, 'user', 'tell me about basalt', NULL, 1.0, 1.0), "
                        "('a1', 'c1', 'q1', 'assistant', 'basalt is volcanic', 'stop', 1.5, 1.5)")
    with Store(db_url) as s:
        assert 5 in s.applied_migrations
        found = s.search_conversations("alice", "basalt")
        assert ids(found) == ["c1"] and found[0]["message_id"] in ("q1", "a1")
        assert s.search_conversations("alice", "volcano")[0]["title_match"]


def test_split_sql_keeps_trigger_bodies_whole():
    script = """
    CREATE TABLE t (x TEXT);
    CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
        INSERT INTO t2 VALUES (new.x);
        INSERT INTO t3 VALUES (new.x);
    END;
    CREATE INDEX i ON t(x);
    """
    stmts = split_sql(script)
    assert len(stmts) == 3
    assert stmts[1].startswith("CREATE TRIGGER") and stmts[1].endswith("END")
    assert stmts[1].count(";") == 2
    with pytest.raises(ValueError):
        split_sql("CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1;")


def test_query_terms_and_snippet_helpers():
    assert query_terms("Héllo, wörld! foo_bar 42") == ["héllo", "wörld", "foo", "bar", "42"]
    assert query_terms(None) == [] and len(query_terms("w " * 50)) == 8
    text = "x " * 200 + "needle here " + "y " * 200
    snip = make_snippet(text, ["needle"])
    assert "needle" in snip and snip.startswith("…") and snip.endswith("…")
    assert make_snippet("short text", ["zzz"]) == "short text"


def test_rebuild_after_vacuum_keeps_results_right(store: Store):
    keep, _ = chat(store, A, [("walrus facts", "tusks")])
    gone, _ = chat(store, A, [("pelican facts", "beaks")])
    store.delete_conversation(A, gone)
    if store.engine == "sqlite":
        raw_execute(store.url, "VACUUM")
    store.rebuild_search_index()
    assert ids(store.search_conversations(A, "walrus")) == [keep]
    assert store.search_conversations(A, "pelican") == []
    assert ids(store.search_conversations(A, "tusks")) == [keep]
