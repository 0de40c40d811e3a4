"""How one finished assistant turn looks in the chat, live or reloaded from history.

One function for both paths, so a reloaded conversation looks like it did while streaming.
"""

from __future__ import annotations

import html

STOPPED_MARK = "⏹️ *Stopped.*"
ERROR_PREFIX = "⚠️ **Error:** "
# Under an answer seen while another process still writes it (finish_reason None).
WRITING_MARK = "⏳ *Still being written…*"
# Under an answer cut by max_new_tokens: without it the answer just ends mid-sentence.
LENGTH_MARK = "✂️ *Stopped at the length limit — press **Continue** for more.*"


def model_line(model: str) -> dict:
    """The small muted line naming the model that wrote an answer, first in its bubble.

    `<small>` because the sanitizer lets attribute-free inline tags through (a class would
    be escaped); style.css mutes it and ui.js keeps it out of what the copy buttons copy."""
    return {"role": "assistant", "content": f"<small>{html.escape(model)}</small>"}


def error_bubble(text: str) -> dict:
    # A plain bubble, not a folded step: the user must see it without clicking.
    return {"role": "assistant", "content": ERROR_PREFIX + text}


THINKING_TITLE = "Thinking"


def thinking_limit_note(max_new_tokens: int | None) -> str:
    n = f"all {max_new_tokens}" if max_new_tokens else "all its"
    return (f"*(The model used {n} tokens thinking and wrote no answer: "
            "raise Max new tokens.)*")


def thinking_step(reasoning: str, status: str = "done", duration: float | None = None,
                  stopped: bool = False) -> dict:
    """The collapsible block of a model's reasoning, above its answer: open ("pending") while
    it thinks, folded ("done") once the answer starts. Plain text of the model, never cited."""
    meta: dict = {"title": THINKING_TITLE + (" (stopped)" if stopped else ""),
                  "status": status}
    if duration is not None and status == "done":
        meta["duration"] = round(duration, 2)
    return {"role": "assistant", "content": reasoning, "metadata": meta}


def assistant_view(text: str, finish_reason: str | None, error: str | None = None,
                   sources: list | None = None, notices: list[str] | None = None,
                   steps: list[dict] | None = None, model: str | None = None,
                   reasoning: str | None = None, reasoning_duration: float | None = None,
                   max_new_tokens: int | None = None) -> list[dict]:
    """The messages shown for one answer: the model that wrote it, its finished steps (web
    search…), its folded reasoning, text (with linked citations), stop or length mark,
    error, sources, notices.

    The model line comes first, so the last message of an answer stays its text or notes."""
    out: list[dict] = [model_line(model)] if model else []
    out += [dict(s, metadata={**(s.get("metadata") or {}), "status": "done"})
            for s in steps or []]
    if reasoning:
        # Stopped before any answer: the thoughts are kept and say they were cut.
        out.append(thinking_step(reasoning, "done", reasoning_duration,
                                 stopped=finish_reason == "stopped" and not text))
    body = text
    if sources and body:
        from .websearch.context import render_citations

        body = render_citations(body, sources)
    if finish_reason == "stopped":
        body = (body + "\n\n" if body else "") + STOPPED_MARK
    elif finish_reason is None:  # being written, seen from another tab or replica
        body = (body + "\n\n" if body else "") + WRITING_MARK
    elif finish_reason == "length" and body:
        body = body + "\n\n" + LENGTH_MARK
    if body:
        out.append({"role": "assistant", "content": body})
    if finish_reason == "error":
        out.append(error_bubble(error or "The model failed."))
    elif not body and finish_reason == "length" and reasoning:
        out.append({"role": "assistant", "content": thinking_limit_note(max_new_tokens)})
    elif not body and finish_reason == "length":
        out.append({"role": "assistant", "content": "*(The answer reached the length limit "
                                                    "before any text: raise Max new tokens.)*"})
    elif not body:
        out.append({"role": "assistant", "content": "*(The model returned no text.)*"})
    if sources:
        from .websearch.context import sources_markdown

        out.append({"role": "assistant", "content": sources_markdown(sources),
                    "metadata": {"title": f"Sources ({len(sources)})", "status": "done"}})
    for note in notices or []:
        out.append({"role": "assistant", "content": "",
                    "metadata": {"title": note, "status": "done"}})
    return out
