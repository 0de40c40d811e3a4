"""Gradio event handlers: translate component values to ChatService calls and back.

Layout lives in ui.py; turn logic in chat.py. Handlers are async generators so Gradio can
cancel them (stop button): cancellation propagates into the backend stream and aborts
the generation there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import gradio as gr

from .chat import STOPPED_MARK, ChatService, TurnRequest, TurnResult, clean_history
from .streaming import coalesce


def _content_text(msg) -> str:
    content = msg.get("content") if isinstance(msg, dict) else getattr(msg, "content", "")
    if isinstance(content, list):
        return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return content if isinstance(content, str) else ""


def _role(msg) -> str | None:
    return msg.get("role") if isinstance(msg, dict) else getattr(msg, "role", None)


class Handlers:
    def __init__(self, service: ChatService, update_interval: float = 0.025):
        self.service = service
        self.update_interval = update_interval

    async def chat(self, message: str, history: list, model: str, system_prompt: str,
                   temperature: float, top_p: float, max_new_tokens: float,
                   web_search: bool) -> AsyncIterator[list]:
        """Answer `message` after `history`; yields the whole chat to display."""
        message = (message or "").strip()
        history = list(history or [])
        if not message:
            yield history
            return
        self.check_message(message)
        shown = history + [{"role": "user", "content": message}]
        # The user's message appears at once, before the model has produced anything.
        yield shown
        req = TurnRequest(message=message, history=clean_history(history), model=model,
                          system_prompt=system_prompt or "", temperature=temperature,
                          top_p=top_p, max_new_tokens=int(max_new_tokens) if max_new_tokens
                          else None, web_search=bool(web_search))
        result = TurnResult()
        async for assistant in coalesce(self.service.respond(req, result), self.update_interval):
            yield shown + assistant

    def check_message(self, message: str) -> None:
        """Refuse input the app will not send, before anything is cleared or generated."""
        limit = self.service.settings.limits.max_message_chars
        if len((message or "").strip()) > limit:
            raise gr.Error(f"Your message has {len(message.strip()):,} characters; the limit is "
                           f"{limit:,}. Shorten it and send again.", title="Message too long")

    async def retry(self, history: list, model: str, system_prompt: str, temperature: float,
                    top_p: float, max_new_tokens: float, web_search: bool):
        history = list(history or [])
        last_user = max((i for i, m in enumerate(history) if _role(m) == "user"), default=None)
        if last_user is None:
            yield history
            return
        message = _content_text(history[last_user])
        async for out in self.chat(message, history[:last_user], model, system_prompt,
                                   temperature, top_p, max_new_tokens, web_search):
            yield out

    async def edit(self, history: list, model: str, system_prompt: str, temperature: float,
                   top_p: float, max_new_tokens: float, web_search: bool,
                   evt: gr.EditData):
        history = list(history or [])
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        if not 0 <= index < len(history) or _role(history[index]) != "user":
            yield history
            return
        async for out in self.chat(str(evt.value), history[:index], model, system_prompt,
                                   temperature, top_p, max_new_tokens, web_search):
            yield out

    @staticmethod
    def undo(history: list) -> tuple[list, str]:
        """Remove the last user turn and its answer; give its text back to the input box."""
        history = list(history or [])
        last_user = max((i for i, m in enumerate(history) if _role(m) == "user"), default=None)
        if last_user is None:
            return history, ""
        return history[:last_user], _content_text(history[last_user])

    @staticmethod
    def mark_stopped(history: list) -> list:
        """Runs when the user presses stop: keep the partial answer, visibly marked."""
        history = list(history or [])
        if history and _role(history[-1]) == "assistant":
            last = dict(history[-1]) if isinstance(history[-1], dict) else {
                "role": "assistant", "content": _content_text(history[-1])}
            text = _content_text(last)
            if not text.endswith(STOPPED_MARK):
                last["content"] = (text + "\n\n" if text else "") + STOPPED_MARK
            history[-1] = last
        elif history:
            history.append({"role": "assistant", "content": STOPPED_MARK})
        return history
