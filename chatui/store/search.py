"""Full-text search of one user's own conversations: titles and message text, ranked.

    store.search_conversations(user_id, "websocket timeout", limit=20)
    -> [{"id", "title", "model", "created_at", "updated_at", "message_id", "snippet",
         "title_match", "score"}, …]

One result per conversation, best first: conversations whose *title* matches come first,
then by the relevance of their best-matching message (SQLite: FTS5 ``bm25``; PostgreSQL:
``ts_rank``), then the most recently updated. ``message_id``/``snippet`` name that best
message and a short plain-text excerpt around the first matched word (empty when only the
title matched). The snippet is plain text: the UI escapes it and marks `query_terms` itself.

The user's words become a query here, never raw syntax: runs of letters and digits, each
quoted, all required (AND), the last one also as a prefix (search as you type). Nothing of
the user's text reaches SQL except as a bound parameter.

Where the engines differ is the `_ENGINE` table below and migration 5 (`schema.py`): FTS5
external-content tables kept by triggers on SQLite, GIN expression indexes on PostgreSQL.
Both index case-folded words without stemming ('simple' / unicode61).

Isolation: every query joins ``conversations`` and filters ``user_id = ?`` in SQL, and the
final read of the conversations does again, so another user's words can never come back.

SQLite's index points at ``messages.rowid``, and ``VACUUM`` may renumber the rowids of a
table without an INTEGER PRIMARY KEY: after a VACUUM of the file, call
`rebuild_search_index` (the app itself never vacuums).
"""

from __future__ import annotations

import re
from typing import Any

from .base import check_id

MAX_TERMS = 8
MAX_TERM_CHARS = 64
SNIPPET_CHARS = 160
CANDIDATES = 1000          # matching messages of the user ranked at most (see below)
_WORD = re.compile(r"[^\W_]+")

# Per engine: the best-matching message per conversation (top `limit` conversations), and the
# matching titles. Placeholders: messages (query, user_id, limit; SQLite: candidates (query,
# user_id) and rank (query, lowest and highest rowid)), titles (query, user_id, limit). Scores: higher
# is better on both.
_ENGINE: dict[str, dict[str, str]] = {
    "sqlite": {
        # bm25 costs about a microsecond per matched row, and a word in nearly every message
        # of every user matches them all (50 ms at 40,000). So, first, the user's
        # CANDIDATES most recent matching messages, without ranking: FTS5 walks its index in
        # rowid order (CROSS JOIN keeps it the outer loop) and stops there. Then bm25 only
        # over the rowid range those candidates span (other users' rows inside it are ranked
        # too, and dropped). Below CANDIDATES matches the ranking is exact.
        "candidates": f"""
            SELECT f.rowid AS rid, m.conversation_id AS cid
            FROM messages_fts f CROSS JOIN messages m ON m.rowid = f.rowid
            CROSS JOIN conversations c ON c.id = m.conversation_id
            WHERE messages_fts MATCH ? AND c.user_id = ?
            ORDER BY f.rowid DESC LIMIT {CANDIDATES}
        """,
        "rank": """
            SELECT rowid AS rid, bm25(messages_fts) AS rank FROM messages_fts
            WHERE messages_fts MATCH ? AND rowid BETWEEN ? AND ?
        """,
        "titles": """
            WITH hits AS MATERIALIZED (
                SELECT rowid AS rid, bm25(conversations_fts) AS rank
                FROM conversations_fts WHERE conversations_fts MATCH ?
            )
            SELECT c.id AS cid, -hits.rank AS score
            FROM hits JOIN conversations c ON c.rowid = hits.rid
            WHERE c.user_id = ?
            ORDER BY score DESC LIMIT ?
        """,
    },
    "postgresql": {
        # First in the search's own read transaction. The planner prices to_tsvector at 100
        # operator costs, far below re-parsing a message, so once statistics say a word is in
        # most messages it picks a sequential scan that re-parses every one (measured: 600 ms
        # for 40,000 messages after VACUUM ANALYZE, 40 ms through the GIN index).
        "setup": "SET LOCAL enable_seqscan = off",
        # The expressions repeat the index definitions of migration 5 exactly, so the GIN
        # indexes answer the @@ (an index on an expression is only used for that expression).
        # ts_rank re-parses each message (the index holds no positions to rank from), ~10 µs
        # a message: a word in nearly every message would cost 20,000 of them. So only the
        # user's CANDIDATES most recent matching messages are ranked; below that number the
        # ranking is exact, above it a word that common ranks nothing much anyway.
        "messages": f"""
            SELECT cid, mid, content, score FROM (
                SELECT DISTINCT ON (cand.cid) cand.cid, cand.mid, cand.content,
                       ts_rank(to_tsvector('simple', left(cand.content, 100000)),
                               to_tsquery('simple', ?1)) AS score
                FROM (
                    SELECT m.conversation_id AS cid, m.id AS mid, m.content AS content,
                           m.created_at AS created_at
                    FROM messages m JOIN conversations c ON c.id = m.conversation_id
                    WHERE to_tsvector('simple', left(m.content, 100000))
                          @@ to_tsquery('simple', ?1) AND c.user_id = ?2
                    ORDER BY m.created_at DESC LIMIT {CANDIDATES}
                ) cand
                ORDER BY cand.cid, score DESC, cand.created_at
            ) best ORDER BY score DESC LIMIT ?3
        """,
        "titles": """
            SELECT c.id AS cid,
                   ts_rank(to_tsvector('simple', c.title), to_tsquery('simple', ?1)) AS score
            FROM conversations c
            WHERE to_tsvector('simple', c.title) @@ to_tsquery('simple', ?1) AND c.user_id = ?2
            ORDER BY score DESC LIMIT ?3
        """,
    },
}


