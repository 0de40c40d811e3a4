"""Web search for chat answers: query -> search -> fetch -> extract -> rank -> context.

Each stage is its own module, usable and testable alone; `run_websearch` chains them.
"""

from chatui.websearch.context import (Source, build_context, render_citations,
                                      sources_markdown)
from chatui.websearch.extract import Page, Section, extract_main_text, extract_page
from chatui.websearch.fetch import FetchResult, SsrfGuard, fetch_pages, is_public_ip
from chatui.websearch.pipeline import Step, WebSearchResult, run_websearch
from chatui.websearch.query import build_query_messages, clean_query
from chatui.websearch.rank import Passage, rank_passages
from chatui.websearch.search import (DdgsProvider, SearchError, SearchOutcome, SearchProvider,
                                     SearchResult, SearxngProvider, TTLCache, make_provider,
                                     search_web)

__all__ = [
    "run_websearch", "Step", "WebSearchResult", "Source",
    "build_query_messages", "clean_query",
    "SearchProvider", "SearchResult", "SearchOutcome", "SearchError", "DdgsProvider",
    "SearxngProvider", "TTLCache", "make_provider", "search_web",
    "fetch_pages", "FetchResult", "SsrfGuard", "is_public_ip",
    "extract_main_text", "extract_page", "Page", "Section",
    "rank_passages", "Passage",
    "build_context", "render_citations", "sources_markdown",
]
