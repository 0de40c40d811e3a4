"""How a shared conversation looks: the snapshot of `Store.get_share` as chat messages, and the
HTML of the sidebar's search results. Pure functions, no Gradio, no store.

A shared snapshot is rendered with the same `assistant_view` as the chat (model line, steps,
reasoning, citations, sources), and the page puts the result through the same sanitizing
Chatbot (safe_chatbot.py): a shared answer cannot carry more HTML than it could in the chat.
A user message's files show as in the chat: the same bubble (image previews, document names)
above the question.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone

from .attachments.flow import bubble
from .render import assistant_view
from .store.shares import snapshot_file_rows


def share_messages(messages: list[dict], show_model: bool = False) -> list[dict]:
    """Snapshot messages (`chatui.store.shares`) → Chatbot messages."""
    out: list[dict] = []
    for m in messages:
        if m.get("role") == "user":
            # Its files as the chat shows them, above the question, in a user bubble (the
            # sanitizer admits base64 raster images only there).
            if files := bubble(snapshot_file_rows(m.get("attachments"))):
                out.append({"role": "user", "content": files})
            out.append({"role": "user", "content": m.get("content") or ""})
            continue
        meta = m.get("meta") or {}
        out.extend(assistant_view(m.get("content") or "", m.get("finish_reason") or "stop",
                                  m.get("error"), m.get("sources") or [], meta.get("notices"),
                                  steps=meta.get("steps"),
                                  model=m.get("model") if show_model else None,
                                  reasoning=meta.get("reasoning"),
                                  reasoning_duration=meta.get("reasoning_duration")))
    return out


def share_banner(title: str, created_at: float) -> str:
    """Markdown above a shared conversation (its title is the owner's words: escaped)."""
    when = datetime.fromtimestamp(created_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"**Shared conversation:** {_md_escape(title or 'Untitled')}  \n"
            f"Read-only snapshot taken {when}. Continue it, or just send a message, to reply in your own chat.")


NOT_FOUND_BANNER = ("**This shared conversation was not found.** The link may be mistyped, or "
                    "its owner revoked it.")


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>&])", r"\\\1", " ".join(text.split()))


def search_results_html(results: list[dict], terms: list[str], query: str) -> str:
    """Search results as a list of links (``?c=<id>``; ui.js opens them in place), each with
    its title and snippet, the searched words marked. Everything the user or the model
    wrote is escaped; ids are the store's hex ids."""
    if not query.strip():
        return ""
    if not results:
        return '<p class="chatui-search-empty">No conversations match.</p>'
    items = []
    for r in results:
        title = _mark(r.get("title") or "Untitled", terms)
        snippet = _mark(r.get("snippet") or "", terms)
        cid = html.escape(str(r["id"]), quote=True)
        items.append(f'<li><a class="chatui-search-hit" href="?c={cid}" data-conv="{cid}">'
                     f'<span class="chatui-search-title">{title}</span>'
                     + (f'<span class="chatui-search-snippet">{snippet}</span>' if snippet
                        else "") + "</a></li>")
    return '<ul class="chatui-search-results">' + "".join(items) + "</ul>"


def _mark(text: str, terms: list[str]) -> str:
    """Escape ``text`` and wrap the words starting with a searched term in <mark>."""
    if not terms:
        return html.escape(text)
    pattern = re.compile("|".join(re.escape(t) for t in sorted(set(terms), key=len,
                                                                  reverse=True)), re.IGNORECASE)
    out, last = [], 0
    for m in pattern.finditer(text):
        out.append(html.escape(text[last:m.start()]))
        out.append("<mark>" + html.escape(m.group(0)) + "</mark>")
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)
