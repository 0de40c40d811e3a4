"""The one protocol every model backend speaks.

A backend turns a list of chat messages into a stream of `Delta`s. Text deltas come
first; the stream always ends with exactly one *final* delta that carries
`finish_reason` (and token counts when the backend knows them). Failures never escape
as exceptions: they end the stream with `finish_reason="error"` and a user-facing
`error` message, so the caller keeps whatever text already streamed.

A message list that ends with an *assistant* message asks for a continuation (prefill):
that message is the answer so far, cut at the length limit, and the backend writes what
follows it in the same assistant turn — the prompt leaves the turn open (no end-of-turn
token after it, no new assistant header), and the deltas carry only the new text, which the
caller appends to the partial answer as is (its leading space included).

Backends never import Gradio or the store: they are usable from any asyncio program.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

# Finish reasons shared by every backend and persisted with each answer.
STOP = "stop"  # the model ended its answer (EOS or a stop string)
LENGTH = "length"  # max_new_tokens or the context window was reached
STOPPED = "stopped"  # the user pressed stop / closed the tab
ERROR = "error"  # the backend failed; `Delta.error` says why
FINISH_REASONS = (STOP, LENGTH, STOPPED, ERROR)


@dataclass
class GenerationParams:
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 512
    repetition_penalty: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    def merged(self, **overrides: Any) -> GenerationParams:
        """A copy with the non-None overrides applied (UI settings over model defaults)."""
        values = asdict(self)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return GenerationParams(**values)


@dataclass
class Delta:
    text: str = ""  # the answer
    # The model's thinking, kept apart from the answer (see backends/reasoning.py).
    reasoning: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None

    @property
    def is_final(self) -> bool:
        return self.finish_reason is not None


# A message's content is a string, or OpenAI-style parts: {"type": "text", "text": …} and
# {"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}} (vision models).
# What an image costs in the context is model-specific; this is a middle estimate (a
# 1024-pixel image is 256–1,600 tokens across current vision models).
IMAGE_TOKENS = 768


def content_text(content: Any) -> str:
    """The text of a message's content, whichever form it has."""
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def content_images(content: Any) -> list[str]:
    """The image URLs (data: URLs here) of a message's content parts."""
    if not isinstance(content, list):
        return []
    return [str((p.get("image_url") or {}).get("url") or "") for p in content
            if isinstance(p, dict) and p.get("type") == "image_url"]


def continues(messages: list[dict]) -> bool:
    """True when the last message is a partial answer to continue (see the module doc)."""
    return bool(messages) and messages[-1].get("role") == "assistant"


class BackendError(Exception):
    """A failure with a message fit to show a user. `kind` lets callers react (retry on 429...)."""

    def __init__(self, message: str, kind: str = "error", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status


class Backend(abc.ABC):
    """Base class: subclasses implement `_stream`; `stream` adds the shared error contract."""

    type: str = "base"
    # Inline reasoning tags split off the start of the text (ModelSpec.reasoning_tags,
    # set by the registry); None: the text is all answer.
    reasoning_tags: tuple[str, str] | None = ("<think>", "</think>")

    def __init__(self, name: str, context_length: int = 2048,
                 defaults: GenerationParams | None = None):
        self.name = name
        self.context_length = context_length
        self.defaults = defaults or GenerationParams()

    @abc.abstractmethod
    def _stream(self, messages: list[dict], params: GenerationParams) -> AsyncIterator[Delta]:
        """Yield text deltas and finally one delta with finish_reason; may raise BackendError."""

    async def stream(self, messages: list[dict],
                     params: GenerationParams | None = None) -> AsyncIterator[Delta]:
        params = params or self.defaults
        final_seen = False
        try:
            # aclosing: when our consumer stops early, the backend's own generator is closed
            # right away (its abort runs now), not whenever garbage collection gets to it.
            from .reasoning import split_reasoning

            # One splitter for every backend: inline <think> tags become Delta.reasoning.
            # Not for a continuation: it resumes the answer mid-sentence, where a tag would be
            # quoted text, not thinking (and the thinking step was already shown).
            tags = None if continues(messages) else self.reasoning_tags
            async with contextlib.aclosing(split_reasoning(self._stream(messages, params),
                                                           tags)) as deltas:
                async for delta in deltas:
                    if delta.is_final:
                        final_seen = True
                    yield delta
                    if final_seen:
                        return
                    # A fast server delivers many tokens per network read and parsing them
                    # never awaits: give the event loop a turn per token so other users'
                    # streams and the UI relay are not starved until this answer is done.
                    await asyncio.sleep(0)
        except BackendError as e:
            yield Delta(finish_reason=ERROR, error=e.message)
            return
        except Exception as e:  # a backend bug must not take the app down with it
            yield Delta(finish_reason=ERROR, error=f"{self.name} failed: {type(e).__name__}: {e}")
            return
        if not final_seen:
            yield Delta(finish_reason=STOP)

    def count_tokens(self, messages: list[dict]) -> int:
        """Prompt size estimate used for context trimming; backends with a tokenizer override."""
        # ~4 characters per token for English text, plus per-message template overhead.
        return sum(len(content_text(m.get("content"))) // 3 + 6
                   + IMAGE_TOKENS * len(content_images(m.get("content"))) for m in messages)

    def info(self) -> dict:
        return {"name": self.name, "type": self.type, "context_length": self.context_length}

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        """Release connections, threads or engines."""


class Timer:
    """Measures TTFT and duration of one generation."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None

    def mark_token(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.start

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
