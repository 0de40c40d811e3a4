"""Extraction quality on the hand-labelled pages, and robustness on junk."""

from __future__ import annotations

import time

import pytest

from chatui.websearch.evaluate import evaluate, labelled_pages, token_prf
from chatui.websearch.extract import (bs4_heuristic_text, extract_main_text, extract_page,
                                      trafilatura_text)

from .conftest import INJECTION_HTML, LATIN1_HTML, MALFORMED_HTML


def test_token_prf():
    assert token_prf("a b c", "a b c") == (1.0, 1.0, 1.0)
    p, r, f = token_prf("a b c d", "a b")
    assert p == 0.5 and r == 1.0 and abs(f - 2 / 3) < 1e-9
    assert token_prf("", "a") == (0.0, 0.0, 0.0)


def test_labelled_set_present():
    pages = labelled_pages()
    assert len(pages) >= 8
    assert all(len(exp) > 300 and len(html) > len(exp) for _, html, exp in pages)


def test_extractors_beat_plain_text():
    res = evaluate()
    plain = res["bs4_get_text"]["f1"]
    assert res["trafilatura"]["f1"] >= 0.90 and res["trafilatura"]["f1"] > plain + 0.1
    assert res["bs4_heuristic"]["f1"] >= 0.85 and res["bs4_heuristic"]["f1"] > plain + 0.05
    assert res["extract_main_text"]["f1"] >= 0.90
    # every page individually is at least decent with the shipped extractor
    assert min(res["extract_main_text"]["per_page_f1"].values()) >= 0.75


def test_boilerplate_removed_and_headings_kept():
    html = dict((n, h) for n, h, _ in labelled_pages())["news_bike_lanes"]
    page = extract_page(html, "https://riverton.example/news/1")
    assert page.title == "Riverton council approves protected bike lanes on Harbour Road"
    assert page.extractor == "trafilatura"
    for junk in ("We use cookies", "Most read", "Get the morning briefing", "All rights reserved",
                 "Finally! I have been waiting"):
        assert junk not in page.text
    assert "Shop owners remain worried" in page.headings
    sec = next(s for s in page.sections if s.heading == "What happens next")
    assert "public comment in February" in sec.text


JUNK = {
    "malformed": MALFORMED_HTML, "empty": "", "blank": "   ", "lt": "<",
    "empty_body": "<html><body></body></html>", "nul": "\x00\x00\x00binary",
    "deep_divs": "<div>" * 5000 + "deep" + "</div>" * 10,
    "deep_article_p": "<article><p>" * 3000 + "bottom",
    "many_elements": "<div><p>w <a>l</a></p><span>s</span></div>" * 5000,
    "huge_para": "<p>" + "x" * 200_000, "no_tags": "just text, no tags at all",
    "head_only": "<html><head><title>t</title><script>alert(1)</script></head></html>",
    "xml_decl": '<?xml version="1.0" encoding="utf-8"?><html><body><p>decl</p></body></html>',
}


@pytest.mark.parametrize("name", JUNK)
def test_never_crashes_and_stays_fast(name):
    t0 = time.perf_counter()
    assert isinstance(extract_main_text(JUNK[name]), str)
    assert isinstance(extract_page(JUNK[name], "https://x.example/").sections, list)
    assert time.perf_counter() - t0 < 4.0  # pathological trees must not take minutes


def test_pathological_trees_use_flat_text():
    page = extract_page(JUNK["deep_article_p"])
    assert page.extractor == "flat" and page.text.endswith("bottom")


def test_malformed_page_keeps_its_text():
    text = extract_main_text(MALFORMED_HTML)
    assert "Magma chambers" in text and "not text" not in text


def test_falls_back_to_bs4_when_trafilatura_returns_nothing(monkeypatch):
    import trafilatura

    monkeypatch.setattr(trafilatura, "extract", lambda *a, **k: None)
    html = dict((n, h) for n, h, _ in labelled_pages())["wiki_axolotl"]
    page = extract_page(html)
    assert page.extractor == "bs4"
    assert "sexual maturity at around 18 to 24 months" in page.text
    assert "Privacy policy" not in page.text
    assert "Reproduction" in page.headings


def test_falls_back_when_trafilatura_raises(monkeypatch):
    import trafilatura

    def boom(*a, **k):
        raise ImportError("lxml.html.clean module is now a separate project lxml_html_clean")

    monkeypatch.setattr(trafilatura, "extract", boom)
    assert "Magma chambers" in extract_main_text(MALFORMED_HTML)


def test_bs4_heuristic_and_trafilatura_on_small_pages():
    assert "crème brûlée" in bs4_heuristic_text(LATIN1_HTML).lower()
    assert "Tomatoes need at least six hours" in trafilatura_text(INJECTION_HTML)
