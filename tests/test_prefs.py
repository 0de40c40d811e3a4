"""Saved chat settings (prefs.py): what a browser keeps, and what is accepted back from it."""

import math

import pytest

from chatui import prefs
from chatui.config import Settings


@pytest.fixture
def settings():
    return Settings.model_validate({
        "models": [
            {"name": "small", "type": "llamacpp", "model_path": "bundled",
             "context_length": 2048, "system_prompt": "Be brief.",
             "parameters": {"temperature": 0.6, "top_p": 0.9, "max_new_tokens": 256}},
            {"name": "tiny", "type": "openai", "endpoint_url": "http://127.0.0.1:9/v1",
             "context_length": 512, "system_prompt": "",
             "parameters": {"temperature": 0.2, "top_p": 0.5, "max_new_tokens": 4096}},
        ],
        "limits": {"max_system_prompt_chars": 100},
    })


def test_only_changes_from_the_models_defaults_are_saved(settings):
    assert prefs.to_saved(settings, "small", "Be brief.", 0.6, 0.9, 256, False) == {
        "model": "small"}
    assert prefs.to_saved(settings, "small", "Be a pirate.", 1.3, 0.9, 256, True) == {
        "model": "small", "system_prompt": "Be a pirate.", "temperature": 1.3,
        "web_search": True}
    assert prefs.to_saved(settings, "gone", "x", 1, 1, 16, False) == {}


def test_restore_round_trips_and_defaults_fill_the_rest(settings):
    saved = prefs.to_saved(settings, "tiny", "Speak French.", 1.1, 0.5, 128, True)
    assert prefs.restore(settings, saved) == prefs.Prefs("tiny", "Speak French.", 1.1, 0.5,
                                                         128, True)
    # Nothing saved yet, or not a dict: the default model's defaults.
    for nothing in (None, {}, [], "x"):
        assert prefs.restore(settings, nothing) == prefs.Prefs("small", "Be brief.", 0.6, 0.9,
                                                               256, False)
    # A model's max_new_tokens above its context is capped, as the slider is.
    assert prefs.defaults(settings, "tiny").max_new_tokens == 512


def test_stale_or_hand_edited_values_are_not_trusted(settings):
    p = prefs.restore(settings, {"model": "removed", "temperature": math.nan,
                                 "top_p": "0.5", "max_new_tokens": True,
                                 "system_prompt": "x" * 101, "web_search": "yes"})
    assert p == prefs.defaults(settings)
    p = prefs.restore(settings, {"model": "tiny", "temperature": 9, "top_p": -1,
                                 "max_new_tokens": 10**9, "system_prompt": 5})
    assert (p.temperature, p.top_p, p.max_new_tokens, p.system_prompt) == (2.0, 0.05, 512, "")
    assert isinstance(p.max_new_tokens, int)


def test_web_search_stays_off_when_the_operator_disables_it(settings):
    settings.websearch.enabled = False
    assert prefs.restore(settings, {"model": "small", "web_search": True}).web_search is False
