"""Export votes and conversations as JSONL training data (TRL formats).

``python -m chatui export --format kto|dpo|pairwise|conversations --out FILE [--since DATE]
[--model NAME] [--db PATH_OR_URL] [--redact] [--min-vote-seconds N] [--keep-duplicates]
[--no-card]``

Arena battles (issue 12): ``pairwise`` writes one row per voted battle turn in Chatbot Arena's
layout, and ``kto``/``dpo`` add rows from decided battles to those from thumbs votes; see
chatui/arena/export.py for the layouts and the filters. A README.md dataset card (schema,
counts per model, date range, filters) is written beside the file.

``--db`` is a SQLite file or a ``sqlite:///``/``postgresql://`` URL; by default the app's own
database (``storage.url`` from the config, with ``CHATUI_DATABASE_URL`` / ``CHATUI_DB_PATH``
applied), so on a deployment of several replicas it reads their shared PostgreSQL.

Formats (one JSON object per line; ``datasets.load_dataset("json", data_files=FILE)`` loads them):

* ``kto`` — TRL KTO, unpaired: ``prompt`` (messages up to and including the user turn; the
  system prompt first as a ``system`` message when non-empty), ``completion`` (a list with the
  one assistant message), ``label`` (bool). One row per rated assistant message (its latest
  vote). Built from the snapshot taken at vote time, so it is exactly what the user judged.
* ``dpo`` — TRL DPO, conversational: ``prompt``, ``chosen``, ``rejected``. A pair is made from
  two answers *to the same prompt in the same conversation* (same system prompt and same
  messages, compared by content: typically a retry) where one was liked and the other
  disliked; every liked × disliked combination of such answers gives one row. Answers to an
  edited (different) prompt are never paired. Votes from different conversations are not
  paired even when the prompt text matches: a pair should be one rater's comparison, and
  popular prompts ("hi") would otherwise give a quadratic number of pairs.
* ``conversations`` — one row per conversation with **all branches**: every message (oldest
  first, with ``parent_id`` for the tree), its settings and its vote (``feedback``), plus
  ``current_branch`` (the ids root → current leaf, what the user last saw). Times as ISO-8601
  UTC. ``user_id`` is not exported.

Reasoning (a thinking model's thoughts, stored apart from its answer) is left out by default:
the answer is what was rated and what the model should learn to say. ``--with-reasoning`` adds
it: in kto/dpo as a ``<think>…</think>`` prefix of the assistant message's ``content`` (the
inline form most reasoning chat templates expect); in ``conversations`` as separate
``reasoning`` and ``reasoning_duration`` (seconds) fields on each assistant message. Prompts
never carry earlier answers' reasoning (the model never saw it). Votes and citations belong to
the answer either way.

Filters: ``--since`` (ISO date or datetime, naive = UTC) keeps votes cast at or after it
(kto/dpo) or conversations updated at or after it; ``--model`` keeps votes on that model's
answers (kto/dpo) or conversations that used it.
Empty answers (e.g. an error before the first token) are skipped in kto/dpo.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chatui.store import InvalidArgument, Store, StoreError, to_epoch

FORMATS = ("kto", "dpo", "pairwise", "conversations")

HELP = ("export votes, arena battles and conversations as JSONL (TRL KTO, DPO, Chatbot "
        "Arena pairwise, or full conversations)")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _completion_text(vote: dict) -> str:
    completion = vote["context"].get("completion") or [{}]
    return completion[0].get("content") or ""


def _completion(vote: dict, with_reasoning: bool) -> list[dict]:
    """The rated assistant message; its reasoning as a <think> prefix when asked for."""
    completion = vote["context"]["completion"]
    if not with_reasoning or not vote.get("reasoning"):
        return completion
    first = dict(completion[0])
    first["content"] = f"<think>{vote['reasoning']}</think>\n\n{first.get('content') or ''}"
    return [first, *completion[1:]]


def kto_rows(store: Store, since: Any = None, model: str | None = None,
             with_reasoning: bool = False) -> Iterator[dict]:
    """TRL KTO rows, one per rated assistant message (latest vote)."""
    for vote in store.iter_feedback(since=since, model=model):
        if not _completion_text(vote).strip():
            continue
        ctx = vote["context"]
        yield {"prompt": ctx["prompt"], "completion": _completion(vote, with_reasoning),
               "label": vote["label"]}


def dpo_rows(store: Store, since: Any = None, model: str | None = None,
             with_reasoning: bool = False) -> Iterator[dict]:
    """TRL DPO pairs from liked vs disliked answers to the same prompt."""
    groups: dict[tuple[str, str], dict[bool, list[dict]]] = {}
    for vote in store.iter_feedback(since=since, model=model):
        if not _completion_text(vote).strip():
            continue
        prompt = json.dumps(vote["context"]["prompt"], sort_keys=True, ensure_ascii=False)
        key = (vote["conversation_id"], prompt)
        groups.setdefault(key, {True: [], False: []})[vote["label"]].append(vote)
    for (_, prompt_json), by_label in groups.items():
        prompt = json.loads(prompt_json)
        for good in by_label[True]:
            for bad in by_label[False]:
                if _completion_text(good) == _completion_text(bad):
                    continue  # same answer liked and disliked: no preference signal
                yield {"prompt": prompt, "chosen": _completion(good, with_reasoning),
                       "rejected": _completion(bad, with_reasoning)}


_MESSAGE_KEYS = ("id", "parent_id", "role", "content", "model", "backend", "params",
                 "system_prompt", "finish_reason", "error", "prompt_tokens",
                 "completion_tokens", "ttft", "duration", "sources", "feedback")


def conversation_rows(store: Store, since: Any = None, model: str | None = None,
                      with_reasoning: bool = False) -> Iterator[dict]:
    """Whole conversations (all branches) with votes; see the module docstring."""
    for conv in store.iter_conversations(since=since, model=model):
        by_id = {m["id"]: m for m in conv["messages"]}
        path, cur = [], conv["current_leaf_id"]
        while cur is not None and cur in by_id and len(path) <= len(by_id):
            path.append(cur)
            cur = by_id[cur]["parent_id"]
        messages = []
        for m in conv["messages"]:
            row = {k: m[k] for k in _MESSAGE_KEYS}
            row["created_at"] = _iso(m["created_at"])
            if with_reasoning and m["role"] == "assistant":
                meta = m.get("meta") or {}
                row["reasoning"] = meta.get("reasoning") or ""
                row["reasoning_duration"] = meta.get("reasoning_duration")
            messages.append(row)
        yield {
            "id": conv["id"],
            "title": conv["title"],
            "model": conv["model"],
            "system_prompt": conv["system_prompt"],
            "created_at": _iso(conv["created_at"]),
            "updated_at": _iso(conv["updated_at"]),
            "current_leaf_id": conv["current_leaf_id"],
            "current_branch": path[::-1],
            "messages": messages,
        }


ROW_BUILDERS = {"kto": kto_rows, "dpo": dpo_rows, "conversations": conversation_rows}

DPO_NEEDS = ("a pair needs a liked and a disliked answer to the same question in one "
             "conversation (retry an answer and vote on both)")


def empty_reason(store: Store, fmt: str, since: Any = None, model: str | None = None) -> str:
    """Why an export of ``fmt`` wrote no rows, in one line for the person who ran it."""
    filtered = " matching --since/--model" if since is not None or model is not None else ""
    if fmt == "conversations":
        return f"0 conversations: the database has no conversations{filtered}"
    if fmt == "pairwise":
        return (f"0 pairwise rows: no voted arena battles{filtered} passed the filters "
                "(--min-vote-seconds, duplicate prompts)")
    votes = [v for v in store.iter_feedback(since=since, model=model)
             if _completion_text(v).strip()]
    name = "KTO rows" if fmt == "kto" else "DPO pairs"
    if not votes:
        why = f"0 {name}: the database has no votes on non-empty answers{filtered}"
        return f"{why}; {DPO_NEEDS}" if fmt == "dpo" else why
    liked = sum(1 for v in votes if v["label"])
    return (f"0 DPO pairs from {len(votes)} vote(s) ({liked} liked, {len(votes) - liked} "
            f"disliked): {DPO_NEEDS}")


# -- arena battles (issue 12): pairwise rows, battles in kto/dpo, redaction, dataset card ------
# See chatui/arena/export.py for the formats and the filters.

_REDACTED_KEYS = ("content", "comment", "title", "system_prompt")


def redact_row(value: Any) -> Any:
    """E-mail addresses and phone numbers out of the texts people wrote or read in a row."""
    from chatui.arena.export import redact_text

    if isinstance(value, list):
        return [redact_row(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_text(v) if k in _REDACTED_KEYS and isinstance(v, str)
                else redact_row(v) for k, v in value.items()}
    return value


def _card_path(out: Path) -> Path:
    """README.md beside the export, unless a README that is not an export card is there."""
    card = out.parent / "README.md"
    if card.exists() and "# chatui export:" not in card.read_text(encoding="utf-8",
                                                                  errors="replace"):
        return out.with_name(out.name + ".README.md")
    return card


def write_jsonl(rows: Iterable[dict], out: str | os.PathLike) -> int:
    """Write rows as JSONL; ``-`` is stdout. Files are replaced atomically. Returns the count."""
    if str(out) == "-":
        n = 0
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        sys.stdout.flush()
        return n
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def export(store: Store, fmt: str, out: str | os.PathLike, since: Any = None,
           model: str | None = None, with_reasoning: bool = False, *, redact: bool = False,
           min_vote_seconds: float = 0.0, dedupe: bool = True, card: bool = True) -> int:
    """Write ``fmt`` rows to ``out``; returns the number of rows. kto/dpo also take arena
    battles, pairwise only them (chatui/arena/export.py: ``min_vote_seconds``, ``dedupe``).
    ``redact``: e-mail addresses and phone numbers out of every row. ``card``: a README.md
    dataset card beside the file (`_card_path`)."""
    from itertools import chain

    from chatui.arena.export import BattleFilter, Tally, battle_rows, dataset_card

    if fmt not in FORMATS:
        raise InvalidArgument(f"format must be one of {FORMATS}, not {fmt!r}")
    flt = BattleFilter(min_vote_seconds=min_vote_seconds, dedupe=dedupe, redact=redact)
    tally = Tally() if fmt in ("kto", "dpo", "pairwise") else None
    rows: Iterable[dict] = [] if fmt == "pairwise" else ROW_BUILDERS[fmt](
        store, since=since, model=model, with_reasoning=with_reasoning)
    if tally is not None:
        rows = chain(rows, battle_rows(store, fmt, flt, tally, since=since, model=model))
    if redact:
        rows = map(redact_row, rows)
    n = write_jsonl(rows, out)
    if card and str(out) != "-":
        from collections import Counter

        thumbs = Counter(v["model"] for v in store.iter_feedback(since=since, model=model)) \
            if fmt in ("kto", "dpo") else None
        path = Path(out)
        _card_path(path).write_text(dataset_card(
            fmt, path.name, n, tally, flt if tally is not None else None, thumbs,
            {"since": since and _iso(to_epoch(since)), "model": model,
             "with reasoning": with_reasoning}), encoding="utf-8")
    return n


def default_db_url() -> str:
    """The database the app uses: ``storage.url`` from the config (spaces.yaml or
    CHATUI_CONFIG), with CHATUI_DATABASE_URL / CHATUI_DB_PATH applied as the app applies them."""
    from chatui.config import load_settings

    return load_settings().storage.url


def _sqlite_file(target: str) -> Path | None:
    """The file behind a SQLite target (plain path or sqlite:/// URL); None for PostgreSQL."""
    from chatui.store.engines import is_postgres_url, sqlite_path

    return None if is_postgres_url(target) else Path(sqlite_path(target))


# -- CLI (registered in chatui/cli.py) ---------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", "-f", required=True, choices=FORMATS,
                        help="kto: rated answers and both sides of decided arena battles; "
                             "dpo: liked/disliked answer pairs and arena winner/loser pairs; "
                             "pairwise: voted arena battles (Chatbot Arena layout); "
                             "conversations: full conversation trees with votes")
    parser.add_argument("--out", "-o", required=True,
                        help="output JSONL file ('-' for stdout)")
    parser.add_argument("--since", help="only votes/conversations at or after this ISO date "
                                        "or datetime (UTC unless it has an offset)")
    parser.add_argument("--model", help="only this model's answers")
    parser.add_argument("--with-reasoning", action="store_true",
                        help="include thinking models' reasoning (left out by default): "
                             "kto/dpo as a <think>…</think> prefix of the answer's content, "
                             "conversations as 'reasoning' and 'reasoning_duration' fields")
    parser.add_argument("--redact", action="store_true",
                        help="replace e-mail addresses and phone numbers in the exported "
                             "texts with [email] / [phone]")
    parser.add_argument("--min-vote-seconds", type=float, default=None,
                        help="drop arena votes cast sooner than this after the last token "
                             "(default: arena.min_vote_seconds from the config)")
    parser.add_argument("--keep-duplicates", action="store_true",
                        help="keep arena votes on a prompt the same user already asked")
    parser.add_argument("--no-card", action="store_true",
                        help="do not write the README.md dataset card beside the file")
    parser.add_argument("--db", help="SQLite file, sqlite:///PATH or "
                                     "postgresql://USER:PASS@HOST/DB (default: the app's "
                                     "storage.url, with $CHATUI_DATABASE_URL / $CHATUI_DB_PATH "
                                     "applied)")


