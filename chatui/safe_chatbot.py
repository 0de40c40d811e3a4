"""The app's chat component: a gr.Chatbot that only ever sends sanitized text to the browser.

Every value the server sends to the Chatbot goes through its `postprocess`: streamed
snapshots, reloaded conversations, the user's own messages, web-search steps and their
titles, error and notice bubbles. Sanitizing there is one choke point for all of them,
including handlers written later, instead of a call in each (see sanitize.py).

A wrapped instance rather than a subclass: Gradio writes a `.pyi` stub next to the module of
every Component subclass when it is imported, and sends the browser the props named in the
constructor's signature, which must stay gr.Chatbot's.
"""

from __future__ import annotations

import dataclasses
import inspect

import gradio as gr

from .sanitize import BLOCKED_TAGS, sanitize_message

__all__ = ["safe_chatbot", "safe_message"]


def safe_chatbot(*, image_hosts: list[str] | tuple[str, ...] = (), **kwargs) -> gr.Chatbot:
    """A gr.Chatbot whose outgoing messages are sanitized; `image_hosts` are the hosts whose
    https images may show inline."""
    hosts = tuple(image_hosts)
    kwargs.setdefault("sanitize_html", True)
    # Third line of defence, in the browser: Gradio shows these tags as text should one
    # ever reach the rendered HTML ("img" stays when images from some hosts are allowed).
    kwargs.setdefault("allow_tags", [t for t in BLOCKED_TAGS if not (hosts and t == "img")])
    bot = gr.Chatbot(**kwargs)
    postprocess = bot.postprocess

    def sanitized_postprocess(value):
        if value:
            value = [safe_message(m, hosts, bot.latex_delimiters) for m in value]
        return postprocess(value)

    bot.postprocess = sanitized_postprocess
    bot.image_hosts = hosts
    return bot


def safe_message(message, image_hosts=(), latex_delimiters=None):
    """One chat message as the browser may receive it."""
    # Gradio dedents string content (inspect.cleandoc) on its way to the browser, which can
    # change what is code. Dedent first, sanitize, and hand over a text part, which Gradio
    # passes unchanged: the sanitizer judges exactly the text the browser renders.
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        message = {**message, "content": [{"type": "text",
                                           "text": inspect.cleandoc(message["content"])}]}
    elif isinstance(message, gr.ChatMessage) and isinstance(message.content, str):
        message = dataclasses.replace(
            message, content=[{"type": "text", "text": inspect.cleandoc(message.content)}])
    return sanitize_message(message, image_hosts, latex_delimiters)
