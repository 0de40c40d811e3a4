"""run_websearch end to end against the loopback site; the search engine is a fake
(public engines are unreachable here) that returns URLs on that site."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from dataclasses import asdict

import pytest

from chatui.websearch import Step, WebSearchResult, render_citations, run_websearch
from chatui.websearch.context import UNTRUSTED_BEGIN, UNTRUSTED_END
from chatui.websearch.pipeline import PAGES_UNREADABLE
from chatui.websearch.search import NOTICES, SearchError, SearchResult

TODAY = dt.date(2026, 11, 22)


async def _collect(agen):
    events = [ev async for ev in agen]
    assert isinstance(events[-1], WebSearchResult)
    assert sum(isinstance(e, WebSearchResult) for e in events) == 1
    return [e for e in events if isinstance(e, Step)], events[-1]


def _results(site, paths):
    return [SearchResult(title=f"Result {p}", url=site.base + p, snippet="") for p in paths]


async def test_full_run_steps_sources_and_citations(site, guard, settings, fake_provider):
    paths = ["/page/news_bike_lanes", "/page/wiki_axolotl", "/to-metadata", "/doc.pdf",
             "/page/science_bees", "/injection"]
    prov = fake_provider(_results(site, paths))
    seen = []

    async def generate(messages):
        seen.append(messages)
        return 'Query: "axolotl breeding age"'

    steps, res = await _collect(run_websearch(
        "At what age can axolotls breed?", [{"role": "user", "content": "hi"}], settings,
        generate=generate, provider=prov, context_chars=6000, today=TODAY, guard=guard,
        cache=None))
    assert res.query == "axolotl breeding age"
    assert prov.calls[0][0] == res.query
    assert "November 22, 2026" in seen[0][0]["content"]
    # step protocol: each id pending then done (same id), in order
    assert [(s.id, s.status) for s in steps] == [
        ("query", "pending"), ("query", "done"), ("search", "pending"), ("search", "done"),
        ("fetch", "pending"), ("fetch", "done"), ("rank", "pending"), ("rank", "done")]
    assert steps[2].title == "Searching for “axolotl breeding age”"
    assert steps[4].title == "Reading 6 pages"
    assert steps[-1].title.startswith("Selected ") and all(
        s.duration is not None and s.duration >= 0 for s in steps if s.status == "done")
    # plain words per page, never the fetcher's internals (status codes, exception text)
    assert "not allowed" in steps[5].log and "not a web page" in steps[5].log
    assert not any(w in steps[5].log for w in ("blocked", "bad_type", "169.254", "Error"))
    # the axolotl page is the source of the answer, numbered by search order
    assert res.notice is None and res.sources
    by_url = {s.url: s for s in res.sources}
    axo = by_url[site.base + "/page/wiki_axolotl"]
    assert any("18 to 24 months" in p for p in axo.passages)
    assert [s.index for s in res.sources] == list(range(1, len(res.sources) + 1))
    order = [paths.index(s.url.removeprefix(site.base)) for s in res.sources]
    assert order == sorted(order)
    # citations link to the right URL
    answer = f"They breed at 18-24 months [{axo.index}]."
    assert f"[[{axo.index}]]({axo.url}" in render_citations(answer, res.sources)
    # context: numbered sources inside the untrusted block; JSON-serializable result
    ctx = res.context
    assert f"[{axo.index}] " in ctx[ctx.index(UNTRUSTED_BEGIN):ctx.index(UNTRUSTED_END)]
    assert len(ctx) <= 6000 + 200
    json.dumps(asdict(res))
    assert res.to_dict()["sources"][0]["url"].startswith(site.base)


async def test_deadline_holds_with_hanging_page(site, guard, settings, fake_provider):
    s = settings.model_copy(update={"deadline": 1.5, "page_timeout": 5.0})
    prov = fake_provider(_results(site, ["/hang", "/page/travel_lisbon", "/hang-partial", "/big"]))
    t0 = time.perf_counter()
    steps, res = await _collect(run_websearch(
        "How do I get around Lisbon?", [], s, generate=None, provider=prov,
        context_chars=5000, today=TODAY, guard=guard, cache=None))
    fetch_done = next(st for st in steps if st.id == "fetch" and st.status == "done")
    # fetch deadline + extraction grace (0.5 s) + scheduling slack on a busy 2-core box
    assert fetch_done.duration <= s.deadline + 0.5 + 0.25, fetch_done.duration
    assert time.perf_counter() - t0 <= s.deadline + 1.0
    assert "too slow" in fetch_done.log and "too long, read in part" in fetch_done.log
    assert res.sources and any("Navegante" in p for src in res.sources for p in src.passages)
    assert not any(st.id == "query" for st in steps)  # generate=None: no query step
    assert res.query == "How do I get around Lisbon?"


async def test_no_private_address_contacted_in_pipeline(site, trap, guard, settings, fake_provider):
    prov = fake_provider([
        SearchResult("a", f"http://127.0.0.1:{trap.port}/admin"),
        SearchResult("b", f"http://localhost:{trap.port}/admin"),
        SearchResult("c", site.base + "/to-loopback"),
        SearchResult("d", site.base + "/to-evil-name"),
        SearchResult("e", "http://169.254.169.254/latest/meta-data/"),
    ])
    steps, res = await _collect(run_websearch(
        "internal secrets", [], settings, generate=None, provider=prov, context_chars=4000,
        today=TODAY, guard=guard, cache=None))
    assert trap.hits == []
    assert res.sources == [] and res.notice and "could be read" in res.notice
    assert "SECRET" not in json.dumps(asdict(res))


def _shown(steps, res) -> str:
    """Everything a user can read of a run: step titles and logs, the notice."""
    return "\n".join([s.title for s in steps] + [s.log or "" for s in steps]
                     + [res.notice or ""])


async def test_failures_end_with_notice_not_exception(site, guard, settings, fake_provider):
    async def bad_generate(messages):
        raise RuntimeError("backend down")

    # search engine fails
    steps, res = await _collect(run_websearch(
        "q?", [], settings, generate=bad_generate, provider=fake_provider(exc=SearchError(
            "ddgs rate limited: 202 Ratelimit", "rate_limited")),
        context_chars=4000, today=TODAY, guard=guard, cache=None))
    assert res.sources == [] and res.notice == NOTICES["rate_limited"] and res.context == ""
    assert res.query == "q?" and steps[1].log == "q?\nSearched with your own words."
    assert not any(w in _shown(steps, res) for w in ("Ratelimit", "RuntimeError", "backend"))
    # no results
    _, res = await _collect(run_websearch("q", [], settings, generate=None,
                                          provider=fake_provider([]), context_chars=4000,
                                          guard=guard, cache=None))
    assert res.sources == [] and res.notice == NOTICES["no_results"]
    # every page fails
    _, res = await _collect(run_websearch(
        "q", [], settings, generate=None,
        provider=fake_provider(_results(site, ["/image.png", "/notfound", "/loop-a"])),
        context_chars=4000, guard=guard, cache=None))
    assert res.sources == [] and res.notice == PAGES_UNREADABLE


async def test_failing_engine_is_told_once_in_plain_words(guard, settings, fake_provider,
                                                         caplog):
    """Issue 9.5: an engine failure showed its exception text (cut at 100 characters, with
    the engine's URL) twice: as the search step's log and as the notice."""
    exc = SearchError("ddgs failed: DNSError('error sending request for url "
                      "(https://search.brave.com/search?q=q)')")
    with caplog.at_level("WARNING", logger="chatui.websearch"):
        steps, res = await _collect(run_websearch(
            "Who won the 2026 football world cup?", [], settings, generate=None,
            provider=fake_provider(exc=exc), context_chars=4000, today=TODAY, guard=guard,
            cache=None))
    assert res.notice == "Web search is unavailable right now, so this answer uses no sources."
    shown = _shown(steps, res)
    assert shown.count(res.notice) == 1  # the notice only, not again as the step log
    search_done = [s for s in steps if s.id == "search" and s.status == "done"]
    assert len(search_done) == 1 and search_done[0].log is None
    for word in ("DNSError", "brave", "http", "ddgs", "engine"):
        assert word not in shown.lower().replace("web search", ""), word
    # ... and the operator gets it all in the server log, with the exception
    logged = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(logged) == 1 and "search.brave.com" in logged[0].getMessage()
    assert logged[0].exc_info and logged[0].exc_info[1] is exc


def test_step_log_is_the_body_not_beside_the_title():
    """Gradio prints metadata["log"] beside the step title; the chat layer shows the log as
    the message body. Both would show every log twice."""
    md = Step("search", "Searching for “x”", "done", 0.5, "1. A — a.example").metadata()
    assert md == {"title": "Searching for “x”", "status": "done", "id": "search",
                  "duration": 0.5}


async def test_model_query_that_changes_the_year_is_replaced(site, guard, settings,
                                                             fake_provider):
    """Issue 9.6: the query the engine gets keeps the question's year and terms."""
    prov = fake_provider(_results(site, ["/page/wiki_axolotl"]))

    async def generate(messages):
        return "2018 World Cup winner"

    steps, res = await _collect(run_websearch(
        "Who won the 2026 football world cup?", [], settings, generate=generate,
        provider=prov, context_chars=4000, today=TODAY, guard=guard, cache=None))
    assert prov.calls[0][0] == res.query == "won 2026 football world cup"
    assert steps[1].log == ("won 2026 football world cup\n"
                            "Searched with the key words of your question.")
    assert steps[2].title == "Searching for “won 2026 football world cup”"

    async def good(messages):
        return "2026 FIFA World Cup winner football"

    _, res = await _collect(run_websearch(
        "Who won the 2026 football world cup?", [], settings, generate=good,
        provider=prov, context_chars=4000, today=TODAY, guard=guard, cache=None))
    assert prov.calls[1][0] == res.query == "2026 FIFA World Cup winner football"


async def test_unexpected_bug_becomes_notice(site, guard, settings, fake_provider, monkeypatch):
    import chatui.websearch.pipeline as pl

    def boom(*a, **k):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(pl, "rank_passages", boom)
    steps, res = await _collect(run_websearch(
        "axolotl", [], settings, generate=None,
        provider=fake_provider(_results(site, ["/page/wiki_axolotl"])), context_chars=4000,
        guard=guard, cache=None))
    assert res.sources == [] and res.notice == NOTICES["unavailable"]
    assert steps[-1].id == "rank" and steps[-1].status == "done"  # no step left pending
    assert steps[-1].log is None and "ZeroDivision" not in _shown(steps, res)


async def test_slow_generate_falls_back(site, guard, settings, fake_provider, monkeypatch):
    import chatui.websearch.pipeline as pl

    monkeypatch.setattr(pl, "QUERY_TIMEOUT", 0.2)

    async def slow(messages):
        await asyncio.sleep(5)
        return "never"

    t0 = time.perf_counter()
    _, res = await _collect(run_websearch(
        "Lisbon trams", [], settings, generate=slow,
        provider=fake_provider(_results(site, ["/page/travel_lisbon"])), context_chars=4000,
        guard=guard, cache=None))
    assert res.query == "Lisbon trams" and time.perf_counter() - t0 < 3
    assert res.sources and res.sources[0].url.endswith("/page/travel_lisbon")


async def test_cancellation_propagates_and_stops_fetches(site, guard, settings, fake_provider):
    s = settings.model_copy(update={"deadline": 10.0, "page_timeout": 10.0})
    agen = run_websearch("x", [], s, generate=None,
                         provider=fake_provider(_results(site, ["/hang"])), context_chars=4000,
                         guard=guard, cache=None)

    async def consume():
        async for _ in agen:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    t0 = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - t0 < 1.0
