"""Stage 2: ask a search engine for result URLs.

Two layers:

* A *provider* speaks to one engine. It implements `SearchProvider.search(query,
  max_results) -> list[SearchResult]` and signals failure by raising (ideally
  `SearchError` with a user-facing message). Providers here: `DdgsProvider` (the `ddgs`
  metasearch library, run in a thread because it is synchronous) and `SearxngProvider`
  (a SearXNG instance's JSON API over httpx). Tests pass a fake provider.
* `search_web(provider, query, settings)` is what the pipeline calls. It adds the
  per-(provider, query) TTL cache, a timeout, URL de-duplication and the allow/block
  domain lists, and it **never raises**: it returns a `SearchOutcome(results, notice)`
  where `notice` is one plain user-facing sentence when something went wrong (no results,
  engine unreachable, rate limited) and None otherwise.

What the user reads never carries internals: no exception text, URL or engine name (a
user does not know or care which engine the operator configured). The sentences are the
`NOTICES` below, picked by the failure's *kind*; the detail goes to the server log
(`logging.warning`, with the exception).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from chatui.config import WebSearchSettings

__all__ = [
    "SearchResult", "SearchOutcome", "SearchProvider", "SearchError", "DdgsProvider",
    "SearxngProvider", "TTLCache", "search_web", "domain_allowed", "host_matches",
    "make_provider", "DEFAULT_CACHE", "NOTICES", "notice_for",
]

log = logging.getLogger(__name__)

# The sentences a user may see when the search itself fails (kind -> sentence). Each says
# what happened in plain words and what it means for the answer.
NOTICES = {
    "unavailable": "Web search is unavailable right now, so this answer uses no sources.",
    "rate_limited": "Web search is busy right now, so this answer uses no sources. "
                    "Try again in a minute.",
    "timeout": "Web search took too long to answer, so this answer uses no sources.",
    "no_results": "Web search found nothing for this question, so this answer uses no sources.",
}


def notice_for(kind: str) -> str:
    return NOTICES.get(kind, NOTICES["unavailable"])


@dataclass
class SearchResult:
    title: str
    url: str
    snippet: str = ""


@dataclass
class SearchOutcome:
    results: list[SearchResult] = field(default_factory=list)
    notice: str | None = None
    cached: bool = False


class SearchError(Exception):
    """A search failed. `kind` ("unavailable", "rate_limited", "timeout") picks the
    sentence the user sees (`NOTICES`); the message is detail for the server log only."""

    def __init__(self, detail: str = "", kind: str = "unavailable"):
        super().__init__(detail)
        self.kind = kind if kind in NOTICES else "unavailable"

    @property
    def notice(self) -> str:
        return notice_for(self.kind)


@runtime_checkable
class SearchProvider(Protocol):
    async def search(self, query: str, max_results: int) -> list[SearchResult]: ...


# ---------------------------------------------------------------- domain lists

def _norm_host(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("www.") if host else ""


def host_matches(host: str, domain: str) -> bool:
    """True when `host` is `domain` or one of its subdomains (never a mere suffix:
    `notexample.com` does not match `example.com`)."""
    h, d = _norm_host(host), _norm_host(domain)
    if "://" in d:  # tolerate "https://example.com/" in the config
        d = _norm_host(urlsplit(d).hostname or "")
    return bool(d) and (h == d or h.endswith("." + d))


def domain_allowed(url_or_host: str, allow: list[str] | None = None,
                   block: list[str] | None = None) -> bool:
    host = urlsplit(url_or_host).hostname if "://" in url_or_host else url_or_host
    if not host:
        return False
    if any(host_matches(host, d) for d in block or ()):
        return False
    if allow:
        return any(host_matches(host, d) for d in allow)
    return True


# ---------------------------------------------------------------- cache

class TTLCache:
    """A small LRU cache whose entries expire after their own TTL (monotonic clock)."""

    def __init__(self, maxsize: int = 512):
        self.maxsize = maxsize
        self._data: OrderedDict[object, tuple[float, object]] = OrderedDict()

    def get(self, key: object) -> object | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if time.monotonic() >= expires:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def set(self, key: object, value: object, ttl: float) -> None:
        if ttl <= 0:
            return
        self._data[key] = (time.monotonic() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


DEFAULT_CACHE = TTLCache()
# A failed search (rate limit, no results) is remembered this long, so a user pressing
# retry does not hammer an engine that is already refusing us.
FAILURE_TTL = 20.0


# ---------------------------------------------------------------- providers

class DdgsProvider:
    """DuckDuckGo & co. through the `ddgs` library (synchronous, so it runs in a thread).

    ddgs swallows per-engine errors and ends in `DDGSException("No results found.")`
    (also what a rate limit looks like) or `TimeoutException`; both become `SearchError`.
    """

    name = "ddgs"

    def __init__(self, *, timeout: float = 5.0, region: str = "wt-wt",
                 safesearch: str = "moderate", backend: str = "auto"):
        self.timeout = timeout
        self.region = region
        self.safesearch = safesearch
        self.backend = backend

    @property
    def cache_key(self) -> str:
        return f"ddgs:{self.region}:{self.safesearch}:{self.backend}"

    def _search_sync(self, query: str, max_results: int) -> list[dict]:
        from ddgs.ddgs import DDGS  # the real class (`ddgs.DDGS` is a lazy proxy)

        return DDGS(timeout=max(1, round(self.timeout))).text(
            query, max_results=max_results, region=self.region,
            safesearch=self.safesearch, backend=self.backend) or []

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        try:
            from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException
        except ImportError as e:  # pragma: no cover - dependency missing
            raise SearchError("the ddgs package is not installed") from e
        try:
            rows = await asyncio.to_thread(self._search_sync, query, max_results)
        except RatelimitException as e:
            raise SearchError(f"ddgs rate limited: {e}", "rate_limited") from e
        except TimeoutException as e:
            raise SearchError(f"ddgs timed out: {e}", "timeout") from e
        except DDGSException as e:
            if "no results" in str(e).lower():
                return []
            raise SearchError(f"ddgs failed: {e}") from e
        out = []
        for row in rows:
            url = str(row.get("href") or row.get("url") or "")
            if url:
                out.append(SearchResult(title=str(row.get("title") or url),
                                        url=url, snippet=str(row.get("body") or "")))
        return out[:max_results]


class SearxngProvider:
    """A SearXNG instance's JSON API: `GET {base}/search?q=…&format=json`.

    The instance must have `json` in `search.formats` (settings.yml); otherwise it answers
    403, reported as a SearchError.
    """

    name = "searxng"

    def __init__(self, base_url: str, *, timeout: float = 5.0, safesearch: str = "moderate",
                 language: str | None = None, client: httpx.AsyncClient | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.safesearch = {"off": 0, "moderate": 1, "on": 2, "strict": 2}.get(safesearch, 1)
        self.language = language
        self._client = client

    @property
    def cache_key(self) -> str:
        return f"searxng:{self.base_url}:{self.safesearch}:{self.language}"

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        params = {"q": query, "format": "json", "safesearch": str(self.safesearch)}
        if self.language:
            params["language"] = self.language
        url = f"{self.base_url}/search"
        try:
            if self._client is not None:
                resp = await self._client.get(url, params=params, timeout=self.timeout)
            else:
                async with httpx.AsyncClient(timeout=self.timeout, trust_env=False,
                                             headers={"Accept": "application/json"}) as c:
                    resp = await c.get(url, params=params)
        except httpx.TimeoutException as e:
            raise SearchError(f"SearXNG at {url} timed out: {e!r}", "timeout") from e
        except httpx.HTTPError as e:
            raise SearchError(f"SearXNG at {url} unreachable: {e!r}") from e
        if resp.status_code == 429:
            raise SearchError(f"SearXNG at {url} answered HTTP 429", "rate_limited")
        if resp.status_code != 200:
            raise SearchError(f"SearXNG at {url} answered HTTP {resp.status_code} "
                              "(403: is json in search.formats of its settings.yml?)")
        try:
            data = resp.json()
        except ValueError as e:
            raise SearchError(f"SearXNG at {url} sent no JSON: {resp.text[:200]!r}") from e
        out = []
        for row in (data.get("results") or []) if isinstance(data, dict) else []:
            if not isinstance(row, dict) or not row.get("url"):
                continue
            out.append(SearchResult(title=str(row.get("title") or row["url"]),
                                    url=str(row["url"]), snippet=str(row.get("content") or "")))
        return out[:max_results]


def make_provider(settings: WebSearchSettings) -> SearchProvider:
    if settings.provider == "searxng":
        if not settings.searxng_url:
            raise ValueError("websearch.provider is searxng but websearch.searxng_url is not set")
        return SearxngProvider(settings.searxng_url, timeout=settings.search_timeout,
                               safesearch=settings.safesearch)
    return DdgsProvider(timeout=settings.search_timeout, region=settings.region,
                        safesearch=settings.safesearch)


# ---------------------------------------------------------------- the call the pipeline makes

def _provider_key(provider: object) -> str:
    return str(getattr(provider, "cache_key", None) or f"{type(provider).__name__}:{id(provider)}")


async def search_web(provider: SearchProvider, query: str, settings: WebSearchSettings,
                     *, max_results: int | None = None,
                     cache: TTLCache | None = DEFAULT_CACHE) -> SearchOutcome:
    """Search, filter and cache. Never raises (cancellation excepted)."""
    max_results = max_results or settings.max_results
    key = (_provider_key(provider), " ".join(query.lower().split()), max_results,
           tuple(settings.allow_domains), tuple(settings.block_domains))
    if cache is not None:
        hit = cache.get(key)
        if isinstance(hit, SearchOutcome):
            return SearchOutcome(list(hit.results), hit.notice, cached=True)
    # Ask for a few more than needed: some results fall to the domain lists or dedup.
    want = max_results + 4 if (settings.allow_domains or settings.block_domains) else max_results + 2
    name = getattr(provider, "name", type(provider).__name__)
    try:
        raw = await asyncio.wait_for(provider.search(query, want), settings.search_timeout + 1.0)
    except SearchError as e:
        log.warning("web search (%s) failed [%s]: %s", name, e.kind, e,
                    exc_info=e.__cause__ or e)
        outcome = SearchOutcome([], e.notice)
    except asyncio.TimeoutError:
        log.warning("web search (%s) gave no answer within %.1f s", name,
                    settings.search_timeout + 1.0)
        outcome = SearchOutcome([], notice_for("timeout"))
    except Exception as e:  # a provider bug must not break the chat turn
        log.warning("web search (%s) failed with an unexpected error", name, exc_info=e)
        outcome = SearchOutcome([], notice_for("unavailable"))
    else:
        results, seen = [], set()
        for r in raw or []:
            parts = urlsplit(r.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                continue
            if not domain_allowed(r.url, settings.allow_domains, settings.block_domains):
                continue
            norm = (parts.hostname.lower(), parts.path.rstrip("/"), parts.query)
            if norm in seen:
                continue
            seen.add(norm)
            results.append(r)
        results = results[:max_results]
        if not results:
            log.info("web search (%s): %s", name, f"all {len(raw)} results filtered out"
                     if raw else "no results")
        outcome = SearchOutcome(results, None if results else notice_for("no_results"))
    if cache is not None:
        cache.set(key, outcome, settings.cache_ttl if outcome.results else
                  min(FAILURE_TTL, settings.cache_ttl))
    return SearchOutcome(list(outcome.results), outcome.notice)
