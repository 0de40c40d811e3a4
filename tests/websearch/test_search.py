"""Search providers and the search_web wrapper.

The public engines are unreachable here: DdgsProvider is tested by monkeypatching
`DDGS.text` with result dicts recorded from ddgs 9.16 (keys title/href/body), and
SearxngProvider against the real local HTTP server answering SearXNG-shaped JSON.
"""

from __future__ import annotations

import asyncio

import pytest
from ddgs.ddgs import DDGS  # the real class; ddgs.DDGS is a lazy proxy
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from chatui.config import WebSearchSettings
from chatui.websearch.search import (NOTICES, DdgsProvider, SearchError, SearchResult,
                                     SearxngProvider, TTLCache, domain_allowed, host_matches,
                                     make_provider, search_web)

RECORDED = [  # shape of DDGS().text(...) rows
    {"title": "Axolotl - Wikipedia", "href": "https://en.wikipedia.org/wiki/Axolotl",
     "body": "The axolotl is a paedomorphic salamander..."},
    {"title": "Axolotl care sheet", "href": "https://www.axolotl.org/care.htm",
     "body": "How to keep axolotls..."},
    {"title": "no link", "href": "", "body": "dropped"},
]


async def test_ddgs_provider_maps_rows(monkeypatch):
    seen = {}

    def fake_text(self, query, **kw):
        seen.update(kw, query=query)
        return RECORDED

    monkeypatch.setattr(DDGS, "text", fake_text)
    p = DdgsProvider(timeout=3, region="de-de", safesearch="off")
    res = await p.search("axolotl", 5)
    assert [r.url for r in res] == [RECORDED[0]["href"], RECORDED[1]["href"]]
    assert res[0].title == "Axolotl - Wikipedia" and res[0].snippet.startswith("The axolotl")
    assert seen["query"] == "axolotl" and seen["max_results"] == 5
    assert seen["region"] == "de-de" and seen["safesearch"] == "off" and seen["backend"] == "auto"


# What a user may read when the search fails: plain sentences, nothing technical.
INTERNALS = ("ddgs", "duckduckgo", "searxng", "brave", "bing", "engine", "http", "://", "error",
             "exception", "127.0.0.1", "dns", "(", "429", "500")


def assert_plain(notice: str):
    assert notice in NOTICES.values(), notice
    assert not any(word in notice.lower() for word in INTERNALS), notice


@pytest.mark.parametrize("exc,kind", [
    (DDGSException("No results found."), "no_results"),
    (TimeoutException("timed out"), "timeout"),
    (RatelimitException("202 Ratelimit"), "rate_limited"),
    (DDGSException("DNSError('error sending request for url (https://search.brave.com/search"
                   "?q=anything)')"), "unavailable"),
])
async def test_ddgs_failures_become_plain_notices(monkeypatch, caplog, exc, kind):
    def fake_text(self, query, **kw):
        raise exc

    monkeypatch.setattr(DDGS, "text", fake_text)
    s = WebSearchSettings()
    with caplog.at_level("INFO", logger="chatui.websearch"):
        out = await search_web(DdgsProvider(), "anything", s, cache=None)
    assert out.results == []
    assert out.notice == NOTICES[kind]
    assert_plain(out.notice)
    if kind != "no_results":  # the operator still gets the detail, with the exception
        warning = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warning) == 1 and str(exc) in warning[0].getMessage()
        assert warning[0].exc_info and warning[0].exc_info[1] is exc


@pytest.mark.parametrize("prefix,kind,detail", [
    ("/ratelimited", "rate_limited", "HTTP 429"),
    ("/broken", "unavailable", "HTTP 500"),
    ("/garbage", "unavailable", "not json"),
    ("/nope", "unavailable", "HTTP 404"),
])
async def test_searxng_failures_become_plain_notices(site, caplog, prefix, kind, detail):
    base = f"http://127.0.0.1:{site.port}{prefix}"
    with caplog.at_level("WARNING", logger="chatui.websearch"):
        out = await search_web(SearxngProvider(base), "anything", WebSearchSettings(), cache=None)
    assert out.results == [] and out.notice == NOTICES[kind]
    assert_plain(out.notice)
    (record,) = caplog.records
    assert detail in record.getMessage() and base in record.getMessage()


