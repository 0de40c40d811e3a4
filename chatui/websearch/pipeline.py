"""The whole web search for one chat turn: query -> search -> fetch -> extract -> rank -> context.

`run_websearch` is an async generator. It yields `Step` progress events (each step once
as "pending" and again, same id, as "done" with its duration) and ends with exactly one
`WebSearchResult`. It never raises for a failed search: no results, an unreachable
engine, or pages that all failed end in a result with no sources and a `notice` for the
user. Only cancellation propagates (the chat layer cancels it when the user stops).

Everything a user reads (step titles, step logs, the notice) is plain language: no
exception text, no engine name, no internal status codes. A failure is told once, by the
notice; the step it happened in just ends. Details go to the server log.

Typical use in the chat layer::

    async def generate(messages):            # the chat model, full text, no streaming UI
        return "".join([d.text async for d in backend.stream(messages, params)])

    chars = int(backend.context_length * settings.websearch.context_fraction * 3)
    async for ev in run_websearch(question, history, settings.websearch,
                                  generate=generate, context_chars=chars):
        if isinstance(ev, Step):
            show(gr.ChatMessage(content=ev.log or "", metadata=ev.metadata()))
        else:
            result = ev                      # result.context -> system message
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import httpx

from chatui.config import WebSearchSettings
from chatui.websearch.context import Source, build_context
from chatui.websearch.extract import Page, extract_page
from chatui.websearch.fetch import FetchResult, SsrfGuard, fetch_pages
from chatui.websearch.fetch import BAD_TYPE, BLOCKED, OK, TIMEOUT, TOO_LARGE
from chatui.websearch.query import (build_query_messages, check_query, clean_query,
                                    fallback_query, keyword_query)
from chatui.websearch.rank import RankDoc, rank_passages
from chatui.websearch.search import (DEFAULT_CACHE, SearchOutcome, SearchProvider, TTLCache,
                                     make_provider, notice_for, search_web)

__all__ = ["Step", "WebSearchResult", "run_websearch", "read_pages", "QUERY_TIMEOUT",
           "NO_QUERY", "PAGES_UNREADABLE", "NO_TEXT"]

log = logging.getLogger(__name__)

QUERY_TIMEOUT = 20.0  # seconds the chat model may take to write the query
CONTEXT_OVERHEAD = 1500  # characters of instructions around the sources
EXTRACT_GRACE = 0.5  # seconds extraction may run past the fetch deadline

# Notices for failures after the search engine answered (its own are in search.NOTICES).
NO_QUERY = "There was nothing to search for, so this answer uses no sources."
PAGES_UNREADABLE = "None of the pages found could be read, so this answer uses no sources."
NO_TEXT = "The pages found had no usable text, so this answer uses no sources."

# What a page's fetch status means to a reader (FetchResult.error is for the log).
_FETCH_WORDS = {OK: "read", TIMEOUT: "too slow", TOO_LARGE: "too long, read in part",
                BLOCKED: "not allowed", BAD_TYPE: "not a web page"}


@dataclass
class Step:
    id: str  # "query" | "search" | "fetch" | "rank"
    title: str
    status: str = "pending"  # "pending" | "done"
    duration: float | None = None  # seconds, set when done
    log: str | None = None

    def metadata(self) -> dict:
        """The `metadata` of a gr.ChatMessage showing this step. The log is the message's
        content (the folded body), not `metadata["log"]`, which Gradio prints beside the
        title: there it would show the same text a second time."""
        md: dict = {"title": self.title, "status": self.status, "id": self.id}
        if self.duration is not None:
            md["duration"] = round(self.duration, 2)
        return md


@dataclass
class WebSearchResult:
    query: str
    sources: list[Source] = field(default_factory=list)
    context: str = ""  # "" when there are no sources
    notice: str | None = None  # user-facing sentence when something went wrong

    def to_dict(self) -> dict:
        return asdict(self)


def _host(url: str) -> str:
    return (urlsplit(url).hostname or url).removeprefix("www.")


def _fetch_log(pages: list[FetchResult], texts: list[Page | None]) -> str:
    """One plain line per page for the user; the technical reason goes to the log."""
    lines = []
    for p, page in zip(pages, texts):
        if p.usable and page is None:
            what = "no readable text"
        else:
            what = _FETCH_WORDS.get(p.status, "could not be read")
        if p.status != OK or page is None:
            log.info("page %s: %s (%s)", p.url, p.status, p.error)
        lines.append(f"{'✓' if page is not None else '✗'} {_host(p.url)} — {what} "
                     f"({p.elapsed:.2f} s)")
    return "\n".join(lines)


def _extract_one(p: FetchResult) -> Page | None:
    try:
        page = extract_page(p.html, p.final_url or p.url)
    except Exception as e:  # extract_page should not raise; belt and braces
        log.debug("extraction failed for %s: %s", p.url, e)
        return None
    return page if page.text.strip() else None


async def read_pages(urls: list[str], settings: WebSearchSettings, *,
                     client: httpx.AsyncClient | None = None, guard: SsrfGuard | None = None,
                     ) -> tuple[list[FetchResult], list[Page | None]]:
    """Fetch and extract. Each page is extracted (in a worker thread) as soon as it has
    arrived, overlapping with slower downloads. Extraction gets until the fetch deadline,
    or EXTRACT_GRACE seconds after the fetches ended if that is later; a page whose
    extraction is still running then is dropped, so this returns by
    deadline + EXTRACT_GRACE (+ cancellation time) whatever the pages contain."""
    t0 = time.perf_counter()
    jobs: dict[int, asyncio.Future] = {}

    def start(i: int, res: FetchResult) -> None:
        if res.usable and i not in jobs:
            jobs[i] = asyncio.ensure_future(asyncio.to_thread(_extract_one, res))

    fetched = await fetch_pages(urls, settings, client=client, guard=guard, on_page=start)
    for i, res in enumerate(fetched):  # partial pages cut at the deadline
        start(i, res)
    pages: list[Page | None] = [None] * len(fetched)
    if jobs:
        budget = max(settings.deadline - (time.perf_counter() - t0), EXTRACT_GRACE)
        done, pending = await asyncio.wait(list(jobs.values()), timeout=budget)
        for fut in pending:
            fut.cancel()  # the worker thread finishes on its own; its result is dropped
        for i, fut in jobs.items():
            if fut in done and not fut.cancelled() and fut.exception() is None:
                pages[i] = fut.result()
            elif fut in pending:
                fetched[i].error = (fetched[i].error or "") + " (extraction too slow)"
    return fetched, pages


async def _write_query(question: str, history: list[dict], today: _dt.date,
                       generate: Callable[[list[dict]], Awaitable[str]]) -> tuple[str, str | None]:
    """(query, a plain note for the step log or None). The model's query is kept only if
    it keeps the question's numbers and names (query.check_query); else key words."""
    try:
        text = await asyncio.wait_for(generate(build_query_messages(history, question, today)),
                                      QUERY_TIMEOUT)
    except asyncio.TimeoutError:
        log.warning("search query writing took over %.0f s; searching the question", QUERY_TIMEOUT)
        return fallback_query(question), "Searched with your own words."
    except Exception as e:
        log.warning("search query writing failed; searching the question", exc_info=e)
        return fallback_query(question), "Searched with your own words."
    query = clean_query(text if isinstance(text, str) else "", question)
    problem = check_query(query, question, history, today)
    if problem:
        keywords = keyword_query(question, history)
        log.info("model query %r dropped (%s); searching %r", query, problem, keywords)
        return keywords, "Searched with the key words of your question."
    return query, None


