import datetime as dt

import pytest

from chatui.websearch.query import (MAX_QUERY_CHARS, build_query_messages, check_query,
                                    clean_query, keyword_query)

TODAY = dt.date(2026, 11, 22)


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


# ---------------------------------------------------------------- keeping the question's terms

WORLD_CUP = "Who won the 2026 football world cup?"
PYTHON = "latest Python version"


@pytest.mark.parametrize("question,model_query", [
    (WORLD_CUP, "2018 World Cup winner"),            # changed the year
    (WORLD_CUP, "World Cup winner"),                 # dropped the year
    (WORLD_CUP, "2026 football championship winner"),  # dropped "world cup"
    (PYTHON, "Python 3.8 version"),                  # invented a version number
    (PYTHON, "Python version"),                      # dropped "latest"
    (PYTHON, "latest Java version"),                 # swapped the name
    ("What did Marie Curie discover in 1898?", "Marie Curie discoveries 1903"),
    ("What did Marie Curie discover in 1898?", "Curie discoveries 1898"),  # dropped "Marie"
    ("How tall is the Eiffel Tower?", "Eiffel tower height 1889"),  # a number from nowhere
    ("Population of São Paulo in 2,024", "Rio de Janeiro population 2024"),
])
def test_query_that_contradicts_the_question_is_refused(question, model_query):
    assert check_query(model_query, question, [], TODAY)


@pytest.mark.parametrize("question,model_query", [
    (WORLD_CUP, "won 2026 football world cup"),
    (WORLD_CUP, "2026 FIFA football world-cup winners"),  # plural, hyphen, "won" ~ "winner"
    (PYTHON, "latest Python version 2026"),      # the year the prompt asks it to add
    ("How long is the Zorblax Bridge?", "Zorblax Bridge length"),
    ("Population of São Paulo in 2,024", "Sao Paulo population 2024"),  # "2,024" == "2024"
    ("How do I pin a numpy version with pip?", "pin numpy version with pip"),
    ("Is GPT-4o better than Claude 3.5 Sonnet at coding?",
     "GPT 4o vs Claude 3.5 Sonnet coding, which is better"),
])
def test_query_that_keeps_the_question_is_kept(question, model_query):
    assert check_query(model_query, question, [], TODAY) is None


def test_long_question_needs_most_not_all_key_words():
    q = ("I am planning a cheap weekend trip to Lisbon with friends and wonder how to get "
         "around the city by tram and metro")
    assert check_query("Lisbon weekend trip cheap tram metro city friends", q, [], TODAY) is None
    assert check_query("Lisbon tram", q, [], TODAY)  # too little of the question left


def test_referring_question_may_take_words_from_the_conversation():
    history = [{"role": "user", "content": "Tell me about the Tour de France"},
               {"role": "assistant", "content": "It is a cycling race held in July since 1903."}]
    q = "Who won it last year?"
    # "last year" names a year; the model may write it out; names from the chat resolve "it"
    assert check_query("Tour de France 2025 winner", q, history, TODAY) is None
    assert check_query("Tour de France 1903 first race", q, history, TODAY) is None
    assert check_query("Tour de France 2019 winner", q, history, TODAY)  # 2019: from nowhere
    # Without the conversation, the same query brings a number from nowhere.
    assert check_query("Tour de France 1903 first race", "Who won the first one?", [], TODAY)
    # A fallback keyword query keeps the subject of the conversation.
    assert keyword_query(q, history) == "Tour de France won last year"


@pytest.mark.parametrize("question,expected", [
    (WORLD_CUP, "won 2026 football world cup"),
    (PYTHON, "latest Python version"),
    ("What's the population of São Paulo in 2,024?", "population São Paulo 2,024"),
    ("Compare C++ and Rust for embedded systems, please", "C++ Rust embedded systems"),
    ("How do I use GPT-4o with node.js?", "use GPT-4o node.js"),
    ("What is it?", "What is it?"),  # nothing but stop words: the question as asked
])
def test_keyword_query(question, expected):
    assert keyword_query(question) == expected
    assert check_query(keyword_query(question), question, [], TODAY) is None  # self-consistent


def test_prompt_asks_to_keep_numbers_and_examples_obey_the_check():
    msgs = build_query_messages([], WORLD_CUP, TODAY)
    assert "never change a year" in msgs[0]["content"]
    for ask, answer in zip(msgs[1:-1:2], msgs[2:-1:2]):  # the few-shot pairs
        question = ask["content"].removeprefix("User's last message: ").split("\n")[0]
        assert check_query(answer["content"], question, [], TODAY) is None, answer
