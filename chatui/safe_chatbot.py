"""The app's chat component: a gr.Chatbot that only ever sends sanitized text to the browser.

Every value the server sends to the Chatbot goes through its `postprocess`: streamed
snapshots, reloaded conversations, the user's own messages, web-search steps and their
titles, error and notice bubbles. Sanitizing there is one choke point for all of them,
including handlers written later, instead of a call in each (see sanitize.py).

Why a subclass, and why it looks like this:
- When a handler returns `gr.Chatbot(...)` as an update, Gradio rebuilds the component as
  `block.__class__(**constructor_args)` and postprocesses with that copy from then on, so
  only the class carries the sanitizing (not an attribute of one instance); `image_hosts`
  are a class attribute of a small per-setting subclass for the same reason.
- It defines no `__init__`: Gradio sends the browser the props named in the constructor's
  signature, which must stay gr.Chatbot's. `get_block_name` keeps the browser's Chatbot.
- Its metaclass skips Gradio's `ComponentMeta.__new__`, which for a subclass without
  `__init__` or `EVENTS` only writes a `.pyi` stub next to this file at import.
"""

from __future__ import annotations

import dataclasses
import inspect
from abc import ABCMeta
from functools import lru_cache

import gradio as gr

from .sanitize import BLOCKED_TAGS, INLINE_DATA_IMAGES, sanitize_message

__all__ = ["SafeChatbot", "safe_chatbot", "safe_message"]


class _NoStubs(type(gr.Chatbot)):
    def __new__(mcls, name, bases, attrs):
        assert "__init__" not in attrs and "EVENTS" not in attrs, "see the module docstring"
        return ABCMeta.__new__(mcls, name, bases, attrs)


class SafeChatbot(gr.Chatbot, metaclass=_NoStubs):
    image_hosts: tuple[str, ...] = ()  # https images from these hosts may show inline

    def get_block_name(self) -> str:
        return "chatbot"

    def get_block_class(self) -> str:
        return "chatbot"

    def postprocess(self, value):
        if value:
            value = [safe_message(m, self.image_hosts, self.latex_delimiters) for m in value]
        return super().postprocess(value)


@lru_cache(maxsize=None)
def _with_hosts(hosts: tuple[str, ...]) -> type[SafeChatbot]:
    return _NoStubs("SafeChatbot", (SafeChatbot,), {"image_hosts": hosts})


def safe_chatbot(*, image_hosts: list[str] | tuple[str, ...] = (), inline_images: bool = False,
                 **kwargs) -> SafeChatbot:
    """A SafeChatbot; `image_hosts` are the hosts whose https images may show inline;
    `inline_images`: the user's messages may show base64 data-URL images (the previews of
    images attached to a message)."""
    hosts = tuple(image_hosts)
    kwargs.setdefault("sanitize_html", True)
    # Third line of defence, in the browser: Gradio shows these tags as text should one
    # ever reach the rendered HTML ("img" stays when some images are allowed: the sanitizer
    # still turns every other image into a link, and the CSP loads none from elsewhere).
    kwargs.setdefault("allow_tags", [t for t in BLOCKED_TAGS
                                     if not ((hosts or inline_images) and t == "img")])
    return (_with_hosts(hosts) if hosts else SafeChatbot)(**kwargs)


def safe_message(message, image_hosts=(), latex_delimiters=None):
    """One chat message as the browser may receive it."""
    role = message.get("role") if isinstance(message, dict) else getattr(message, "role", None)
    if role == "user":  # attached images' previews (data URLs) show in the user's own bubbles
        image_hosts = (*image_hosts, INLINE_DATA_IMAGES)
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
