"""Arena battles: two conversations answering the same messages, and a vote per turn.

A battle belongs to one user (``battles.user_id``). Its two sides are ordinary conversations
in the message tree (each answer with its model, backend, sampling params, seed, system
prompt, timings, as any answer), but they are owned by the user's **arena owner**
(`arena_owner`), not the user id itself: the user's chat list, search and chat API then never
show them, because opening a side there would name its model before the vote. Every battle
method checks ``battles.user_id`` first, so one user can neither read nor vote on another's
battle (`NotFound`, the same error as an unknown id).

A turn (1, 2, …) is the user message added to both conversations and the two answers under
it. Its vote (``winner`` ∈ `WINNERS`, optional ``reason`` ∈ `BATTLE_REASONS` and ``comment``)
may be changed until the next turn starts. A side that errored or was stopped cannot be
voted a win, and neither can the other side then; two identical answers are recorded as a tie
(``auto``) as soon as both are finished (`settle_battle_turn`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from .base import (MAX_COMMENT_CHARS, MAX_TITLE_CHARS, InvalidArgument, LimitReached, NotFound,
                   check_id, message_dict, new_id, to_epoch)
from .replicas import _lock_user, _positive, count_message, rate_wait, take_lease

log = logging.getLogger("chatui.store")

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
TIES = ("tie", "tie (bothbad)")
BATTLE_REASONS = ("accuracy", "helpfulness", "clarity", "safety", "other")
SIDES = ("a", "b")

_TURN_COLUMNS = ("turn, message_a, message_b, winner, auto, anony, reason, comment, voted_at, "
                 "vote_delay, created_at")


def arena_owner(user_id: str) -> str:
    """The owner of a user's battle conversations: ``arena:`` + a hash of the user id. No
    sign-in gives such an id (those are ``anon:…`` and ``hf:…``), so nobody can open these
    conversations through the chat."""
    return "arena:" + hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _turn_dict(row: dict) -> dict:
    row = dict(row)
    row["auto"], row["anony"] = bool(row["auto"]), bool(row["anony"])
    return row


class BattlesMixin:
    """Part of `Store`: battles, their turns and votes; the cross-user queries the leaderboard
    and the exports read."""

    # -- ownership ---------------------------------------------------------------------------

    def _own_battle(self, db, user_id: str, battle_id: str, lock: bool = False) -> dict:
        check_id(user_id, "user_id")
        row = db.one("SELECT id, user_id, conversation_a, conversation_b, model_a, model_b, "
                     "created_at, updated_at FROM battles WHERE id = ? AND user_id = ?"
                     + (db.dialect.for_update if lock else ""),
                     [battle_id, user_id]) if isinstance(battle_id, str) else None
        if row is None:
            raise NotFound(f"battle {battle_id!r} not found")
        return row

    @staticmethod
    def _turns(db, battle_id: str) -> list[dict]:
        return [_turn_dict(r) for r in db.rows(
            f"SELECT {_TURN_COLUMNS} FROM battle_turns WHERE battle_id = ? ORDER BY turn",
            [battle_id])]

    # -- a turn ------------------------------------------------------------------------------

    def begin_battle_turn(self, user_id: str, battle_id: str | None, content: str, *,
                          models: tuple[str, str] | None = None,
                          backends: tuple[str | None, str | None] = (None, None),
                          system_prompts: tuple[str, str] = ("", ""),
                          max_turns: int | None = None, max_concurrent: int | None = None,
                          lease_ttl: float = 30.0, per_minute: int | None = None,
                          window: float = 60.0) -> dict:
        """The user message ``content`` on both sides and their two answers, begun (being
        written), in ONE transaction after the per-user limits — as `Store.begin_turn` does
        for one answer; a battle turn counts as two answers: two answers-at-once leases and
        two messages against ``per_minute``. A refusal raises `LimitReached` and writes
        nothing.

        ``battle_id`` None starts a battle between ``models`` (two different names, A then B)
        with their ``backends`` and ``system_prompts``; otherwise the battle's own models and
        system prompts continue, and the previous turn must be finished on both sides.

        Returns ``battle_id``, ``new_battle``, ``turn`` (1-based), ``models`` (A, B) and
        ``sides``: two dicts (A, B) with ``conversation_id``, ``branch`` (messages before the
        new one), ``user_message_id``, ``assistant_message_id``, ``lease_id``, ``model``,
        ``backend``, ``system_prompt``.
        """
        check_id(user_id, "user_id")
        lease_ttl = _positive(lease_ttl, "lease_ttl")
        window = _positive(window, "window")
        if battle_id is None:
            if (not isinstance(models, (tuple, list)) or len(models) != 2
                    or not all(isinstance(m, str) and m for m in models)
                    or models[0] == models[1]):
                raise InvalidArgument("a battle needs two different model names")
        owner, now = arena_owner(user_id), time.time()
        text = str(content or "")
        with self._write() as db:
            _lock_user(db, user_id)
            if battle_id is not None:
                battle = self._own_battle(db, user_id, battle_id, lock=True)
                turns = self._turns(db, battle_id)
                convs = [self._own_conversation(db, owner, battle[f"conversation_{s}"],
                                                lock=True) for s in SIDES]
                branches = [self._branch_of(db, c) for c in convs]
                if turns:
                    last = turns[-1]
                    pending = db.scalar(
                        "SELECT COUNT(*) FROM messages WHERE id IN (?, ?) AND finish_reason "
                        "IS NULL", [last["message_a"], last["message_b"]])
                    if pending:
                        raise InvalidArgument("the previous answers are still being written")
                models = (battle["model_a"], battle["model_b"])
                system_prompts = tuple(c["system_prompt"] for c in convs)
                backends = tuple(next((m["backend"] for m in reversed(b)
                                       if m["role"] == "assistant"), None) for b in branches)
                number = len(turns) + 1
            else:
                battle, convs, branches, number = None, [None, None], [[], []], 1
            if max_turns is not None and max(len(b) for b in branches) >= int(max_turns):
                raise LimitReached("turns", int(max_turns))
            leases: list[str | None] = [None, None]
            if max_concurrent is not None:
                for i in range(2):
                    lease, held = take_lease(db, user_id, max_concurrent, lease_ttl, now)
                    if lease is None:
                        raise LimitReached("concurrent", int(max_concurrent), busy=held)
                    leases[i] = lease
            if per_minute is not None:
                for _ in range(2):
                    if not count_message(db, user_id, per_minute, window, now):
                        raise LimitReached("rate", int(per_minute), retry_after=rate_wait(
                            db, user_id, per_minute, window, now))
            if battle is None:
                battle_id = new_id()
                for uid, kind in ((user_id, "anon"), (owner, "arena")):
                    db.execute("INSERT INTO users (id, kind, created_at, last_seen_at) "
                               "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                               [uid, kind, now, now])
                title = " ".join(text.split())[:MAX_TITLE_CHARS]
                conv_ids = [new_id(), new_id()]
                for i in range(2):
                    db.execute("INSERT INTO conversations (id, user_id, title, model, "
                               "system_prompt, created_at, updated_at) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)",
                               [conv_ids[i], owner, title, models[i], system_prompts[i] or "",
                                now, now])
                db.execute("INSERT INTO battles (id, user_id, conversation_a, conversation_b, "
                           "model_a, model_b, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [battle_id, user_id, *conv_ids, models[0], models[1], now, now])
                parents: list[str | None] = [None, None]
            else:
                conv_ids = [c["id"] for c in convs]
                parents = [c["current_leaf_id"] for c in convs]
                db.execute("UPDATE battles SET updated_at = ? WHERE id = ?", [now, battle_id])
            sides = []
            for i in range(2):
                question, answer = new_id(), new_id()
                db.execute("INSERT INTO messages (id, conversation_id, parent_id, role, "
                           "content, created_at, updated_at) VALUES (?, ?, ?, 'user', ?, ?, ?)",
                           [question, conv_ids[i], parents[i], text, now, now])
                db.execute("INSERT INTO messages (id, conversation_id, parent_id, role, "
                           "content, model, backend, system_prompt, created_at, updated_at, "
                           "heartbeat_at) VALUES (?, ?, ?, 'assistant', '', ?, ?, ?, ?, ?, ?)",
                           [answer, conv_ids[i], question, models[i], backends[i],
                            system_prompts[i] or "", now, now, now])
                db.execute("UPDATE conversations SET current_leaf_id = ?, updated_at = ? "
                           "WHERE id = ?", [answer, now, conv_ids[i]])
                sides.append({"conversation_id": conv_ids[i], "branch": branches[i],
                              "user_message_id": question, "assistant_message_id": answer,
                              "lease_id": leases[i], "model": models[i],
                              "backend": backends[i], "system_prompt": system_prompts[i] or ""})
            db.execute("INSERT INTO battle_turns (battle_id, turn, message_a, message_b, "
                       "created_at) VALUES (?, ?, ?, ?, ?)",
                       [battle_id, number, sides[0]["assistant_message_id"],
                        sides[1]["assistant_message_id"], now])
        return {"battle_id": battle_id, "new_battle": battle is None, "turn": number,
                "models": tuple(models), "sides": sides}

    def settle_battle_turn(self, user_id: str, battle_id: str, turn: int) -> bool:
        """Once both answers of ``turn`` are finished: identical non-empty answers (whitespace
        aside) are recorded as a tie without asking (``auto``). True when that happened."""
        with self._write() as db:
            self._own_battle(db, user_id, battle_id, lock=True)
            row = db.one("SELECT t.winner, a.content AS a_text, b.content AS b_text, "
                         "a.finish_reason AS a_finish, b.finish_reason AS b_finish "
                         "FROM battle_turns t JOIN messages a ON a.id = t.message_a "
                         "JOIN messages b ON b.id = t.message_b "
                         "WHERE t.battle_id = ? AND t.turn = ?", [battle_id, turn])
            if row is None:
                raise NotFound(f"turn {turn!r} of battle {battle_id!r} not found")
            same = " ".join(row["a_text"].split()) == " ".join(row["b_text"].split())
            if (row["winner"] is not None or not same or not row["a_text"].strip()
                    or row["a_finish"] is None or row["b_finish"] is None):
                return False
            now = time.time()
            db.execute("UPDATE battle_turns SET winner = 'tie', auto = 1, voted_at = ?, "
                       "vote_delay = 0 WHERE battle_id = ? AND turn = ?",
                       [now, battle_id, turn])
            db.execute("UPDATE battles SET updated_at = ? WHERE id = ?", [now, battle_id])
        return True

    # -- votes -------------------------------------------------------------------------------

    def set_battle_vote(self, user_id: str, battle_id: str, turn: int, winner: str,
                        reason: str | None = None, comment: str | None = None) -> dict:
        """Vote on the latest turn (a vote can change until the next turn starts). Returns
        the turn as `get_battle` lists it. `InvalidArgument` for an unknown winner or reason,
        an earlier turn, answers still being written, a win after an error or a stop on
        either side, and a win between identical answers."""
        if winner not in WINNERS:
            raise InvalidArgument(f"winner must be one of {WINNERS}, not {winner!r}")
        if reason is not None and reason not in BATTLE_REASONS:
            raise InvalidArgument(f"reason must be one of {BATTLE_REASONS} or None, "
                                  f"not {reason!r}")
        if comment is not None:
            comment = str(comment).strip()[:MAX_COMMENT_CHARS] or None
        if isinstance(turn, bool) or not isinstance(turn, int):
            raise InvalidArgument(f"turn must be a turn number, not {turn!r}")
        with self._write() as db:
            battle = self._own_battle(db, user_id, battle_id, lock=True)
            turns = self._turns(db, battle_id)
            current = next((t for t in turns if t["turn"] == turn), None)
            if current is None:
                raise NotFound(f"turn {turn!r} of battle {battle_id!r} not found")
            if turn != turns[-1]["turn"]:
                raise InvalidArgument("this turn's vote can no longer change: a later turn "
                                      "has started")
            answers = {r["id"]: r for r in db.rows(
                "SELECT id, content, finish_reason, updated_at FROM messages WHERE id IN (?, ?)",
                [current["message_a"], current["message_b"]])}
            a, b = answers[current["message_a"]], answers[current["message_b"]]
            if a["finish_reason"] is None or b["finish_reason"] is None:
                raise InvalidArgument("the answers are still being written")
            if winner not in TIES:
                if {a["finish_reason"], b["finish_reason"]} & {"error", "stopped"}:
                    raise InvalidArgument("an answer failed or was stopped: this turn can only "
                                          "be a tie or both bad")
                if " ".join(a["content"].split()) == " ".join(b["content"].split()):
                    raise InvalidArgument("the two answers are identical: it is a tie")
            # Blind while no vote of the user's has revealed the names (an automatic tie
            # reveals nothing: nobody was asked).
            anony = not any(t["winner"] is not None and not t["auto"] for t in turns)
            now = time.time()
            delay = max(0.0, now - max(a["updated_at"], b["updated_at"]))
            db.execute("UPDATE battle_turns SET winner = ?, auto = 0, anony = ?, reason = ?, "
                       "comment = ?, voted_at = ?, vote_delay = ? "
                       "WHERE battle_id = ? AND turn = ?",
                       [winner, int(anony), reason, comment, now, delay, battle_id, turn])
            db.execute("UPDATE battles SET updated_at = ? WHERE id = ?", [now, battle["id"]])
            row = db.one(f"SELECT {_TURN_COLUMNS} FROM battle_turns WHERE battle_id = ? "
                         "AND turn = ?", [battle_id, turn])
            event = self._vote_event(db, battle, current) if self.on_feedback else None
        if event is not None:
            event.update(row, user_id=user_id, time=now)
            try:
                self.on_feedback(event)
            except Exception:  # a sink must never break voting
                log.exception("on_feedback hook failed for battle %s", battle_id)
        return _turn_dict(row)

    def _vote_event(self, db, battle: dict, turn: dict) -> dict:
        """What a battle vote judged, for the `on_feedback` sink (the Hub dataset push)."""
        event = {"event": "arena_vote", "battle_id": battle["id"],
                 "model_a": battle["model_a"], "model_b": battle["model_b"]}
        for s in SIDES:
            path = [message_dict(r) for r in self._path_rows(
                db, battle[f"conversation_{s}"], turn[f"message_{s}"])]
            event[f"conversation_{s}"] = [{"role": m["role"], "content": m["content"]}
                                          for m in path]
            event[f"system_prompt_{s}"] = path[-1]["system_prompt"] or "" if path else ""
            event[f"params_{s}"] = path[-1]["params"] if path else {}
        return event

    # -- reading one's own battle ------------------------------------------------------------

    def get_battle(self, user_id: str, battle_id: str) -> dict:
        """``id``, ``model_a``, ``model_b``, ``conversation_a``, ``conversation_b``,
        ``created_at``, ``updated_at``, ``turns`` (oldest first: ``turn, message_a,
        message_b, winner, auto, anony, reason, comment, voted_at, vote_delay, created_at``)
        and ``revealed`` (the user has voted on a turn: the names may be shown). The store
        returns the names always; hiding them before the vote is the caller's job."""
        with self._read(snapshot=True) as db:
            battle = self._own_battle(db, user_id, battle_id)
            battle["turns"] = self._turns(db, battle_id)
        battle.pop("user_id")
        battle["revealed"] = any(t["winner"] is not None and not t["auto"]
                                 for t in battle["turns"])
        return battle

    def battle_branches(self, user_id: str, battle_id: str) -> tuple[list[dict], list[dict]]:
        """The current branch of side A and of side B (as `branch` gives them)."""
        owner = arena_owner(user_id)
        with self._read(snapshot=True) as db:
            battle = self._own_battle(db, user_id, battle_id)
            out = []
            for s in SIDES:
                conv = self._own_conversation(db, owner, battle[f"conversation_{s}"])
                out.append(self._branch_of(db, conv))
        return out[0], out[1]

    def list_battles(self, user_id: str, limit: int = 50) -> list[dict]:
        """The user's battles, newest first: ``id, created_at, updated_at, turns, voted``."""
        check_id(user_id, "user_id")
        with self._read() as db:
            return db.rows(
                "SELECT b.id, b.created_at, b.updated_at, COUNT(t.turn) AS turns, "
                "COUNT(t.winner) AS voted FROM battles b "
                "LEFT JOIN battle_turns t ON t.battle_id = b.id WHERE b.user_id = ? "
                "GROUP BY b.id, b.created_at, b.updated_at, b.rowid "
                "ORDER BY b.updated_at DESC, b.rowid DESC LIMIT ?", [user_id, max(0, int(limit))])

    def delete_battle(self, user_id: str, battle_id: str) -> None:
        """The battle, its votes and both conversations."""
        with self._write() as db:
            battle = self._own_battle(db, user_id, battle_id, lock=True)
            db.execute("DELETE FROM conversations WHERE id IN (?, ?)",
                       [battle["conversation_a"], battle["conversation_b"]])

    # -- all users: leaderboard, pair sampling, exports --------------------------------------

    def battle_outcomes(self, since: Any = None, anony_only: bool = True) -> list[tuple]:
        """(model_a, model_b, winner) of every voted turn, oldest first: what the leaderboard
        fits. ``anony_only``: only votes cast while the names were hidden."""
        start = to_epoch(since)
        where = ["t.winner IS NOT NULL"]
        params: list = []
        if anony_only:
            where.append("t.anony = 1")
        if start is not None:
            where.append("t.voted_at >= ?")
            params.append(start)
        with self._read() as db:
            return [tuple(r) for r in db.execute(
                "SELECT b.model_a, b.model_b, t.winner FROM battle_turns t "
                "JOIN battles b ON b.id = t.battle_id WHERE " + " AND ".join(where)
                + " ORDER BY t.voted_at", params).fetchall()]

    def battle_pair_counts(self) -> dict[tuple[str, str], int]:
        """Battles per unordered pair of models (names sorted), all users."""
        out: dict[tuple[str, str], int] = {}
        with self._read() as db:
            for a, b, n in db.execute("SELECT model_a, model_b, COUNT(*) FROM battles "
                                      "GROUP BY model_a, model_b").fetchall():
                key = tuple(sorted((a, b)))
                out[key] = out.get(key, 0) + int(n)
        return out

    def iter_battle_votes(self, since: Any = None, model: str | None = None) -> Iterator[dict]:
        """Every voted battle turn (all users), oldest vote first, with both sides' answers in
        full context: ``battle_id``, ``user_id``, ``turn``, ``model_a``, ``model_b``,
        ``winner``, ``auto``, ``anony``, ``reason``, ``comment``, ``voted_at``, ``vote_delay``,
        and ``side_a``/``side_b``: ``messages`` (root → this turn's answer, as `branch` gives
        them) and ``system_prompt``. ``model``: battles with that model on either side."""
        start = to_epoch(since)
        where, params = ["t.winner IS NOT NULL"], []
        if start is not None:
            where.append("t.voted_at >= ?")
            params.append(start)
        if model is not None:
            where.append("(b.model_a = ? OR b.model_b = ?)")
            params += [model, model]
        sql = ("SELECT t.battle_id, b.user_id, t.turn, b.model_a, b.model_b, t.winner, t.auto, "
               "t.anony, t.reason, t.comment, t.voted_at, t.vote_delay, t.message_a, "
               "t.message_b, b.conversation_a, b.conversation_b FROM battle_turns t "
               "JOIN battles b ON b.id = t.battle_id WHERE " + " AND ".join(where)
               + " ORDER BY t.voted_at, t.rowid")
        with self._read() as db:
            votes = db.rows(sql, params)
        for vote in votes:
            with self._read(snapshot=True) as db:   # one short read per vote
                sides = {}
                for s in SIDES:
                    rows = self._path_rows(db, vote[f"conversation_{s}"], vote[f"message_{s}"])
                    sides[s] = [message_dict(r) for r in rows]
                    conv = db.one("SELECT system_prompt FROM conversations WHERE id = ?",
                                  [vote[f"conversation_{s}"]])
                    sides[f"system_{s}"] = (conv or {}).get("system_prompt") or ""
            if not sides["a"] or not sides["b"]:
                continue                            # deleted meanwhile
            vote["auto"], vote["anony"] = bool(vote["auto"]), bool(vote["anony"])
            for s in SIDES:
                answer = sides[s][-1]
                system = answer["system_prompt"] if answer["system_prompt"] is not None \
                    else sides[f"system_{s}"]
                vote[f"side_{s}"] = {"messages": sides[s], "system_prompt": system or ""}
            yield vote


__all__ = ["BATTLE_REASONS", "TIES", "WINNERS", "BattlesMixin", "arena_owner"]
