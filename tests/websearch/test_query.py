import datetime as dt

import pytest

from chatui.websearch.query import MAX_QUERY_CHARS, build_query_messages, clean_query


def test_build_query_messages_is_date_aware_and_uses_history():
    history = [{"role": "user", "content": "Tell me about the Tour de France"},
               {"role": "assistant", "content": "It is a cycling race held in July."},
               {"role": "system", "content": "ignored"}]
    msgs = build_query_messages(history, "Who won it last year?", dt.date(2026, 11, 22))
    assert msgs[0]["role"] == "system" and "November 22, 2026" in msgs[0]["content"]
    assert msgs[-1]["role"] == "user"
    last = msgs[-1]["content"]
    assert "Tour de France" in last and "Who won it last year?" in last and "ignored" not in last
    assert all(m["role"] in ("system", "user", "assistant") for m in msgs)


def test_long_history_is_trimmed():
    history = [{"role": "user", "content": "x" * 10_000}] * 50
    msgs = build_query_messages(history, "q", dt.date(2026, 1, 1))
    assert sum(len(m["content"]) for m in msgs) < 8_000


@pytest.mark.parametrize("raw,expected", [
    ('Query: "python 3.13 release date"', "python 3.13 release date"),
    ("**Search query:** axolotl lifespan", "axolotl lifespan"),
    ("Here is the search query:\n\n“tour de france 2025 winner”\nThis finds...",
     "tour de france 2025 winner"),
    ("- tesla stock price.", "tesla stock price"),
    ("<think>the user wants...</think>\nnvidia earnings 2026", "nvidia earnings 2026"),
    ("`pip install numpy version`", "pip install numpy version"),
])
def test_clean_query(raw, expected):
    assert clean_query(raw, "fallback words") == expected


@pytest.mark.parametrize("raw", ["", "   ", "\"\"", "I'm sorry, I can't help with that.", "...",
                                 None])
def test_clean_query_falls_back(raw):
    assert clean_query(raw, "  What   is the\n capital of Peru? ") == "What is the capital of Peru?"


def test_clean_query_caps_length():
    out = clean_query("word " * 200, "x")
    assert 0 < len(out) <= MAX_QUERY_CHARS and not out.endswith(" ")
    assert len(clean_query("", "long " * 100)) <= MAX_QUERY_CHARS