async def _run(question: str, history: list[dict], settings: WebSearchSettings, *,
               generate, provider, context_chars: int, today: _dt.date,
               guard: SsrfGuard | None, client: httpx.AsyncClient | None,
               cache: TTLCache | None, state: dict) -> AsyncIterator[Step | WebSearchResult]:
    history = list(history or [])
    if history and history[-1].get("role") == "user" and history[-1].get("content") == question:
        history = history[:-1]  # the caller included the question itself

    # 1. query
    if generate is not None:
        step = Step("query", "Writing a search query")
        state["step"] = step
        yield step
        t = time.perf_counter()
        query, why = await _write_query(question, history, today, generate)
        yield Step("query", "Writing a search query", "done", time.perf_counter() - t,
                   f"{query}" + (f"\n{why}" if why else ""))
    else:
        query = fallback_query(question)
    state["query"] = query
    if not query:
        yield WebSearchResult(query="", notice=NO_QUERY)
        return

    # 2. search
    title = f"Searching for “{query}”"
    state["step"] = Step("search", title)
    yield state["step"]
    t = time.perf_counter()
    outcome: SearchOutcome = await search_web(provider, query, settings, cache=cache)
    results = outcome.results[: settings.max_results]
    slog = "\n".join(f"{i}. {r.title} — {_host(r.url)}" for i, r in enumerate(results, 1))
    if outcome.cached and slog:
        slog += "\n(from a recent identical search)"
    # A failed search ends its step without a log: the notice says it, once.
    yield Step("search", title, "done", time.perf_counter() - t, slog or None)
    if not results:
        yield WebSearchResult(query=query, notice=outcome.notice or notice_for("no_results"))
        return

    # 3. fetch + extract
    title = f"Reading {len(results)} page{'s' if len(results) != 1 else ''}"
    state["step"] = Step("fetch", title)
    yield state["step"]
    t = time.perf_counter()
    fetched, pages = await read_pages([r.url for r in results], settings, client=client,
                                      guard=guard)
    n_ok = sum(p is not None for p in pages)
    yield Step("fetch", title, "done", time.perf_counter() - t,
               f"{n_ok} of {len(results)} readable\n{_fetch_log(fetched, pages)}")
    if not n_ok:
        yield WebSearchResult(query=query, notice=PAGES_UNREADABLE)
        return

    # 4. rank
    state["step"] = Step("rank", "Selecting passages")
    yield state["step"]
    t = time.perf_counter()
    kept = [(r, p) for r, p in zip(results, pages) if p is not None]
    docs = [RankDoc(title=p.title or r.title, sections=p.sections) for r, p in kept]
    budget = max(400, context_chars - CONTEXT_OVERHEAD)
    chosen = await asyncio.to_thread(
        rank_passages, docs, query, question, chunk_chars=settings.chunk_chars,
        max_passages=settings.max_passages, budget_chars=budget)
    sources: list[Source] = []
    by_doc: dict[int, Source] = {}
    for psg in chosen:  # already in (source, order) order: numbering follows search rank
        src = by_doc.get(psg.source)
        if src is None:
            r, p = kept[psg.source]
            src = Source(index=len(sources) + 1, title=r.title or p.title or _host(r.url),
                         url=r.url)
            by_doc[psg.source] = src
            sources.append(src)
        src.passages.append(psg.text)
        src.headings.append(psg.heading)
    n_src = len(sources)
    done_title = (f"Selected {len(chosen)} passage{'s' if len(chosen) != 1 else ''} "
                  f"from {n_src} source{'s' if n_src != 1 else ''}")
    yield Step("rank", done_title, "done", time.perf_counter() - t,
               "\n".join(f"[{s.index}] {s.title}" for s in sources) or None)
    if not sources:
        yield WebSearchResult(query=query, notice=NO_TEXT)
        return
    yield WebSearchResult(query=query, sources=sources,
                          context=build_context(query, sources, today=today))


