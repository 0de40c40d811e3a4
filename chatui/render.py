"""How one finished assistant turn looks in the chat, live or reloaded from history.

One function for both paths, so a reloaded conversation looks like it did while streaming.
"""

from __future__ import annotations

STOPPED_MARK = "⏹️ *Stopped.*"
ERROR_PREFIX = "⚠️ **Error:** "


def error_bubble(text: str) -> dict:
    # A plain bubble, not a folded step: the user must see it without clicking.
    return {"role": "assistant", "content": ERROR_PREFIX + text}


def assistant_view(text: str, finish_reason: str | None, error: str | None = None,
                   sources: list | None = None, notices: list[str] | None = None) -> list[dict]:
    """The messages shown for one answer: text (with linked citations), stop mark, error,
    sources list, notices."""
    out: list[dict] = []
    body = text
    if sources and body:
        from .websearch.context import render_citations

        body = render_citations(body, sources)
    if finish_reason == "stopped":
        body = (body + "\n\n" if body else "") + STOPPED_MARK
    if body:
        out.append({"role": "assistant", "content": body})
    if finish_reason == "error":
        out.append(error_bubble(error or "The model failed."))
    elif not body:
        out.append({"role": "assistant", "content": "*(The model returned no text.)*"})
    if sources:
        from .websearch.context import sources_markdown

        out.append({"role": "assistant", "content": sources_markdown(sources),
                    "metadata": {"title": f"📚 Sources ({len(sources)})", "status": "done"}})
    for note in notices or []:
        out.append({"role": "assistant", "content": "",
                    "metadata": {"title": "ℹ️ " + note, "status": "done"}})
    return out