def _min_vote_seconds(args: argparse.Namespace) -> float:
    given = getattr(args, "min_vote_seconds", None)
    if given is not None:
        return max(0.0, float(given))
    try:
        from chatui.config import load_settings

        return load_settings().arena.min_vote_seconds
    except Exception:   # no usable config next to a --db export: the documented default
        return 3.0


def run(args: argparse.Namespace) -> int:
    try:
        since = to_epoch(args.since)
    except InvalidArgument as e:
        print(f"error: --since: {e}", file=sys.stderr)
        return 2
    try:
        target = args.db or default_db_url()
        sqlite_file = _sqlite_file(target)
    except Exception as e:  # ConfigError, a malformed sqlite URL: one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    # An export never creates a SQLite file; a PostgreSQL server says itself what is wrong.
    if sqlite_file is not None and not sqlite_file.is_file():
        print(f"error: no database at {sqlite_file} (use --db, CHATUI_DATABASE_URL or "
              f"CHATUI_DB_PATH)", file=sys.stderr)
        return 2
    try:
        with Store(target) as store:
            n = export(store, args.format, args.out, since=since, model=args.model,
                       with_reasoning=getattr(args, "with_reasoning", False),
                       redact=getattr(args, "redact", False),
                       min_vote_seconds=_min_vote_seconds(args),
                       dedupe=not getattr(args, "keep_duplicates", False),
                       card=not getattr(args, "no_card", False))
            # An empty file alone leaves the user guessing: say why there are no rows.
            reason = empty_reason(store, args.format, since, args.model) if n == 0 else None
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {n} {args.format} row(s) to {args.out}", file=sys.stderr)
    if reason:
        print(reason, file=sys.stderr)
    return 0
