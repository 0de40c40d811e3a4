"""Gradio event handlers: translate component values to ChatService / History calls.

Layout lives in ui.py; turn logic in chat.py; persistence in history.py. Generating
handlers are async generators so Gradio can cancel them (stop button, closed tab): the
cancellation reaches the backend stream and aborts the generation, and the `finally`
stores the partial answer as "stopped".

Session state (`gr.State`, per browser tab / gradio_client session) is a dict:
`{"conv": conversation id or None, "ids": store id per displayed message}`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import gradio as gr

from .chat import ChatService, TurnRequest, TurnResult
from .history import History, Turn
from .identity import IdentityError, new_token, user_from
from .limits import LimitExceeded, UserLimits
from .render import STOPPED_MARK, assistant_view
from .store import NotFound, StoreError
from .streaming import LoadAdaptiveInterval, coalesce

log = logging.getLogger(__name__)
REASONS = ["incorrect", "unhelpful", "unsafe", "other"]


def _content_text(msg) -> str:
    content = msg.get("content") if isinstance(msg, dict) else getattr(msg, "content", "")
    if isinstance(content, list):
        return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return content if isinstance(content, str) else ""


def _role(msg) -> str | None:
    return msg.get("role") if isinstance(msg, dict) else getattr(msg, "role", None)


def new_session() -> dict:
    return {"conv": None, "ids": []}


class Handlers:
    def __init__(self, service: ChatService, history: History, update_interval: float = 0.025):
        self.service = service
        self.history = history
        self.update_interval = LoadAdaptiveInterval(base=update_interval)
        self.limits = service.settings.limits
        self.user_limits = UserLimits(self.limits.messages_per_minute,
                                      self.limits.max_concurrent_per_user)

    # -- identity ------------------------------------------------------------------------
    def user(self, token: str | None, profile: gr.OAuthProfile | None = None) -> str:
        if self.limits.login_required and not getattr(profile, "username", None):
            raise gr.Error("Sign in with Hugging Face to use this app.", title="Sign in")
        try:
            user_id, name, kind = user_from(token, profile)
        except IdentityError as e:
            raise gr.Error(str(e), title="Not signed in") from None
        return user_id

    def admit(self, user_id: str, turn_count: int) -> None:
        """Refuse a new message past the per-user rate or the conversation length limit."""
        if turn_count >= self.limits.max_turns:
            raise gr.Error(f"This conversation has reached {self.limits.max_turns} messages. "
                           "Start a new chat to continue.", title="Conversation too long")
        try:
            self.user_limits.check_rate(user_id)
        except LimitExceeded as e:
            raise gr.Error(str(e), title="Slow down") from None

    def init_session(self, token: str | None, profile: gr.OAuthProfile | None = None):
        """Page load: make sure the browser has a token; list its conversations."""
        if not (profile or (token and len(token) >= 32)):
            token = new_token()
        user_id = self.user(token, profile)
        return token, gr.Radio(choices=self.history.conversations(user_id), value=None)

    # -- turns ---------------------------------------------------------------------------
    def check_message(self, message: str) -> None:
        """Refuse input the app will not send, before anything is cleared or generated."""
        limit = self.service.settings.limits.max_message_chars
        if len((message or "").strip()) > limit:
            raise gr.Error(f"Your message has {len(message.strip()):,} characters; the limit is "
                           f"{limit:,}. Shorten it and send again.", title="Message too long")

    async def _run(self, user_id: str, turn: Turn, shown: list, session: dict, model: str,
                   system_prompt: str, temperature, top_p, max_new_tokens, web_search,
                   message: str) -> AsyncIterator[tuple]:
        """Stream one answer after `shown` (which ends with the user message), then store it."""
        session = {"conv": turn.conversation_id, "ids": turn.ids + [turn.user_message_id]}
        backend = self.service.backend(model)
        req = TurnRequest(message=message, history=turn.prompt_history, model=backend.name,
                          system_prompt=system_prompt or "", temperature=temperature,
                          top_p=top_p, max_new_tokens=int(max_new_tokens) if max_new_tokens
                          else None, web_search=bool(web_search))
        result = TurnResult()
        info = {"conversation_id": turn.conversation_id,
                "user_message_id": turn.user_message_id}
        yield shown, session, info
        assistant: list = []
        try:
            with self.user_limits.generating(user_id), self.update_interval:
                async with asyncio.timeout(self.limits.generation_timeout):
                    async for assistant in coalesce(self.service.respond(req, result),
                                                    self.update_interval):
                        yield shown + assistant, session, info
        except LimitExceeded as e:
            result.finish_reason, result.error = "error", str(e)
            assistant = assistant_view(result.text, "error", str(e))
        except TimeoutError:
            msg = (f"The answer took longer than {self.limits.generation_timeout:.0f} s and was "
                   "cut off.")
            result.finish_reason, result.error = "error", msg
            assistant = assistant_view(result.text, "error", msg)
        finally:
            # Runs on completion, error and cancellation alike: the answer is never lost.
            try:
                msg_id = await asyncio.shield(asyncio.to_thread(
                    self.history.finish, user_id, turn, result, backend.name, backend.type))
                session["ids"] = session["ids"] + [msg_id] * max(len(assistant), 1)
                info["assistant_message_id"] = msg_id
            except StoreError as e:
                log.error("could not store the answer: %s", e)
        info["finish_reason"] = result.finish_reason
        yield shown + assistant, session, info

    async def chat(self, message: str, history: list, model: str, system_prompt: str,
                   temperature: float, top_p: float, max_new_tokens: float, web_search: bool,
                   token: str, session: dict | None, profile: gr.OAuthProfile | None = None):
        """Answer `message` in the session's conversation (a new one if the chat is empty).

        Yields (chat messages, session, turn info)."""
        message = (message or "").strip()
        history = list(history or [])
        session = session or new_session()
        if not message:
            yield history, session, {}
            return
        self.check_message(message)
        user_id = self.user(token, profile)
        conv = session.get("conv") if history else None
        self.admit(user_id, len(session.get("ids") or []) if conv else 0)
        # SQLite work runs in a thread: the event loop relays everyone's tokens meanwhile.
        turn = await asyncio.to_thread(self.history.start, user_id, conv, message, model,
                                       system_prompt or "")
        if turn.conversation_id != conv:
            history = []  # a new conversation: nothing before this message belongs to it
        shown = history + [{"role": "user", "content": message}]
        async for out in self._run(user_id, turn, shown, session, model, system_prompt,
                                   temperature, top_p, max_new_tokens, web_search, message):
            yield out

    async def retry(self, history: list, model: str, system_prompt: str, temperature: float,
                    top_p: float, max_new_tokens: float, web_search: bool, token: str,
                    session: dict | None, profile: gr.OAuthProfile | None = None):
        """A new answer to the last user message; the old answer stays as a sibling."""
        history, session = list(history or []), session or new_session()
        user_id = self.user(token, profile)
        ids = session.get("ids") or []
        last = max((i for i, m in enumerate(history) if _role(m) == "user"), default=None)
        if last is None or not session.get("conv") or last >= len(ids):
            yield history, session, {}
            return
        self.admit(user_id, last)
        try:
            turn = await asyncio.to_thread(self.history.retry, user_id, session["conv"],
                                           ids[last])
        except NotFound:
            raise gr.Error("This conversation is not available.") from None
        async for out in self._run(user_id, turn, history[: last + 1], session, model,
                                   system_prompt, temperature, top_p, max_new_tokens,
                                   web_search, _content_text(history[last])):
            yield out

    @staticmethod
    def stash_edit(evt: gr.EditData) -> dict:
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        return {"index": index, "text": str(evt.value or "")}

    async def edit(self, history: list, edit: dict | None, model: str, system_prompt: str,
                   temperature: float, top_p: float, max_new_tokens: float, web_search: bool,
                   token: str, session: dict | None, profile: gr.OAuthProfile | None = None):
        """An edited user message becomes a sibling branch and gets a fresh answer."""
        history, session = list(history or []), session or new_session()
        user_id = self.user(token, profile)
        index, text = (edit or {}).get("index", -1), (edit or {}).get("text", "").strip()
        ids = session.get("ids") or []
        if not (0 <= index < len(ids)) or _role(history[index]) != "user" or not text:
            yield history, session, {}
            return
        self.check_message(text)
        self.admit(user_id, index)
        try:
            turn = await asyncio.to_thread(self.history.edit, user_id, session["conv"],
                                           ids[index], text)
        except NotFound:
            raise gr.Error("This conversation is not available.") from None
        shown = history[:index] + [{"role": "user", "content": text}]
        async for out in self._run(user_id, turn, shown, session, model, system_prompt,
                                   temperature, top_p, max_new_tokens, web_search, text):
            yield out

    def undo(self, history: list, token: str, session: dict | None,
             profile: gr.OAuthProfile | None = None):
        """Remove the last user turn from view (kept in the tree) and refill the input box."""
        history, session = list(history or []), session or new_session()
        last = max((i for i, m in enumerate(history) if _role(m) == "user"), default=None)
        if last is None:
            return history, "", session
        ids = session.get("ids") or []
        if session.get("conv") and last < len(ids):
            user_id = self.user(token, profile)
            try:
                if not self.history.undo(user_id, session["conv"], ids[last]):
                    session = new_session()
            except NotFound:
                session = new_session()
        session = {**session, "ids": ids[:last]} if session.get("conv") else session
        return history[:last], _content_text(history[last]), session

    @staticmethod
    def mark_stopped(history: list) -> list:
        """Runs when the user presses stop: keep the partial answer, visibly marked."""
        history = list(history or [])
        if history and _role(history[-1]) == "assistant":
            text = _content_text(history[-1])
            if not text.endswith(STOPPED_MARK):
                history[-1] = {"role": "assistant",
                               "content": (text + "\n\n" if text else "") + STOPPED_MARK}
        elif history:
            history.append({"role": "assistant", "content": STOPPED_MARK})
        return history

    # -- sibling answers (after retries) -------------------------------------------------
    def answer_nav(self, token: str, session: dict | None,
                   profile: gr.OAuthProfile | None = None):
        """Show "◀ 2 / 3 ▶" under the chat when the last answer has siblings."""
        ids = (session or {}).get("ids") or []
        if not (session or {}).get("conv") or not ids:
            return gr.update(visible=False), ""
        try:
            pos, count = self.history.answer_position(self.user(token, profile), ids[-1])
        except NotFound:
            return gr.update(visible=False), ""
        return gr.update(visible=count > 1), f"Answer **{pos} / {count}**"

    def switch_answer(self, step: int, token: str, session: dict | None,
                      profile: gr.OAuthProfile | None = None):
        """Show the previous/next answer to the last question (and what followed it)."""
        session = session or new_session()
        ids = session.get("ids") or []
        if not session.get("conv") or not ids:
            return gr.update(), session, gr.update(), gr.update()
        user_id = self.user(token, profile)
        try:
            if self.history.switch_answer(user_id, session["conv"], ids[-1], step) is None:
                return gr.update(), session, gr.update(), gr.update()
            messages, new_ids, votes = self.history.load(user_id, session["conv"])
        except NotFound:
            raise gr.Error("This conversation does not exist.", title="Not found") from None
        session = {"conv": session["conv"], "ids": new_ids}
        nav, label = self.answer_nav(token, session, profile)
        return gr.Chatbot(messages, feedback_value=votes), session, nav, label

    # -- conversations -------------------------------------------------------------------
    def conversations(self, token: str, profile: gr.OAuthProfile | None = None) -> list:
        return [{"title": t, "id": i}
                for t, i in self.history.conversations(self.user(token, profile))]

    def conversation_choices(self, token: str, session: dict | None,
                             profile: gr.OAuthProfile | None = None):
        user_id = self.user(token, profile)
        conv = (session or {}).get("conv")
        return gr.Radio(choices=self.history.conversations(user_id), value=conv)

    def open_conversation(self, conv_id: str | None, token: str,
                          profile: gr.OAuthProfile | None = None):
        """(chat messages, session) of one of the user's conversations."""
        if not conv_id:
            return [], new_session()
        user_id = self.user(token, profile)
        try:
            messages, ids, votes = self.history.load(user_id, conv_id)
        except NotFound:
            raise gr.Error("This conversation does not exist.", title="Not found") from None
        return gr.Chatbot(messages, feedback_value=votes), {"conv": conv_id, "ids": ids}

    def rename(self, conv_id: str | None, title: str, token: str,
               profile: gr.OAuthProfile | None = None) -> str:
        user_id = self.user(token, profile)
        if not conv_id or not (title or "").strip():
            raise gr.Error("Open a conversation and type a new title first.")
        try:
            self.history.rename(user_id, conv_id, title)
        except NotFound:
            raise gr.Error("This conversation does not exist.", title="Not found") from None
        return "renamed"

    def delete(self, conv_id: str | None, token: str,
               profile: gr.OAuthProfile | None = None) -> str:
        user_id = self.user(token, profile)
        if not conv_id:
            raise gr.Error("Open a conversation first.")
        try:
            self.history.delete(user_id, conv_id)
        except NotFound:
            raise gr.Error("This conversation does not exist.", title="Not found") from None
        return "deleted"

    # -- API-only twins (gr.api reads their type hints) ----------------------------------
    def api_conversations(self, token: str) -> list:
        """The caller's conversations, newest first: [{"title", "id"}]."""
        return self.conversations(token)

    def api_open_conversation(self, conversation_id: str, token: str) -> list:
        """The current branch of one of the caller's conversations, as chat messages."""
        try:
            return self.history.load(self.user(token), conversation_id)[0]
        except NotFound:
            raise gr.Error("This conversation does not exist.", title="Not found") from None

    def api_rename(self, conversation_id: str, title: str, token: str) -> str:
        return self.rename(conversation_id, title, token)

    def api_delete(self, conversation_id: str, token: str) -> str:
        return self.delete(conversation_id, token)

    def api_rate(self, message_id: str, vote: str, reason: str, comment: str, token: str) -> str:
        """vote: up | down | none; reason (down only): incorrect | unhelpful | unsafe | other."""
        return self.rate(message_id, vote, reason or None, comment or None, token)

    # -- feedback ------------------------------------------------------------------------
    def rate(self, message_id: str, vote: str, reason: str | None, comment: str | None,
             token: str, profile: gr.OAuthProfile | None = None) -> str:
        """vote: "up", "down" or "none" (remove). The API twin of the thumbs buttons."""
        user_id = self.user(token, profile)
        label = {"up": True, "down": False, "none": None}.get((vote or "").lower(), "bad")
        if label == "bad":
            raise gr.Error("vote must be up, down or none")
        if reason and reason not in REASONS:
            raise gr.Error(f"reason must be one of {', '.join(REASONS)}")
        try:
            self.history.rate(user_id, message_id, label, reason if label is False else None,
                              comment if label is not None else None)
        except NotFound:
            raise gr.Error("This message does not exist.", title="Not found") from None
        return vote

    def like(self, token: str, session: dict | None, evt: gr.LikeData,
             profile: gr.OAuthProfile | None = None):
        """Thumbs on bubble `evt.index`: store the vote; a thumbs-down opens the reason box."""
        ids = (session or {}).get("ids") or []
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        if not 0 <= index < len(ids) or ids[index] is None:
            gr.Warning("This answer is still being written; rate it when it is done.")
            return gr.update(visible=False), None
        liked = evt.liked
        label = liked if isinstance(liked, bool) else None
        self.rate(ids[index], {True: "up", False: "down", None: "none"}[label], None, None,
                  token, profile)
        if label is False:
            return gr.update(visible=True), ids[index]
        return gr.update(visible=False), None

    def send_reason(self, message_id: str | None, reason: str | None, comment: str | None,
                    token: str, profile: gr.OAuthProfile | None = None):
        if message_id:
            self.rate(message_id, "down", reason, comment, token, profile)
            gr.Info("Thanks — your feedback was saved.")
        return gr.update(visible=False), None, "", None
