"""Fit a conversation into the model's context window.

Oldest turns go first; the system prompt and the newest user message are never dropped
(nor, when continuing an answer, the partial answer after it).
The answer needs room too, so the budget reserves max_new_tokens (shrunk, not refused,
when only a shorter answer would fit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MIN_ANSWER_TOKENS = 64


class ContextOverflow(Exception):
    """Even the newest message alone does not fit: the user must shorten it."""


@dataclass
class Fitted:
    messages: list[dict]
    dropped: int  # how many earlier messages were left out
    max_new_tokens: int
    prompt_tokens: int


def fit_messages(messages: list[dict], context_length: int, max_new_tokens: int,
                 count_tokens: Callable[[list[dict]], int]) -> Fitted:
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system):]
    if not turns:
        raise ValueError("no message to answer")
    answer = min(max_new_tokens, max(context_length // 2, MIN_ANSWER_TOKENS))
    # A continuation ends with the partial answer: its question stays with it.
    keep = 2 if len(turns) >= 2 and turns[-1]["role"] == "assistant" else 1
    start = 0
    while True:
        candidate = system + turns[start:]
        used = count_tokens(candidate)
        if used + answer <= context_length:
            return Fitted(candidate, start, max_new_tokens if start == 0 and
                          used + max_new_tokens <= context_length else
                          max(answer, min(max_new_tokens, context_length - used)), used)
        if start >= len(turns) - keep:
            if used + MIN_ANSWER_TOKENS <= context_length:
                return Fitted(candidate, start, context_length - used, used)
            raise ContextOverflow(
                f"Your message is too long for this model: about {used} tokens with the system "
                f"prompt, and the model reads at most {context_length}. Shorten it or pick a "
                "model with a longer context.")
        start += 1
        # Never start the kept history on an assistant turn: it would answer nothing.
        while start < len(turns) - keep and turns[start]["role"] != "user":
            start += 1