async def test_unreachable_searxng_is_unavailable_and_logged(caplog):
    with caplog.at_level("WARNING", logger="chatui.websearch"):
        out = await search_web(SearxngProvider("http://127.0.0.1:1"), "x", WebSearchSettings(),
                               cache=None)
    assert out.notice == NOTICES["unavailable"]
    (record,) = caplog.records
    assert "ConnectError" in record.getMessage() and record.exc_info


async def test_searxng_provider_against_local_server(site):
    p = SearxngProvider(f"http://127.0.0.1:{site.port}/")
    res = await p.search("axolotl regeneration", 5)
    assert [r.url for r in res] == ["https://a.example/one", "https://b.example/two"]
    assert res[1].title == "Second result" and res[1].snippet == "Snippet two"
    path = [h[0] for h in site.hits if h[0].startswith("/search")][-1]
    assert "format=json" in path and "q=axolotl+regeneration" in path


async def test_searxng_errors(site):
    with pytest.raises(SearchError):
        await SearxngProvider(f"http://127.0.0.1:{site.port}/nope").search("x", 3)
    with pytest.raises(SearchError):
        await SearxngProvider("http://127.0.0.1:1").search("x", 3)  # refused


def test_make_provider():
    assert isinstance(make_provider(WebSearchSettings()), DdgsProvider)
    p = make_provider(WebSearchSettings(provider="searxng", searxng_url="http://s.example"))
    assert isinstance(p, SearxngProvider) and p.base_url == "http://s.example"
    with pytest.raises(ValueError):
        make_provider(WebSearchSettings(provider="searxng"))


def test_domain_matching():
    assert host_matches("en.wikipedia.org", "wikipedia.org")
    assert host_matches("www.wikipedia.org", "wikipedia.org")
    assert not host_matches("notwikipedia.org", "wikipedia.org")
    assert domain_allowed("https://a.b.example.com/x", block=["other.com"])
    assert not domain_allowed("https://a.b.example.com/x", block=["example.com"])
    assert not domain_allowed("https://x.org/", allow=["example.com"])
    assert domain_allowed("https://docs.example.com/", allow=["https://example.com/"])


async def test_search_web_filters_dedups_and_caches(fake_provider):
    prov = fake_provider([
        SearchResult("A", "https://a.example/x"), SearchResult("A again", "https://a.example/x/"),
        SearchResult("Spam", "https://ads.spam.example/y"), SearchResult("FTP", "ftp://f.example/"),
        SearchResult("B", "https://b.example/z"),
    ])
    prov.cache_key = "fake-1"
    s = WebSearchSettings(block_domains=["spam.example"], max_results=5)
    cache = TTLCache()
    out = await search_web(prov, "Query  One", s, cache=cache)
    assert [r.url for r in out.results] == ["https://a.example/x", "https://b.example/z"]
    assert out.notice is None and not out.cached
    again = await search_web(prov, "query one", s, cache=cache)
    assert again.cached and [r.url for r in again.results] == [r.url for r in out.results]
    assert len(prov.calls) == 1  # second call served from the cache


async def test_cache_expires():
    c = TTLCache(maxsize=2)
    c.set("a", 1, ttl=0.05)
    c.set("b", 2, ttl=10)
    c.set("c", 3, ttl=10)  # evicts "a" (LRU)
    assert c.get("a") is None and c.get("b") == 2
    c.set("d", 4, ttl=0.01)
    await asyncio.sleep(0.03)
    assert c.get("d") is None


async def test_slow_or_buggy_provider(fake_provider):
    class Slow:
        cache_key = "slow"

        async def search(self, q, n):
            await asyncio.sleep(10)

    s = WebSearchSettings(search_timeout=0.1)
    out = await search_web(Slow(), "q", s, cache=None)
    assert out.results == [] and out.notice == NOTICES["timeout"]
    out = await search_web(fake_provider(exc=KeyError("x")), "q", s, cache=None)
    assert out.results == [] and out.notice == NOTICES["unavailable"]
    assert_plain(out.notice)
