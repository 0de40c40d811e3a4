"""Stage 5: cut pages into passages and keep the ones that answer the question.

* `chunk_sections` packs paragraphs (split further at sentence ends when too long) into
  passages of about `chunk_chars`, each carrying its nearest heading.
* `rank_passages` scores every passage with BM25 (`bm25s`; a small pure-Python BM25 takes
  over if bm25s fails) against the search query *and* the user's question, drops
  near-duplicates (word 5-shingle Jaccard), and keeps the best within `max_passages` and a
  character budget. The selection is returned in source order, then page order, so the
  citation numbers follow the search ranking and passages read in document order.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass

from chatui.websearch.extract import Section

__all__ = ["Passage", "RankDoc", "chunk_sections", "rank_passages", "select_passages",
           "passage_tokens", "tokenize", "bm25_scores", "jaccard"]

log = logging.getLogger(__name__)


@dataclass
class RankDoc:
    title: str
    sections: list[Section]


@dataclass
class Passage:
    source: int  # index of the document in the list given to rank_passages
    order: int  # position of the passage inside its document
    heading: str
    text: str
    score: float = 0.0

    @property
    def chars(self) -> int:
        return len(self.text) + len(self.heading)


# ---------------------------------------------------------------- chunking

_SENT_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"“'(\[]?[A-Z0-9À-Ý])")


def _split_long(text: str, limit: int) -> list[str]:
    """Split at sentence ends, then at spaces, into pieces of at most ~limit chars."""
    if len(text) <= limit:
        return [text]
    out, cur = [], ""
    for sent in _SENT_END.split(text):
        while len(sent) > limit:  # one enormous "sentence" (tables, code): cut at a space
            cut = sent.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            if cur:
                out.append(cur)
                cur = ""
            out.append(sent[:cut].strip())
            sent = sent[cut:].strip()
        if cur and len(cur) + 1 + len(sent) > limit:
            out.append(cur)
            cur = sent
        else:
            cur = f"{cur} {sent}".strip()
    if cur:
        out.append(cur)
    return [p for p in out if p]


def chunk_sections(sections: list[Section], chunk_chars: int = 800) -> list[tuple[str, str]]:
    """[(heading, passage_text)] in document order; passages rarely exceed chunk_chars."""
    out: list[tuple[str, str]] = []
    hard = int(chunk_chars * 1.25)
    for sec in sections:
        cur: list[str] = []
        size = 0
        paras = [p.strip() for p in re.split(r"\n\s*\n", sec.text or "") if p.strip()]
        pieces: list[str] = []
        for p in paras:
            pieces.extend(_split_long(p, hard) if len(p) > hard else [p])
        for piece in pieces:
            if cur and size + 2 + len(piece) > chunk_chars:
                out.append((sec.heading, "\n\n".join(cur)))
                cur, size = [], 0
            cur.append(piece)
            size += len(piece) + 2
        if cur:
            # A short tail joins the previous passage of the same section when it fits.
            tail = "\n\n".join(cur)
            if (out and out[-1][0] == sec.heading and len(tail) < chunk_chars // 4
                    and len(out[-1][1]) + len(tail) <= hard):
                out[-1] = (sec.heading, out[-1][1] + "\n\n" + tail)
            else:
                out.append((sec.heading, tail))
    return out


# ---------------------------------------------------------------- tokens

_STOP = frozenset("""a an and are as at be been but by can could did do does for from had has
have how i if in into is it its me my no not of on or our so such that the their them then
there these they this to was we were what when where which who whom why will with would you
your yours about after again all am any because before being between both each few further
here more most other out over own same should some than too under until up very just also
""".split())
_WORD = re.compile(r"\w+", re.UNICODE)


def _stem(w: str) -> str:
    # Deliberately light: plurals and common verb endings ("pages"->"page", "running"->"runn").
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 5 and w.endswith("ing"):
        return w[:-3]
    if len(w) > 4 and w.endswith("ed") and not w.endswith("eed"):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def tokenize(text: str) -> list[str]:
    out = []
    for w in _WORD.findall(text.lower()):
        if w in _STOP or (len(w) < 2 and not w.isdigit()):
            continue
        out.append(_stem(w))
    return out


# ---------------------------------------------------------------- BM25

def _bm25_python(docs: list[list[str]], query: list[str], k1: float = 1.5,
                 b: float = 0.75) -> list[float]:
    n = len(docs)
    avgdl = (sum(len(d) for d in docs) / n) if n else 0.0
    df: Counter[str] = Counter()
    for d in docs:
        df.update(set(d))
    scores = []
    for d in docs:
        tf = Counter(d)
        s = 0.0
        for q in query:
            f = tf.get(q)
            if not f:
                continue
            idf = math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
            s += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len(d) / (avgdl or 1)))
        scores.append(s)
    return scores


def bm25_scores(docs: list[list[str]], query: list[str]) -> list[float]:
    """BM25 score of each tokenized doc for the tokenized query (bm25s, else pure Python)."""
    if not docs or not query:
        return [0.0] * len(docs)
    try:
        import bm25s

        retriever = bm25s.BM25()
        retriever.index([d or ["\u2205"] for d in docs], show_progress=False)
        known = [q for q in query if q in retriever.vocab_dict]
        if not known:
            return [0.0] * len(docs)
        return [float(x) for x in retriever.get_scores(known)]
    except Exception as e:  # bm25s quirks on tiny/odd corpora: use the reference formula
        log.debug("bm25s failed (%s); using pure-Python BM25", e)
        return _bm25_python(docs, query)


# ---------------------------------------------------------------- de-duplication

def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


# ---------------------------------------------------------------- ranking

def passage_tokens(heading: str, text: str, title_tokens: list[str]) -> list[str]:
    """The tokens BM25 scores a passage by. The heading counts twice: it says what the passage
    is about; the document title once per passage."""
    return tokenize(text) + tokenize(heading) * 2 + title_tokens


def rank_passages(docs: list[RankDoc], query: str, question: str = "", *,
                  chunk_chars: int = 800, max_passages: int = 6, budget_chars: int = 6000,
                  per_source: int | None = None, dedup_threshold: float = 0.5) -> list[Passage]:
    """The best passages, in (source, order) order. Never raises on empty input."""
    passages: list[Passage] = []
    doc_tokens: list[list[str]] = []
    for si, doc in enumerate(docs):
        title_toks = tokenize(doc.title or "")
        for oi, (heading, text) in enumerate(chunk_sections(doc.sections, chunk_chars)):
            passages.append(Passage(si, oi, heading, text))
            doc_tokens.append(passage_tokens(heading, text, title_toks))
    return select_passages(passages, doc_tokens, query, question, max_passages=max_passages,
                           budget_chars=budget_chars, per_source=per_source,
                           dedup_threshold=dedup_threshold)


def select_passages(passages: list[Passage], doc_tokens: list[list[str]], query: str,
                    question: str = "", *, max_passages: int = 6, budget_chars: int = 6000,
                    per_source: int | None = None, dedup_threshold: float = 0.5
                    ) -> list[Passage]:
    """The scoring and selection half of `rank_passages`, over passages chunked and tokenized
    beforehand (attached documents are indexed once, then searched at every question).
    ``doc_tokens[i]`` are the tokens of ``passages[i]``; scores go on copies (the index
    stays as it was)."""
    passages = [Passage(p.source, p.order, p.heading, p.text) for p in passages]
    if not passages or max_passages <= 0 or budget_chars <= 0:
        return []
    q_tokens = tokenize(query) + tokenize(question)
    scores = bm25_scores(doc_tokens, q_tokens)
    for p, s in zip(passages, scores):
        p.score = s
    if any(s > 0 for s in scores):
        pool = sorted((p for p in passages if p.score > 0),
                      key=lambda p: (-p.score, p.source, p.order))
    else:  # nothing matches the words: the pages' opening passages, in search order
        pool = sorted(passages, key=lambda p: (p.order, p.source))
    per_source = per_source or max(2, max_passages // 2)
    chosen: list[Passage] = []
    chosen_shingles: list[set] = []
    used = 0
    taken: Counter[int] = Counter()
    for p in pool:
        if len(chosen) >= max_passages:
            break
        if taken[p.source] >= per_source:
            continue
        sh = _shingles(p.text)
        if any(jaccard(sh, o) >= dedup_threshold for o in chosen_shingles):
            continue
        cost = p.chars + 16
        if used + cost > budget_chars:
            if chosen:
                continue  # a smaller passage further down may still fit
            room = budget_chars - len(p.heading) - 16
            if room < 80:
                break
            p = Passage(p.source, p.order, p.heading, _split_long(p.text, room)[0][:room], p.score)
            cost = p.chars + 16
        chosen.append(p)
        chosen_shingles.append(sh)
        taken[p.source] += 1
        used += cost
    # Sources whose passages all lost are left out: an irrelevant source only costs context.
    return sorted(chosen, key=lambda p: (p.source, p.order))
