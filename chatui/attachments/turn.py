"""What attachments add to one chat turn (called by chatui/chat.py, which stays small).

* `search_step`: the conversation's documents searched for the question → a finished
  progress step, numbered sources and the prompt block;
* `number_after`: web sources renumbered to follow the document sources (one numbering);
* `user_content`: the user's message with this turn's images as OpenAI content parts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .docsearch import DocIndex, build_document_context, search_documents

# Characters of instructions around the passages (kept out of the passages' budget).
CONTEXT_OVERHEAD = 1200


async def search_step(documents: list[DocIndex], question: str, settings: Any,
                      context_length: int) -> tuple[dict, list[dict], str]:
    """(finished step message, sources, context) for the attached documents."""
    t = time.perf_counter()
    budget = max(400, int(context_length * settings.context_fraction * 3) - CONTEXT_OVERHEAD)
    sources = await asyncio.to_thread(search_documents, documents, question,
                                      max_passages=settings.max_passages, budget_chars=budget)
    n = len(documents)
    what = f"{n} document{'s' if n != 1 else ''}"
    if sources:
        npass = sum(len(s["passages"]) for s in sources)
        title = f"Read {npass} passage{'s' if npass != 1 else ''} from {what}"
        log = "\n".join(f"[{s['index']}] {s['title']}" for s in sources)
    else:
        title, log = f"Nothing relevant found in {what}", None
    meta: dict = {"title": title, "status": "done",
                  "duration": round(time.perf_counter() - t, 2)}
    if log:
        meta["log"] = log
    step = {"role": "assistant", "content": log or "", "metadata": meta}
    return step, sources, build_document_context(sources)


def number_after(web_sources: list[dict], offset: int) -> list[dict]:
    """Web sources numbered after ``offset`` document sources."""
    return [dict(s, index=int(s["index"]) + offset) for s in web_sources]


def user_content(message: str, images: list[dict] | None) -> str | list[dict]:
    """Plain text, or OpenAI-style parts: the text first, then each image_url part."""
    if not images:
        return message
    return [{"type": "text", "text": message}, *images]
