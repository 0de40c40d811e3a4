"""Battles: one prompt, two anonymous models answering at once, the user votes. No Gradio.

A turn goes through the same path as a chat answer — `ChatService.respond` for the answer,
the store's one-transaction begin under the per-user limits (`Store.begin_battle_turn`: a
battle turn counts as two answers), heartbeats while it is written, `History.finish` to store
it, complete, stopped or failed — twice, concurrently, and the two streams are merged into one
stream of (side A, side B) snapshots.

The model names never leave this module before the user's vote: views and public dicts name
the sides "Model A" and "Model B" only, and any text shown before the vote (an error, a
notice) has the names masked. After a vote `state`/`vote` carry them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..chat import ChatService, TurnRequest, TurnResult
from ..history import History, Turn
from ..limits import LimitExceeded, SharedLimits
from ..pulse import pulse_of
from ..render import assistant_view
from ..store import InvalidArgument, LimitReached, StoreError
from ..store.battles import BATTLE_REASONS, TIES, WINNERS, arena_owner
from ..streaming import LoadAdaptiveInterval, coalesce, until

log = logging.getLogger(__name__)

SIDE_NAMES = ("Model A", "Model B")
VOTES = {"a": "model_a", "b": "model_b", "tie": "tie", "bothbad": "tie (bothbad)"}
"""Short vote names (API, buttons) → the stored winner (Chatbot Arena's values)."""


class ArenaError(Exception):
    """A sentence for the user: why the arena refused (limits, bad input, nothing to vote)."""


@dataclass
class BattleTurn:
    """A turn being answered; ``sides`` hold the model names: never hand this to a client."""
    battle_id: str
    turn: int
    new_battle: bool
    message: str
    sides: list[dict]
    results: list[TurnResult] = field(default_factory=lambda: [TurnResult(), TurnResult()])


def mask(messages: list[dict], names: tuple[str, ...]) -> list[dict]:
    """The messages with every model name replaced by its side's name ("Model A"…)."""
    pairs = sorted(zip(names, SIDE_NAMES), key=lambda p: -len(p[0]))

    def clean(text):
        if not isinstance(text, str):
            return text
        for name, side in pairs:
            if name:
                text = text.replace(name, side)
        return text

    out = []
    for m in messages:
        m = dict(m, content=clean(m.get("content")))
        if m.get("metadata"):
            m["metadata"] = {k: clean(v) for k, v in m["metadata"].items()}
        out.append(m)
    return out


def branch_view(branch: list[dict]) -> list[dict]:
    """A stored branch as chat messages, without model lines (the sides are anonymous)."""
    out: list[dict] = []
    for m in branch:
        if m["role"] == "user":
            out.append({"role": "user", "content": m["content"]})
            continue
        meta = m.get("meta") or {}
        out += assistant_view(m["content"], m.get("finish_reason"), m.get("error"),
                              m.get("sources") or [], meta.get("notices"),
                              steps=meta.get("steps"), reasoning=meta.get("reasoning"),
                              reasoning_duration=meta.get("reasoning_duration"),
                              max_new_tokens=(m.get("params") or {}).get("max_new_tokens"))
    return out


def _prompt(branch: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in branch if m["content"]]


class BattleService:
    """Runs battles for every session of the app (one instance)."""

    def __init__(self, service: ChatService, store, *, rng: random.Random | None = None,
                 counts_ttl: float = 30.0):
        self.service = service
        self.store = store
        self.settings = service.settings
        self.arena = self.settings.arena
        self.history = History(store, show_model=False,
                               stale_after=self.settings.server.stale_after_seconds)
        limits = self.settings.limits
        self.limits = limits
        self.user_limits = SharedLimits(store, limits.messages_per_minute,
                                        limits.max_concurrent_per_user)
        self.pulse = pulse_of(store).at_most(self.settings.server.heartbeat_seconds)
        self.interval = LoadAdaptiveInterval(base=0.03)
        self.rng = rng or random.Random()
        self._counts: dict[tuple[str, str], int] | None = None
        self._counts_at = 0.0
        self._counts_ttl = counts_ttl

    # -- models ------------------------------------------------------------------------------
    @property
    def models(self) -> list[str]:
        """The arena's models that have a working backend (config order)."""
        wanted = self.arena.models or [m.name for m in self.settings.models]
        return [n for n in dict.fromkeys(wanted) if n in self.service.backends]

    @property
    def available(self) -> bool:
        return self.arena.enabled and len(self.models) >= 2

    def pair_counts(self) -> dict[tuple[str, str], int]:
        now = time.monotonic()
        if self._counts is None or now - self._counts_at > self._counts_ttl:
            self._counts, self._counts_at = self.store.battle_pair_counts(), now
        return self._counts

    def pick_pair(self) -> tuple[str, str]:
        """Two different models at random, in random order (A, B). Pairs with fewer battles
        weigh more: (1 + battles) ** -weight_undersampled (0: every pair alike)."""
        models = self.models
        if len(models) < 2:
            raise ArenaError("The arena needs at least two models that are up.")
        pairs = list(itertools.combinations(sorted(models), 2))
        power = self.arena.weight_undersampled
        counts = self.pair_counts() if power else {}
        weights = [(1 + counts.get(p, 0)) ** -power for p in pairs]
        a, b = self.rng.choices(pairs, weights=weights)[0]
        if self._counts is not None:             # this process's own battles count at once
            self._counts[(a, b)] = self._counts.get((a, b), 0) + 1
        return (a, b) if self.rng.random() < 0.5 else (b, a)

    # -- a turn ------------------------------------------------------------------------------
    def limit_message(self, e: LimitReached) -> str:
        if e.kind == "turns":
            return (f"This battle has reached {e.limit} messages. Start a new battle to "
                    "continue.")
        if e.kind == "concurrent":
            return self.user_limits.busy_message(e.busy) + " (A battle turn is two answers.)"
        return self.user_limits.rate_message(e.retry_after)

    def begin(self, user_id: str, battle_id: str | None, message: str) -> BattleTurn:
        """Store the message on both sides and begin both answers (blocking: run it in a
        thread). `ArenaError` when a limit refuses or the battle cannot go on; `NotFound`
        when ``battle_id`` is not the user's."""
        if not self.available:
            raise ArenaError("The arena is not available.")
        admission = self.user_limits.admission()
        if admission["max_concurrent"] < 2:
            raise ArenaError("The arena needs two answers at once, and the per-user limit is "
                             f"{admission['max_concurrent']}.")
        kwargs: dict = {}
        if battle_id is None:
            a, b = self.pick_pair()
            specs = [self.settings.model(a), self.settings.model(b)]
            kwargs = {"models": (a, b),
                      "backends": tuple(self.service.backend(s.name).type for s in specs),
                      "system_prompts": tuple(s.system_prompt for s in specs)}
        try:
            t = self.store.begin_battle_turn(user_id, battle_id, message,
                                             max_turns=self.limits.max_turns, **admission,
                                             **kwargs)
        except LimitReached as e:
            raise ArenaError(self.limit_message(e)) from None
        except InvalidArgument as e:
            raise ArenaError(str(e).capitalize() + ".") from None
        for side in t["sides"]:
            if side["model"] not in self.service.backends:
                # a follow-up of a model that is gone: the turn fails cleanly on that side
                side["gone"] = True
        return BattleTurn(t["battle_id"], t["turn"], t["new_battle"], message, t["sides"])

    async def stream(self, user_id: str, bt: BattleTurn, stop: asyncio.Event | None = None
                     ) -> AsyncIterator[tuple[list[dict], list[dict], dict]]:
        """Both answers at once: yields (side A chat, side B chat, public info), names
        masked; the last item is what the store holds. Stops (both sides, stored as
        stopped) when ``stop`` is set or the consumer goes away."""
        owner = arena_owner(user_id)
        names = tuple(s["model"] for s in bt.sides)
        shown = [branch_view(s["branch"]) + [{"role": "user", "content": bt.message}]
                 for s in bt.sides]
        info = {"battle_id": bt.battle_id, "turn": bt.turn, "new_battle": bt.new_battle}
        stop = stop or asyncio.Event()
        beats = [self.pulse.answer(owner, _done(s["assistant_message_id"]),
                                   lambda r=r: r.text)
                 for s, r in zip(bt.sides, bt.results)]
        started = [False, False]

        def interval() -> float:
            # Each side's first token goes out at once (time-to-first-token is what users
            # feel): one coalescing interval for both sides would hold the second one back.
            return self.interval() if all(started) else 0.0

        try:
            yield shown[0], shown[1], dict(info, writing=True)
            with self.interval:
                async for snaps in until(coalesce(self._merged(user_id, bt, started),
                                                  interval), stop):
                    yield (mask(shown[0] + snaps[0], names), mask(shown[1] + snaps[1], names),
                           dict(info, writing=True))
        finally:
            for kept in beats:
                kept.close()
            await asyncio.shield(asyncio.to_thread(self._finish, owner, user_id, bt))
        a, b = await asyncio.to_thread(self.views, user_id, bt.battle_id)
        yield a, b, self.public_state(user_id, bt.battle_id)

    async def _merged(self, user_id: str, bt: BattleTurn, started: list[bool]
                      ) -> AsyncIterator[list[list[dict]]]:
        queue: asyncio.Queue = asyncio.Queue()
        latest: list[list[dict]] = [[], []]

        async def side(i: int) -> None:
            s, result = bt.sides[i], bt.results[i]
            try:
                if s.get("gone"):
                    result.finish_reason, result.error = "error", "This model is not available."
                    return
                req = TurnRequest(message=bt.message, history=_prompt(s["branch"]),
                                  model=s["model"], system_prompt=s["system_prompt"])
                async with self.user_limits.generating(user_id, lease=s["lease_id"]):
                    async with asyncio.timeout(self.limits.generation_timeout):
                        async for snap in self.service.respond(req, result):
                            queue.put_nowait((i, snap))
            except LimitExceeded as e:
                result.finish_reason, result.error = "error", str(e)
            except TimeoutError:
                result.finish_reason, result.error = "error", (
                    f"The answer took longer than {self.limits.generation_timeout:.0f} s and "
                    "was cut off.")
            except Exception as e:  # one side's failure must not end the other side
                log.exception("arena side %s failed", "AB"[i])
                result.finish_reason, result.error = "error", f"The model failed: {e}"
            finally:
                queue.put_nowait((i, None))

        tasks = [asyncio.create_task(side(i)) for i in range(2)]
        try:
            done = 0
            while done < 2:
                i, snap = await queue.get()
                if snap is None:
                    done += 1
                    continue
                latest[i] = snap
                started[i] = started[i] or bool(bt.results[i].text)
                yield [list(latest[0]), list(latest[1])]
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)

    def _finish(self, owner: str, user_id: str, bt: BattleTurn) -> None:
        """Store both answers (complete, stopped or failed), then settle an identical pair."""
        for s, result in zip(bt.sides, bt.results):
            turn = Turn(s["conversation_id"], s["user_message_id"], [],
                        assistant_message_id=s["assistant_message_id"])
            try:
                self.history.finish(owner, turn, result, s["model"], s["backend"] or "")
            except StoreError as e:
                log.error("could not store an arena answer: %s", e)
        try:
            self.store.settle_battle_turn(user_id, bt.battle_id, bt.turn)
        except StoreError as e:
            log.error("could not settle arena turn: %s", e)

    # -- reading and voting ------------------------------------------------------------------
    def views(self, user_id: str, battle_id: str) -> tuple[list[dict], list[dict]]:
        """Both sides' chats as stored; names masked until the user has voted."""
        battle = self.store.get_battle(user_id, battle_id)
        for side in ("a", "b"):
            self.store.interrupt_stale(battle[f"conversation_{side}"],
                                       older_than=self.settings.server.stale_after_seconds)
        a, b = (branch_view(x) for x in self.store.battle_branches(user_id, battle_id))
        if battle["revealed"]:
            return a, b
        names = (battle["model_a"], battle["model_b"])
        return mask(a, names), mask(b, names)

    def public_state(self, user_id: str, battle_id: str) -> dict:
        """What a client may know about a battle: no model names before the vote."""
        battle = self.store.get_battle(user_id, battle_id)
        answers = {}
        if battle["turns"]:
            last = battle["turns"][-1]
            for side in ("a", "b"):
                msg = self.store.get_message(arena_owner(user_id), last[f"message_{side}"])
                answers[side] = msg["finish_reason"]
        last = battle["turns"][-1] if battle["turns"] else None
        failed = any(r in ("error", "stopped") for r in answers.values())
        state = {
            "battle_id": battle["id"],
            "turn": last["turn"] if last else 0,
            "writing": any(r is None for r in answers.values()),
            "finish_reason_a": answers.get("a"), "finish_reason_b": answers.get("b"),
            "winner": last["winner"] if last else None,
            "auto_tie": bool(last and last["auto"]),
            # which votes the latest turn still takes
            "votes": [] if not last or last["auto"] or any(r is None for r in answers.values())
            else (["tie", "bothbad"] if failed else list(VOTES)),
            "turns": [{"turn": t["turn"], "winner": t["winner"], "auto_tie": t["auto"]}
                      for t in battle["turns"]],
            "revealed": battle["revealed"],
            "models": ({"model_a": battle["model_a"], "model_b": battle["model_b"]}
                       if battle["revealed"] else None),
        }
        return state

    def vote(self, user_id: str, battle_id: str, turn: int | None, vote: str,
             reason: str | None = None, comment: str | None = None) -> dict:
        """Vote on the latest turn (``turn`` None: whichever is latest); ``vote`` is a key of
        `VOTES` or a stored winner. Returns `public_state`, which now names the models."""
        winner = VOTES.get(vote, vote if vote in WINNERS else None)
        if winner is None:
            raise ArenaError("The vote must be one of: " + ", ".join(VOTES) + ".")
        if reason in ("", None):
            reason = None
        elif reason not in BATTLE_REASONS:
            raise ArenaError("The reason must be one of: " + ", ".join(BATTLE_REASONS) + ".")
        battle = self.store.get_battle(user_id, battle_id)      # NotFound for others
        if not battle["turns"]:
            raise ArenaError("There is nothing to vote on yet.")
        number = battle["turns"][-1]["turn"] if turn in (None, 0) else turn
        try:
            self.store.set_battle_vote(user_id, battle_id, number, winner, reason, comment)
        except InvalidArgument as e:
            text = str(e)
            raise ArenaError(text[0].upper() + text[1:] + ".") from None
        return self.public_state(user_id, battle_id)


__all__ = ["ArenaError", "BattleService", "BattleTurn", "SIDE_NAMES", "TIES", "VOTES",
           "branch_view", "mask"]


def _done(value) -> asyncio.Future:
    """A future already holding `value` (Pulse takes the id of an answer as a future)."""
    fut = asyncio.get_running_loop().create_future()
    fut.set_result(value)
    return fut
