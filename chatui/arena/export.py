"""Arena battles as training data: Chatbot Arena's pairwise layout, and DPO/KTO rows.

Rows come from `Store.iter_battle_votes` (every voted battle turn, all users) through
filters a trainer can trust (`BattleFilter`):

* a vote cast less than ``min_vote_seconds`` after the later answer's last token is dropped
  (faster than reading: noise); automatic ties (identical answers) are not votes and stay;
* a prompt one user already asked (same text up to this turn, either side) counts once: the
  first vote on it is kept;
* ``redact``: e-mail addresses and phone numbers in message text and comments become
  ``[email]`` / ``[phone]`` (`redact_text`).

Formats:

* ``pairwise`` — one row per voted turn, Chatbot Arena's conversations layout: ``model_a``,
  ``model_b``, ``winner`` (``model_a | model_b | tie | tie (bothbad)``), ``conversation_a``,
  ``conversation_b`` (role/content messages up to and including this turn's answer),
  ``turn``, ``tstamp`` (vote time, epoch seconds), ``anony`` (cast while the names were
  hidden), plus ``question_id`` (battle id), ``judge`` (a hash of the voter), ``reason``,
  ``comment``, ``vote_delay``, ``auto_tie``, and per side ``system_prompt_*``, ``params_*``
  (temperature, top_p, max_new_tokens, repetition_penalty, seed), ``finish_reason_*``,
  ``sources_*`` (JSON text: a list of the web sources the answer cited).
* ``dpo`` (TRL, conversational) — decided turns only (one side won): ``prompt`` (the winner's
  system prompt, then the messages before the answer), ``chosen`` (winner's answer),
  ``rejected`` (loser's). Only when both sides answered the same conversation (always the
  first turn; a later one only if the earlier answers were the same): otherwise the two
  answers did not reply to one prompt.
* ``kto`` (TRL, unpaired) — both sides of a decided turn, each with its own prompt:
  ``label`` True for the winner, False for the loser.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
# A run of digits with phone-number punctuation; `_phone` keeps it only with 9+ digits and
# when it is not an ISO date or time.
PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d\s().\-/]{6,}\d(?![\w])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
PARAM_KEYS = ("temperature", "top_p", "max_new_tokens", "repetition_penalty", "seed")
DECIDED = ("model_a", "model_b")


def _phone(match: re.Match) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if digits < 9 or digits > 15 or _DATE.search(text):
        return text
    return "[phone]"


def redact_text(text: str) -> str:
    """E-mail addresses → ``[email]``, phone numbers (9–15 digits) → ``[phone]``."""
    if not text:
        return text
    return PHONE.sub(_phone, EMAIL.sub("[email]", text))


@dataclass
class BattleFilter:
    min_vote_seconds: float = 0.0
    dedupe: bool = True
    redact: bool = False
    # what was dropped, for the dataset card
    dropped: Counter = field(default_factory=Counter)

    def keep(self, votes) -> Iterator[dict]:
        seen: set[tuple[str, str]] = set()
        for vote in votes:
            if (not vote["auto"] and vote["vote_delay"] is not None
                    and vote["vote_delay"] < self.min_vote_seconds):
                self.dropped["voted too fast"] += 1
                continue
            if self.dedupe:
                asked = json.dumps([m["content"] for m in vote["side_a"]["messages"]
                                    if m["role"] == "user"], ensure_ascii=False)
                key = (vote["user_id"], asked)
                if key in seen:
                    self.dropped["duplicate prompt of one user"] += 1
                    continue
                seen.add(key)
            yield vote


def _messages(msgs: list[dict], redact: bool) -> list[dict]:
    return [{"role": m["role"], "content": redact_text(m["content"]) if redact
             else m["content"]} for m in msgs]


def _params(answer: dict) -> dict:
    p = answer.get("params") or {}
    return {k: (None if p.get(k) is None else float(p[k])) for k in PARAM_KEYS}


def _judge(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]


# The builders take votes that already went through `BattleFilter.keep`.

def pairwise_rows(votes, flt: BattleFilter) -> Iterator[dict]:
    for v in votes:
        row = {"question_id": v["battle_id"], "model_a": v["model_a"], "model_b": v["model_b"],
               "winner": v["winner"], "judge": _judge(v["user_id"]), "turn": v["turn"],
               "anony": v["anony"], "tstamp": v["voted_at"], "vote_delay": v["vote_delay"],
               "auto_tie": v["auto"], "reason": v["reason"] or "",
               "comment": (redact_text(v["comment"]) if flt.redact else v["comment"]) or ""}
        for s in ("a", "b"):
            side = v[f"side_{s}"]
            answer = side["messages"][-1]
            row[f"conversation_{s}"] = _messages(side["messages"], flt.redact)
            row[f"system_prompt_{s}"] = (redact_text(side["system_prompt"]) if flt.redact
                                         else side["system_prompt"])
            row[f"params_{s}"] = _params(answer)
            row[f"finish_reason_{s}"] = answer["finish_reason"] or ""
            row[f"sources_{s}"] = json.dumps(answer.get("sources") or [], ensure_ascii=False)
        yield row


def _prompt(side: dict, redact: bool) -> list[dict]:
    system = side["system_prompt"]
    head = [{"role": "system", "content": redact_text(system) if redact else system}] \
        if system else []
    return head + _messages(side["messages"][:-1], redact)


def _decided(votes, flt: BattleFilter) -> Iterator[tuple[dict, dict, dict]]:
    """(vote, winner side, loser side) of each kept, decided turn with two real answers."""
    for v in votes:
        if v["winner"] not in DECIDED:
            continue
        win, lose = ("a", "b") if v["winner"] == "model_a" else ("b", "a")
        w, l = v[f"side_{win}"], v[f"side_{lose}"]
        if not w["messages"][-1]["content"].strip() or not l["messages"][-1]["content"].strip():
            continue
        yield v, w, l


def dpo_rows(votes, flt: BattleFilter) -> Iterator[dict]:
    for _, w, l in _decided(votes, flt):
        before = [(m["role"], m["content"]) for m in w["messages"][:-1]]
        if before != [(m["role"], m["content"]) for m in l["messages"][:-1]]:
            flt.dropped["dpo: the sides' earlier answers differ"] += 1
            continue
        yield {"prompt": _prompt(w, flt.redact),
               "chosen": _messages(w["messages"][-1:], flt.redact),
               "rejected": _messages(l["messages"][-1:], flt.redact)}


def kto_rows(votes, flt: BattleFilter) -> Iterator[dict]:
    for _, w, l in _decided(votes, flt):
        for side, label in ((w, True), (l, False)):
            yield {"prompt": _prompt(side, flt.redact),
                   "completion": _messages(side["messages"][-1:], flt.redact), "label": label}


BUILDERS = {"pairwise": pairwise_rows, "dpo": dpo_rows, "kto": kto_rows}


class Tally:
    """Counts for the dataset card, gathered while the battle votes stream by."""

    def __init__(self) -> None:
        self.votes = 0
        self.per_model: Counter = Counter()
        self.winners: Counter = Counter()
        self.first: float | None = None
        self.last: float | None = None

    def watch(self, votes) -> Iterator[dict]:
        for v in votes:
            self.votes += 1
            self.per_model.update((v["model_a"], v["model_b"]))
            self.winners[v["winner"]] += 1
            t = v["voted_at"]
            self.first = t if self.first is None else min(self.first, t)
            self.last = t if self.last is None else max(self.last, t)
            yield v


def battle_rows(store, fmt: str, flt: BattleFilter, tally: Tally | None = None,
                since: Any = None, model: str | None = None) -> Iterator[dict]:
    """``fmt`` rows (pairwise | dpo | kto) from the store's voted battle turns."""
    votes = store.iter_battle_votes(since=since, model=model)
    return BUILDERS[fmt](flt.keep(tally.watch(votes) if tally is not None else votes), flt)


