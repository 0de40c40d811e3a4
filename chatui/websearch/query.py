"""Stage 1: turn the conversation into a short, date-aware web search query.

`build_query_messages` makes the chat messages for the model; `clean_query` makes
whatever the model wrote usable (or falls back to the user's own words); `check_query`
says whether that query still asks what the user asked, and `keyword_query` builds the
query from the question's own words when it does not.

Why the check: a small model "corrects" questions from its training data ("Who won the
2026 football world cup?" became "2018 World Cup winner", "latest Python version" became
"Python 3.8 version"), and the search then answers a different question.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata

__all__ = ["build_query_messages", "clean_query", "fallback_query", "check_query",
           "keyword_query", "MAX_QUERY_CHARS"]

MAX_QUERY_CHARS = 160  # ~32 tokens
_HISTORY_TURNS = 6  # messages of context given to the query writer
_HISTORY_CHARS = 600  # per message

_SYSTEM = (
    "You write web search queries. Given a conversation, write ONE short search query "
    "(at most 12 words) that finds web pages answering the user's last message. "
    "Resolve pronouns and references from the conversation so the query stands alone. "
    "Today is {today}: when the question is about recent or current events, include the "
    "year or month in the query; do not add a date otherwise. "
    "Keep every number, name and key word of the user's message exactly as written: never "
    "change a year or a version number. "
    "Answer with the query only: no quotes, no explanation, no answer to the question."
)

# The examples follow the rules check_query enforces (key words kept, only this year added).
_EXAMPLES = [
    ("What are the latest Champions League results?", "latest Champions League results {year}"),
    ("How do I pin a numpy version with pip?", "pin numpy version with pip"),
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
        msgs.append({"role": "assistant", "content": a.format(year=today.year)})
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


# ---------------------------------------------------------------- keeping the question's terms

# Words that carry no search meaning. Question words, auxiliaries, pronouns, politeness and
# "tell me"-style openers: a capitalised one at the start of a sentence is not a name.
_STOP = frozenset("""
a about above after again against all also am an and any are aren't as at be because been
before being below between both but by can can't cannot could couldn't did didn't do does
doesn't doing don't down during each either else ever few for from further had hadn't has
hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
how how's however i i'd i'll i'm i've if in into is isn't it it's its itself just let let's
like may me might more most much must mustn't my myself no nor not of off on once only or
other ought our ours ourselves out over own please quite rather really same shall shan't she
she'd she'll she's should shouldn't so some such than that that's the their theirs them
themselves then there there's these they they'd they'll they're they've this those through
thus to too under until up upon us very via was wasn't we we'd we'll we're we've were weren't
what what's whatever when when's where where's whether which while who who's whom whose why
why's will with won't would wouldn't yes yet you you'd you'll you're you've your yours
yourself yourselves
hi hello hey thanks thank ok okay pls
tell explain show give find search look know want need help describe list compare say
answer write let's get got
anyone anybody someone somebody something anything thing things
""".split())

# Words that point back into the conversation: with them the model must resolve the
# reference, so its query may (must) use words the question does not contain.
_REFERRING = frozenset("""
it its it's this that these those they them their theirs he him his she her hers there
one ones same former latter above previous earlier said such
""".split())

_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)*(?![\w'’+#\-])|[^\W_](?:[\w'’+#.\-]*[\w+#])?")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)*")
# Irregular forms that matter in questions ("who won" / "winner"), and the nouns a query
# uses for "how long/old/tall/far/big" ("How long is the bridge?" -> "bridge length").
_IRREGULAR = {"won": "win", "winner": "win", "winners": "win", "winning": "win", "wins": "win",
              "best": "good", "better": "good", "ran": "run", "running": "run",
              "children": "child", "people": "person", "men": "man", "women": "woman",
              "length": "long", "height": "tall", "high": "tall", "age": "old",
              "distance": "far", "size": "big", "large": "big"}
_MIN_ALL_TERMS = 5  # up to this many key words, the query must keep all of them
_LONG_SHARE = 0.6  # for longer questions, this share of them


def _tokens(text: str) -> list[str]:
    return [t.replace("’", "'").strip(".'-") for t in _TOKEN.findall(text or "")]


def _stem(word: str) -> str:
    """A light, predictable stemmer: enough to match plurals and -ing/-ed forms, and
    accents ("Sao" == "São")."""
    w = unicodedata.normalize("NFKD", word.lower().replace("’", "'"))
    w = "".join(c for c in w if not unicodedata.combining(c))
    w = w[:-2] if w.endswith("'s") else w
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    for suf, keep in (("ing", 3), ("ed", 4), ("es", 3), ("s", 3)):  # "breed" stays "breed"
        if w.endswith(suf) and len(w) - len(suf) >= keep and not w.endswith("ss"):
            w = w[: -len(suf)]
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":  # "runn" -> "run"
        w = w[:-1]
    return w


def _numbers(text: str) -> set[str]:
    """Numbers as written, thousands separators removed: "2,400" == "2400"."""
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text or "")}


def _is_number(tok: str) -> bool:
    return bool(re.fullmatch(r"[\d.,]+", tok))


def _key_words(question: str) -> tuple[list[str], list[str]]:
    """(names, other key words) of the question, each in order, no duplicates.

    A name is a word with a capital letter that is not a stop word ("Python", "FIFA",
    "iPhone", "Tour", "France"); numbers are handled on their own."""
    names, words, seen = [], [], set()
    for tok in _tokens(question):
        low = tok.lower().replace("’", "'")
        if not tok or low in _STOP or _is_number(tok) or low in seen:
            continue
        seen.add(low)
        if len(tok) == 1 and not tok.isdigit() and not tok.isupper():
            continue
        (names if any(c.isupper() for c in tok) else words).append(tok)
    return names, words


def _history_text(history: list[dict] | None) -> str:
    return " ".join(_content_text(m.get("content")) for m in history or []
                    if isinstance(m, dict))


def _allowed_years(question: str, today: _dt.date) -> set[str]:
    """Years the model may add: the prompt tells it today's date and asks for the year of
    recent events, and "last year"/"next year" name one."""
    q = question.lower()
    years = {str(today.year)}
    if re.search(r"\b(?:last|previous|past)\s+year\b", q):
        years.add(str(today.year - 1))
    if re.search(r"\bnext\s+year\b", q):
        years.add(str(today.year + 1))
    return years


def check_query(query: str, question: str, history: list[dict] | None = None,
                today: _dt.date | None = None) -> str | None:
    """None when `query` may be searched for `question`; else why not (for the log).

    The query must keep every number of the question and bring no number that is not in
    the question or the conversation (today's year excepted, see `_allowed_years`); it must
    keep the question's names (capitalised words); and it must keep its other key words:
    all of them for a short question, most for a long one. When the question refers back
    into the conversation ("who won it?"), only numbers and names are checked, because
    resolving the reference is the point of the model's query.
    """
    today = today or _dt.date.today()
    question = question if isinstance(question, str) else _content_text(question)
    if not query or not query.strip():
        return "empty query"
    q_nums = _numbers(question)
    got_nums = _numbers(query)
    if missing := q_nums - got_nums:
        return f"dropped number(s) {sorted(missing)}"
    known = q_nums | _numbers(_history_text(history)) | _allowed_years(question, today)
    if new := got_nums - known:
        return f"added number(s) {sorted(new)}"
    got = {_stem(p) for t in _tokens(query) for p in (t, *t.split("-")) if p}

    def kept(term: str) -> bool:  # "world-cup" == "world cup", "GPT 4o" == "GPT-4o"
        return _stem(term) in got or all(_stem(p) in got for p in term.split("-") if p)

    names, words = _key_words(question)
    if missing := [n for n in names if not kept(n)]:
        return f"dropped name(s) {missing}"
    referring = bool(history) and any(t.lower() in _REFERRING for t in _tokens(question))
    if referring or not words:
        return None
    n_kept = sum(kept(w) for w in words)
    need = len(words) if len(words) <= _MIN_ALL_TERMS else -(-len(words) * _LONG_SHARE // 1)
    if n_kept < need:
        return f"kept {n_kept} of the key words {words}"
    return None


_CONTEXT_WORDS = 6  # key words taken from the previous user message for a referring question


def _keywords(text: str) -> list[str]:
    kept: list[str] = []
    for tok in _tokens(text):
        low = tok.lower().replace("’", "'")
        if not tok or (low in _STOP and not _is_number(tok)):
            continue
        if len(tok) == 1 and not tok.isdigit() and not tok.isupper():
            continue
        if low not in (k.lower() for k in kept):
            kept.append(tok)
    return kept


def keyword_query(question: str, history: list[dict] | None = None) -> str:
    """The question's own key words, numbers and names, in order ("Who won the 2026
    football world cup?" -> "won 2026 football world cup"). A question that refers back
    into the conversation ("Who won it last year?") starts with the key words of the last
    user message before it ("Tell me about the Tour de France" -> "Tour de France").
    Falls back to the whole question when it has no key word at all."""
    question = question if isinstance(question, str) else _content_text(question)
    kept = _keywords(question)
    if history and any(t.lower() in _REFERRING for t in _tokens(question)):
        for m in reversed(history):
            if isinstance(m, dict) and m.get("role") == "user":
                have = {k.lower() for k in kept}
                prev = _keywords(_content_text(m.get("content")))[:_CONTEXT_WORDS]
                kept = [w for w in prev if w.lower() not in have] + kept
                break
    return _cap(" ".join(kept)) if kept else fallback_query(question)
