"""Pieces of the sidebar that need no browser: date groups of the chat list, the search
results' HTML (escaped, words marked) and the shared view's rendering."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chatui.share_page import search_results_html, share_messages
from chatui.sidebar import date_groups, group_style, utc_offset_minutes

NOW = datetime(2026, 12, 2, 15, 0).timestamp()


def at(days_ago: float, hour: int = 12) -> float:
    d = datetime.fromtimestamp(NOW - days_ago * 86400)
    return d.replace(hour=hour, minute=0).timestamp()


def test_groups_today_yesterday_week_older():
    times = [at(0, 14), at(0, 9), at(1), at(3), at(7), at(8), at(400)]
    assert date_groups(times, NOW) == [("Today", 0), ("Yesterday", 2),
                                       ("Previous 7 days", 3), ("Older", 5)]
    assert date_groups([], NOW) == [] and group_style([]) == ""
    css = group_style(date_groups(times, NOW))
    assert css.startswith("<style>") and 'nth-of-type(1)::before{content:"Today"}' in css
    assert 'nth-of-type(6)::before{content:"Older"}' in css


def test_search_results_are_escaped_links_with_marks():
    html = search_results_html(
        [{"id": "ab" * 16, "title": "<script>alert(1)</script> Flux", "snippet": "the flux <b>"}],
        ["flux"], "flux")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html
    assert html.count("<mark>") == 2 and 'href="?c=' + "ab" * 16 + '"' in html
    assert "No conversations match" in search_results_html([], ["x"], "x")
    assert search_results_html([], [], "  ") == ""


def test_shared_view_renders_like_the_chat():
    msgs = share_messages([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a [1]", "model": "m", "finish_reason": "stop",
         "sources": [{"url": "https://e.org", "title": "E"}], "meta": {"notices": ["n"]}},
    ], show_model=True)
    assert msgs[0] == {"role": "user", "content": "q"}
    assert msgs[1]["content"] == "<small>m</small>"
    assert any((m.get("metadata") or {}).get("title") == "Sources (1)" for m in msgs)
    assert any((m.get("metadata") or {}).get("title") == "n" for m in msgs)


def test_groups_follow_the_viewers_day_not_the_servers():
    # 2026-12-02 10:30 UTC: already the 3rd in Kiritimati (UTC+14), still the 1st at UTC-12.
    now = datetime(2026, 12, 2, 10, 30, tzinfo=timezone.utc).timestamp()
    t = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc).timestamp()   # 23:00 on the 2nd at +14
    kiritimati, baker = -14 * 60, 12 * 60              # getTimezoneOffset() is UTC - local
    assert date_groups([t], now, kiritimati) == [("Yesterday", 0)]
    assert date_groups([t], now, baker) == [("Today", 0)]
    assert date_groups([t], now, 0) == [("Today", 0)]
    late = datetime(2026, 12, 1, 13, 0, tzinfo=timezone.utc).timestamp()  # the 1st at UTC-12
    assert date_groups([late], now, baker) == [("Today", 0)]
    assert date_groups([late], now, 0) == [("Yesterday", 0)]


@pytest.mark.parametrize("value", ["-60", None, float("nan"), True, 10_000, [1]])
def test_an_implausible_offset_falls_back_to_the_servers_day(value):
    assert utc_offset_minutes(value) is None
    assert utc_offset_minutes(-120) == -120 and utc_offset_minutes(330.0) == 330