# -- the dataset card ---------------------------------------------------------------------------

SCHEMAS = {
    "pairwise": [("model_a, model_b", "the two models, side A and side B"),
                 ("winner", "model_a | model_b | tie | tie (bothbad)"),
                 ("conversation_a, conversation_b", "role/content messages up to and "
                                                    "including the judged answer"),
                 ("turn", "1 for the first question of a battle, 2 for a follow-up…"),
                 ("tstamp", "vote time, epoch seconds (UTC)"),
                 ("anony", "the vote was cast while the model names were hidden"),
                 ("question_id, judge", "battle id; a hash of the voter"),
                 ("reason, comment", "optional, from the voter"),
                 ("vote_delay", "seconds from the last token to the vote"),
                 ("auto_tie", "identical answers, recorded as a tie without asking"),
                 ("system_prompt_*, params_*, finish_reason_*",
                  "per side: system prompt, sampling parameters (incl. seed), how it ended"),
                 ("sources_*", "per side: JSON text, the web sources the answer cited")],
    "dpo": [("prompt", "messages before the answer (system prompt first when set)"),
            ("chosen", "the preferred answer (one assistant message)"),
            ("rejected", "the other answer")],
    "kto": [("prompt", "messages before the answer (system prompt first when set)"),
            ("completion", "the answer (one assistant message)"),
            ("label", "true: liked / won its battle; false: disliked / lost")],
    "conversations": [("messages", "every message of the tree with its settings and vote"),
                      ("current_branch", "ids root → the leaf the user last saw")],
}