async def run_websearch(
    question: str,
    history: list[dict],
    settings: WebSearchSettings,
    *,
    generate: Callable[[list[dict]], Awaitable[str]] | None,
    provider: SearchProvider | None = None,
    context_chars: int,
    today: _dt.date | None = None,
    guard: SsrfGuard | None = None,
    client: httpx.AsyncClient | None = None,
    cache: TTLCache | None = DEFAULT_CACHE,
) -> AsyncIterator[Step | WebSearchResult]:
    """Run the web search for `question`; yield Steps, then exactly one WebSearchResult.

    * `history`: the conversation *before* the question ({"role", "content"} dicts).
    * `generate`: the chat model as `async (messages) -> full text`; None (or a failure)
      means the user's own words are the query.
    * `provider`: defaults to the one named in `settings` (ddgs or searxng).
    * `context_chars`: characters the whole context may take (sources + instructions);
      e.g. `int(context_length_tokens * settings.context_fraction * 3)`.
    * `guard` / `client`: for tests (SSRF guard exemptions, a custom transport).
    Never raises except on cancellation.
    """
    today = today or _dt.date.today()
    state: dict = {"step": None, "query": ""}
    finished = False
    try:
        if provider is None:
            provider = make_provider(settings)
        async for ev in _run(question, history, settings, generate=generate, provider=provider,
                             context_chars=context_chars, today=today, guard=guard,
                             client=client, cache=cache, state=state):
            if isinstance(ev, WebSearchResult):
                finished = True
            elif ev.status == "done":
                state["step"] = None
            yield ev
    except (asyncio.CancelledError, GeneratorExit):
        raise
    except Exception:
        log.exception("web search failed")
        if finished:
            return
        step = state.get("step")
        if step is not None:  # end the step quietly: the notice tells the user, once
            yield Step(step.id, step.title, "done", None, None)
        yield WebSearchResult(query=state.get("query") or fallback_query(question),
                              notice=notice_for("unavailable"))
