"""A browser's chat settings (model, system prompt, sampling, web search) across reloads.

The UI keeps them in the browser's localStorage (`gr.BrowserState`); this module decides
what is saved and checks what comes back, because a stored value is client data: it may be
stale (a model removed from the config, a smaller context) or edited by hand.

Only what differs from the chosen model's defaults is saved, so a user who never touched the
system prompt gets the operator's new default when it changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import Settings

TEMPERATURE = (0.0, 2.0)
TOP_P = (0.05, 1.0)
MIN_NEW_TOKENS = 16


@dataclass
class Prefs:
    model: str
    system_prompt: str
    temperature: float
    top_p: float
    max_new_tokens: int
    web_search: bool


def defaults(settings: Settings, model: str | None = None) -> Prefs:
    """The settings a model starts with (what choosing it in the dropdown shows)."""
    spec = settings.model(model)
    p = spec.parameters
    return Prefs(spec.name, spec.system_prompt or "", p.temperature, p.top_p,
                 min(p.max_new_tokens, spec.context_length), False)


def to_saved(settings: Settings, model, system_prompt, temperature, top_p, max_new_tokens,
             web_search) -> dict:
    """What to keep in the browser: the model, and each value that is not its default."""
    try:
        base = defaults(settings, model)
    except KeyError:
        return {}
    chosen = {"system_prompt": system_prompt, "temperature": temperature, "top_p": top_p,
              "max_new_tokens": max_new_tokens, "web_search": bool(web_search)}
    saved: dict = {"model": base.model}
    for key, value in chosen.items():
        if value is not None and value != getattr(base, key):
            saved[key] = value
    return saved


def _number(value, low: float, high: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return None
    return min(max(value, low), high)


def restore(settings: Settings, saved) -> Prefs:
    """The settings to show after a reload: the saved ones where valid, else defaults."""
    saved = saved if isinstance(saved, dict) else {}
    names = [m.name for m in settings.models]
    model = saved.get("model") if saved.get("model") in names else None
    prefs = defaults(settings, model)
    spec = settings.model(prefs.model)
    prompt = saved.get("system_prompt")
    if isinstance(prompt, str) and len(prompt) <= settings.limits.max_system_prompt_chars:
        prefs.system_prompt = prompt
    temperature = _number(saved.get("temperature"), *TEMPERATURE)
    if temperature is not None:
        prefs.temperature = temperature
    top_p = _number(saved.get("top_p"), *TOP_P)
    if top_p is not None:
        prefs.top_p = top_p
    tokens = _number(saved.get("max_new_tokens"), MIN_NEW_TOKENS, spec.context_length)
    if tokens is not None:
        prefs.max_new_tokens = int(tokens)
    if isinstance(saved.get("web_search"), bool):
        prefs.web_search = saved["web_search"] and settings.websearch.enabled
    return prefs
