"""Stage 1: turn the conversation into a short, date-aware web search query.

`build_query_messages` makes the chat messages for the model; `clean_query` makes
whatever the model wrote usable (or falls back to the user's own words).
"""

from __future__ import annotations

import datetime as _dt
import re

__all__ = ["build_query_messages", "clean_query", "fallback_query", "MAX_QUERY_CHARS"]

MAX_QUERY_CHARS = 160  # ~32 tokens
_HISTORY_TURNS = 6  # messages of context given to the query writer
_HISTORY_CHARS = 600  # per message

_SYSTEM = (
    "You write web search queries. Given a conversation, write ONE short search query "
    "(at most 12 words) that finds web pages answering the user's last message. "
    "Resolve pronouns and references from the conversation so the query stands alone. "
    "Today is {today}: when the question is about recent or current events, include the "
    "year or month in the query; do not add a date otherwise. "
    "Answer with the query only: no quotes, no explanation, no answer to the question."
)

_EXAMPLES = [
    ("Who won the last Champions League final?",
     "Champions League final {year} winner"),
    ("How do I pin a numpy version with pip?", "pip install specific numpy version"),
]


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal / Gradio message parts
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
        return " ".join(parts)
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return ""


def _squash(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def build_query_messages(history: list[dict], question: str,
                         today: _dt.date | None = None) -> list[dict]:
    """Chat messages asking the model for a search query for `question` given `history`.

    `history` is a list of {"role": "user"|"assistant", "content": ...} messages *before*
    the question. Only the last few turns are quoted, each shortened, so a long chat does
    not blow the context of a small model.
    """
    today = today or _dt.date.today()
    lines = []
    for m in (history or [])[-_HISTORY_TURNS:]:
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            continue
        text = _squash(_content_text(m.get("content")), _HISTORY_CHARS)
        if text:
            lines.append(f"{role.capitalize()}: {text}")
    convo = "\n".join(lines)
    ask = (f"Conversation so far:\n{convo}\n\n" if convo else "")
    ask += (f"User's last message: {_squash(question, 2000)}\n\n"
            "Write the web search query.")
    msgs = [{"role": "system", "content": _SYSTEM.format(today=today.strftime("%B %d, %Y"))}]
    for q, a in _EXAMPLES:
        msgs.append({"role": "user", "content": f"User's last message: {q}\n\nWrite the web search query."})
        msgs.append({"role": "assistant", "content": a.format(year=today.year - 1)})
    msgs.append({"role": "user", "content": ask})
    return msgs


_PREFIX = re.compile(
    r"^\s*(?:[-*#>•]+\s*)?(?:\*\*)?"
    r"(?:(?:here(?:'s| is)\s+(?:a|the|my)\s+)?(?:web\s+|google\s+|optimi[sz]ed\s+)?"
    r"(?:search\s+)?query|search(?:\s+for)?|keywords?|answer)\s*(?:\*\*)?\s*[:：\-–]\s*(?:\*\*)?\s*",
    re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•>]+|\d+[.)])\s+")
_REFUSAL = re.compile(r"^(?:i'?m sorry|sorry|i cannot|i can'?t|as an ai|i am unable|i'm unable)",
                      re.IGNORECASE)
_QUOTES = "\"'`“”‘’«»„"


def _cap(text: str, limit: int = MAX_QUERY_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if " " in cut:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:-")


def fallback_query(question: str) -> str:
    """The user's own words, trimmed to a query-sized string."""
    return _cap(_content_text(question) if not isinstance(question, str) else question)


def clean_query(model_output: str | None, fallback: str) -> str:
    """Make the model's output a usable query, else return `fallback_query(fallback)`.

    Takes the first non-empty line, strips "Query:"-style prefixes, list bullets, bold
    markers and surrounding quotes, removes <think> blocks, and caps the length.
    """
    text = model_output or ""
    text = re.sub(r"<think>.*?(?:</think>|$)", " ", text, flags=re.DOTALL | re.IGNORECASE)
    line = ""
    for raw in text.splitlines():
        cand = raw.strip()
        if not cand or cand.startswith("```"):
            continue
        # A bare "Query:" line followed by the query on the next line.
        if _PREFIX.sub("", cand).strip(_QUOTES + " *") == "" and _PREFIX.match(cand):
            continue
        line = cand
        break
    for _ in range(2):
        line = _BULLET.sub("", line, count=1)
        line = _PREFIX.sub("", line, count=1).strip()
        line = line.strip("*").strip().strip(_QUOTES).strip()
    line = line.rstrip(".").strip()
    if len(line) < 2 or not re.search(r"\w", line) or _REFUSAL.match(line):
        return fallback_query(fallback)
    return _cap(line)