def _day(ts: float | None) -> str:
    from datetime import datetime, timezone

    return "–" if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")


def dataset_card(fmt: str, file_name: str, rows: int, tally: Tally | None,
                 flt: BattleFilter | None, thumbs: Counter | None = None,
                 filters: dict | None = None) -> str:
    """README.md for an export: schema, counts per model, date range, filters used."""
    lines = ["---", "configs:", "- config_name: default", f"  data_files: {file_name}",
             "tags:", "- chatui", f"- {fmt}", "- human-feedback", "---", "",
             f"# chatui export: `{fmt}`", "",
             f"`{file_name}`: {rows} row(s), one JSON object per line "
             "(`datasets.load_dataset(\"json\", data_files=...)`).", "", "## Schema", "",
             "| column | meaning |", "|---|---|"]
    lines += [f"| `{c}` | {m} |" for c, m in SCHEMAS.get(fmt, [])]
    lines += ["", "## Counts", ""]
    if tally is not None:
        lines += [f"Arena battle votes read: {tally.votes} "
                  f"({', '.join(f'{w}: {n}' for w, n in sorted(tally.winners.items())) or '–'}); "
                  f"votes from {_day(tally.first)} to {_day(tally.last)}.", "",
                  "| model | battles |", "|---|---|"]
        lines += [f"| {m} | {n} |" for m, n in tally.per_model.most_common()]
        lines.append("")
    if thumbs:
        lines += ["Thumbs votes on chat answers:", "", "| model | votes |", "|---|---|"]
        lines += [f"| {m or '(unknown)'} | {n} |" for m, n in thumbs.most_common()]
        lines.append("")
    lines += ["## Filters", ""]
    for key, value in (filters or {}).items():
        lines.append(f"- {key}: {value if value not in (None, '') else '–'}")
    if flt is not None:
        lines += [f"- battle votes cast under {flt.min_vote_seconds:g} s after the last token "
                  "dropped (automatic ties kept)",
                  f"- duplicate prompts of one user {'dropped' if flt.dedupe else 'kept'}",
                  f"- e-mail addresses and phone numbers {'redacted' if flt.redact else 'kept'}"]
        lines += [f"- dropped, {why}: {n}" for why, n in sorted(flt.dropped.items())]
    return "\n".join(lines) + "\n"


__all__ = ["BattleFilter", "Tally", "battle_rows", "dataset_card", "dpo_rows", "kto_rows",
           "pairwise_rows", "redact_text"]
