"""A battle between two real model servers in Chromium: two `python -m llama_cpp.server`
processes on loopback serving the bundled SmolLM2 GGUF, configured as two models with
different system prompts. Both columns fill with the models' own text, the names stay out of
the Arena tab until the vote and are revealed after it, and the vote is stored with the
model that was really behind side B. (tests/test_arena_browser.py covers the rest with
wire-format fakes whose answers can be told apart token by token.)"""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import start_app, start_llama_server, stop_process

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NAMES = ("smol-pirate-arena", "smol-poet-arena")
CONFIG = """
models:
  - {{name: {a}, type: openai, endpoint_url: "{url_a}/v1", context_length: 2048,
     system_prompt: "You are a pirate. Answer like a pirate.",
     parameters: {{max_new_tokens: 40, temperature: 0.7, repetition_penalty: 1.2}}}}
  - {{name: {b}, type: openai, endpoint_url: "{url_b}/v1", context_length: 2048,
     system_prompt: "You are a poet. Answer in verse.",
     parameters: {{max_new_tokens: 40, temperature: 0.7, repetition_penalty: 1.2}}}}
storage:
  db_path: {{db}}
arena:
  enabled: true
websearch:
  enabled: false
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory, gguf_path):
    servers = [start_llama_server(gguf_path) for _ in range(2)]
    tmp = tmp_path_factory.mktemp("arena-llama")
    try:
        proc, url = start_app(tmp, CONFIG.format(a=NAMES[0], b=NAMES[1],
                                                 url_a=servers[0][1], url_b=servers[1][1]))
        yield url, tmp / "chat.db"
        stop_process(proc)
    finally:
        for server, _ in servers:
            stop_process(server)


def column(page, side: str) -> str:
    return " ".join(page.locator(f"#arena-{side} [data-testid='bot']").all_inner_texts())


def test_battle_between_two_llama_cpp_servers(browser, app):
    url, db = app
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    try:
        page.goto(url)
        page.click("button[role='tab']:has-text('Arena')")
        page.wait_for_selector("#arena-input textarea", timeout=30_000)
        page.fill("#arena-input textarea", "What is the sea?")
        page.keyboard.press("Enter")
        page.wait_for_selector("#arena-vote-b:not([disabled])", timeout=120_000)
        a, b = column(page, "a"), column(page, "b")
        assert len(a.split()) >= 3 and len(b.split()) >= 3, (a, b)   # both models answered
        html = page.inner_html("#arena-tab")
        assert all(name not in html for name in NAMES)                 # anonymous until…
        page.click("#arena-vote-b")
        page.wait_for_selector("#arena-reveal:has-text('Model B:')", timeout=15_000)
        reveal = page.inner_text("#arena-reveal")                      # …the vote
        shown = {side: next(n for n in NAMES if f"Model {side}: {n}" in reveal)
                 for side in ("A", "B")}
        assert shown["A"] != shown["B"]
        con = sqlite3.connect(db)
        try:
            rows = con.execute("SELECT t.winner, b.model_a, b.model_b FROM battle_turns t "
                               "JOIN battles b ON b.id = t.battle_id").fetchall()
        finally:
            con.close()
        assert rows == [("model_b", shown["A"], shown["B"])]
    finally:
        page.context.close()