def query_terms(query: Any) -> list[str]:
    """The words searched for: lower-cased runs of letters/digits, at most MAX_TERMS."""
    if not isinstance(query, str):
        return []
    return [w[:MAX_TERM_CHARS] for w in _WORD.findall(query.lower())][:MAX_TERMS]


def _match_expr(engine: str, terms: list[str]) -> str:
    """Terms → the engine's query syntax: all words required, the last also as a prefix.
    Terms hold only letters and digits, so quoting them is exact on both engines."""
    if engine == "sqlite":
        parts = [f'"{t}"' for t in terms]
        parts[-1] += "*"
        return " AND ".join(parts)
    parts = [f"'{t}'" for t in terms]
    parts[-1] += ":*"
    return " & ".join(parts)


def _positional(sql: str, params: list) -> tuple[str, list]:
    """``?1``-style numbered placeholders (used where one value appears twice) → plain ``?``
    with the values repeated in order, so `Dialect.sql` handles them like any query."""
    order: list[int] = []

    def repl(m: re.Match) -> str:
        order.append(int(m.group(1)) - 1)
        return "?"

    text = re.sub(r"\?(\d+)", repl, sql)
    return (text, [params[i] for i in order]) if order else (sql, params)


def make_snippet(content: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """A plain-text excerpt of ``content`` around the first occurrence of any term."""
    text = " ".join((content or "").split())
    if len(text) <= width:
        return text
    low = text.lower()
    hits = [i for i in (low.find(t) for t in terms) if i >= 0]
    at = min(hits) if hits else 0
    start = max(0, at - width // 3)
    if start:
        space = text.find(" ", start)           # begin on a word
        start = space + 1 if 0 <= space < at else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > at else end
    return ("…" if start else "") + text[start:end].strip() + ("…" if end < len(text) else "")


class SearchMixin:
    """Part of `Store`: `search_conversations`. Needs ``_read`` and ``engine``."""

    def search_conversations(self, user_id: str, query: str, limit: int = 20) -> list[dict]:
        """The user's conversations matching ``query`` (titles and message text), best first;
        see the module docstring. An empty or word-less query gives []."""
        check_id(user_id, "user_id")
        terms = query_terms(query)
        limit = max(0, min(int(limit), 200))
        if not terms or not limit:
            return []
        sql = _ENGINE[self.engine]
        expr = _match_expr(self.engine, terms)
        with self._read(snapshot=True) as db:
            if sql.get("setup"):
                db.execute(sql["setup"])
            found = (self._sqlite_best(db, sql, expr, user_id, limit)
                     if self.engine == "sqlite" else
                     db.rows(*_positional(sql["messages"], [expr, user_id, limit])))
            titled = db.rows(*_positional(sql["titles"], [expr, user_id, limit]))
            ids = list(dict.fromkeys([r["cid"] for r in titled] + [r["cid"] for r in found]))
            if not ids:
                return []
            marks = ", ".join("?" for _ in ids)
            convs = {r["id"]: r for r in db.rows(
                "SELECT id, title, model, created_at, updated_at FROM conversations "
                f"WHERE user_id = ? AND id IN ({marks})", [user_id, *ids])}
        best = {r["cid"]: r for r in found}
        title_score = {r["cid"]: float(r["score"] or 0) for r in titled}
        out = []
        for cid in ids:
            conv = convs.get(cid)
            if conv is None:                    # deleted between the reads, or not theirs
                continue
            msg = best.get(cid)
            out.append({
                **conv,
                "message_id": msg["mid"] if msg else None,
                "snippet": make_snippet(msg["content"], terms) if msg else "",
                "title_match": cid in title_score,
                "score": float(msg["score"] or 0) if msg else title_score.get(cid, 0.0),
            })
        out.sort(key=lambda r: (r["title_match"], r["score"], r["updated_at"]), reverse=True)
        return out[:limit]

    def rebuild_search_index(self) -> None:
        """Re-index every message and title from the tables (SQLite, e.g. after VACUUM;
        PostgreSQL's indexes need nothing: a no-op there)."""
        if self.engine != "sqlite":
            return
        with self._write() as db:
            db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
            db.execute("INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild')")

    @staticmethod
    def _sqlite_best(db, sql: dict, expr: str, user_id: str, limit: int) -> list[dict]:
        """SQLite's two steps (see `_ENGINE`): candidates, then bm25 over their range →
        the best message of each of the top ``limit`` conversations: cid, mid, content,
        score (higher is better)."""
        cands = db.rows(sql["candidates"], [expr, user_id])
        if not cands:
            return []
        conv_of = {r["rid"]: r["cid"] for r in cands}
        best: dict[str, tuple[float, int]] = {}           # cid -> (rank, rid); lower rank wins
        for r in db.rows(sql["rank"], [expr, min(conv_of), max(conv_of)]):
            cid = conv_of.get(r["rid"])
            if cid is not None and (cid not in best or r["rank"] < best[cid][0]):
                best[cid] = (r["rank"], r["rid"])
        top = sorted(best.items(), key=lambda kv: kv[1][0])[:limit]
        marks = ", ".join("?" for _ in top)
        rows = {r["rid"]: r for r in db.rows(
            f"SELECT rowid AS rid, id, content FROM messages WHERE rowid IN ({marks})",
            [rid for _, (_, rid) in top])}
        return [{"cid": cid, "mid": rows[rid]["id"], "content": rows[rid]["content"],
                 "score": -rank} for cid, (rank, rid) in top if rid in rows]
