"""Gradio event handlers: translate component values to ChatService / History calls.

Layout lives in ui.py; turn logic in chat.py; persistence in history.py. The conversation
list (library_handlers.py) and the thumbs (feedback_handlers.py) are mixins of `Handlers`.
Generating handlers are async generators that relay an answer written by a task of its own
(`_stream`): a reloaded or closed tab cancels the event (Gradio), not the answer, which is
written to its end and stored. The stop button ends the answer from the inside (`stop`); its
partial text is stored as "stopped".

What the chat shows is rebuilt from the store, never echoed from the client: the Chatbot's
value is no handler's input (a client could put file parts or invented turns in it).

Session state (`gr.State`, per browser tab / gradio_client session) is a dict:
`{"conv": conversation id or None, "ids": store id per displayed message}`.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import re
from collections.abc import AsyncIterator

import gradio as gr

from .chat import ChatService, TurnRequest, TurnResult
from .history import History, Turn
from .feedback_handlers import FeedbackHandlers
from .identity import IdentityError, new_token, user_from
from .library_handlers import LibraryHandlers, new_session
from .limits import LimitExceeded, SharedLimits
from .pulse import pulse_of
from .render import assistant_view, model_line
from .store import LimitReached, NotFound, StoreError
from .store.attachments import AttachmentLimit
from .streaming import LoadAdaptiveInterval, coalesce, outlive, until
from .titles import retitle_later

log = logging.getLogger(__name__)


def unescape_shown(text: str) -> str:
    """The edit box holds the message as shown, where the sanitizer turned raw tags into text
    (`&lt;div>`, inline code as `<code>&lt;b&gt;</code>`): give the user's own characters back."""
    text = re.sub(r"<code>(.*?)</code>", lambda m: "`" + html.unescape(m.group(1)) + "`", text)
    return text.replace("&lt;", "<")


class Handlers(LibraryHandlers, FeedbackHandlers):
    def __init__(self, service: ChatService, history: History, update_interval: float = 0.025):
        self.service = service
        self.history = history
        self.update_interval = LoadAdaptiveInterval(base=update_interval)
        self.limits = service.settings.limits
        # In the store: the limits hold across every replica that shares it.
        self.user_limits = SharedLimits(history.store, self.limits.messages_per_minute,
                                        self.limits.max_concurrent_per_user)
        # Heartbeats of the answers being written (and the leases): one writer per process.
        self.pulse = pulse_of(history.store).at_most(service.settings.server.heartbeat_seconds)
        # session hash → stop events of the answers that browser session is waiting for
        self._stops: dict[str, set[asyncio.Event]] = {}
        # The tasks writing answers, whether or not a tab still shows them (`_stream`), and
        # (user, conversation) → their stop events: a page that follows an answer after a
        # reload has no event of its own to stop (`stop_conversation`).
        self._writing: set[asyncio.Task] = set()
        self._writing_stops: dict[tuple[str, str], set[asyncio.Event]] = {}
        # Images and documents sent with messages (chatui/attach.py, chatui/attachments/).
        from .attach import FileSteps
        self.file_steps = FileSteps(service.settings, history.store)

    # -- identity ------------------------------------------------------------------------
    def user(self, token: str | None, profile: gr.OAuthProfile | None = None) -> str:
        if self.limits.login_required and not getattr(profile, "username", None):
            raise gr.Error("Sign in with Hugging Face to use this app.", title="Sign in")
        try:
            user_id, name, kind = user_from(token, profile)
        except IdentityError as e:
            raise gr.Error(str(e), title="Not signed in") from None
        return user_id

    async def admit(self, user_id: str, turn_count: int) -> None:
        """Refuse a new message past the conversation length, answers-at-once or per-minute
        limit, before anything is stored. (A new message checks the same limits inside the
        transaction that stores it: `History.begin`.)"""
        if turn_count >= self.limits.max_turns:
            raise self.refusal(LimitReached("turns", self.limits.max_turns))
        busy = await asyncio.to_thread(self.history.store.active_generations, user_id)
        if busy >= self.limits.max_concurrent_per_user:
            raise self.refusal(LimitReached("concurrent", self.limits.max_concurrent_per_user,
                                            busy=busy))
        try:
            await self.user_limits.check_rate(user_id)
        except LimitExceeded as e:
            raise gr.Error(str(e), title="Slow down") from None

    def refusal(self, e: LimitReached) -> gr.Error:
        """The sentence for a limit that refused a message."""
        if e.kind == "turns":
            return gr.Error(f"This conversation has reached {e.limit} messages. "
                            "Start a new chat to continue.", title="Conversation too long")
        if e.kind == "concurrent":
            return gr.Error(self.user_limits.busy_message(e.busy), title="Slow down")
        return gr.Error(self.user_limits.rate_message(e.retry_after), title="Slow down")

    def init_session(self, token: str | None, profile: gr.OAuthProfile | None = None):
        """Page load: make sure the browser has a token; list its conversations."""
        if not (profile or (token and len(token) >= 32)):
            token = new_token()
        user_id = self.user(token, profile)
        return token, gr.Radio(choices=self.history.conversations(user_id), value=None)

    # -- validation ----------------------------------------------------------------------
    # Every value below can arrive from an API client as anything JSON can hold: each is
    # checked here, with a sentence a person can act on, before anything is stored.
    def check_message(self, message) -> str:
        """The message, stripped; refused with a clear sentence when the app will not send it."""
        if message is None:
            return ""
        if not isinstance(message, str):
            raise gr.Error("The message must be text.", title="Invalid message")
        message = message.strip()
        try:
            message.encode("utf-8")
        except UnicodeEncodeError:
            raise gr.Error("Your message contains characters that are not valid text "
                           "(unpaired surrogates). Remove them and send again.",
                           title="Invalid message") from None
        limit = self.limits.max_message_chars
        if len(message) > limit:
            raise gr.Error(f"Your message has {len(message):,} characters; the limit is "
                           f"{limit:,}. Shorten it and send again.", title="Message too long")
        return message

    def validate_message(self, message, model=None) -> None:
        """The browser's check before the text leaves the box (a refused one stays there).
        Attached files are read and checked here too (the send reuses the result)."""
        from .attachments.flow import split_message

        text, files = split_message(message)
        text = self.check_message(text)
        if files:
            self.file_steps.check(files, model or self.service.settings.default_model, text)

    def options(self, model, system_prompt, temperature, top_p, max_new_tokens,
                web_search) -> dict:
        """Generation settings from the UI or the API, checked against the chosen model."""
        settings = self.service.settings
        if model in (None, ""):
            model = settings.default_model
        if not isinstance(model, str) or model not in self.service.backends:
            raise gr.Error("Unknown model. Pick one of: "
                           + ", ".join(self.service.backends), title="Invalid setting")
        backend = self.service.backend(model)
        if system_prompt is None:
            system_prompt = ""
        if not isinstance(system_prompt, str):
            raise gr.Error("The system prompt must be text.", title="Invalid setting")
        system_prompt = self.check_text(system_prompt, "system prompt",
                                        self.limits.max_system_prompt_chars)

        def number(value, name, lo, hi, integer=False):
            if value is None or value == "":
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    not math.isfinite(value)) or not lo <= value <= hi:
                raise gr.Error(f"{name} must be a number from {lo:g} to {hi:g}.",
                               title="Invalid setting")
            return int(value) if integer else float(value)

        return {"model": model, "system_prompt": system_prompt,
                "temperature": number(temperature, "Temperature", 0.0, 2.0),
                "top_p": number(top_p, "Top-p", 0.01, 1.0),
                "max_new_tokens": number(max_new_tokens, "Max new tokens", 1,
                                         backend.context_length, integer=True),
                "web_search": web_search is True}

    @staticmethod
    def check_text(text: str, what: str, limit: int) -> str:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise gr.Error(f"The {what} contains characters that are not valid text.",
                           title="Invalid setting") from None
        if len(text) > limit:
            raise gr.Error(f"The {what} has {len(text):,} characters; the limit is {limit:,}.",
                           title="Invalid setting")
        return text

    # -- turns ---------------------------------------------------------------------------
    def _stop_event(self, request: gr.Request | None) -> asyncio.Event:
        event = asyncio.Event()
        key = getattr(request, "session_hash", None)
        if key:
            self._stops.setdefault(key, set()).add(event)
        return event

    def streaming_here(self, request: gr.Request | None) -> bool:
        """Whether this browser session is being sent an answer right now."""
        return bool(self._stops.get(getattr(request, "session_hash", None)))

    def _forget_stop(self, request: gr.Request | None, event: asyncio.Event) -> None:
        key = getattr(request, "session_hash", None)
        events = self._stops.get(key)
        if events is not None:
            events.discard(event)
            if not events:
                del self._stops[key]

    async def stop(self, request: gr.Request) -> None:
        """The stop button: the running answer ends itself (stored as stopped, shown as such).

        Deliberately not Gradio's `cancels=`: cancelling the event races with its last
        update and can leave the chat under an error overlay; ending the stream from the
        inside finishes the event normally."""
        for event in list(self._stops.get(request.session_hash, ())):
            event.set()

    async def stop_ui(self, token: str, session: dict | None, request: gr.Request,
                      profile: gr.OAuthProfile | None = None) -> None:
        """The page's stop button: this page's own answer, or, on a page that only follows an
        answer (after a reload), that one."""
        if self._stops.get(request.session_hash):
            await self.stop(request)
        else:
            await self.stop_conversation(token, session, profile)

    async def stop_conversation(self, token: str, session: dict | None,
                                profile: gr.OAuthProfile | None = None) -> None:
        """Stop the answers this replica is writing in the conversation on screen, from any
        page of its user: after a reload the answer goes on (`_stream`) and the page only
        follows it from the store (its stop button: `stop_ui`)."""
        conv_id = (session or {}).get("conv")
        if not isinstance(conv_id, str) or not conv_id:
            return
        user_id = self.user(token, profile)
        for event in list(self._writing_stops.get((user_id, conv_id), ())):
            event.set()

    async def settle(self) -> None:
        """Wait until every answer being written is written and stored (tests; shutdown)."""
        while self._writing:
            await asyncio.gather(*list(self._writing), return_exceptions=True)

    def _view(self, user_id: str, conv_id: str):
        """The chat as stored, with its votes (what every final update shows), and its ids."""
        messages, ids, votes = self.history.load(user_id, conv_id)
        return gr.Chatbot(messages, feedback_value=votes), ids

    async def _run(self, user_id: str, turn: Turn, opts: dict, request: gr.Request | None,
                   answer: dict | None = None, ui: bool = True) -> AsyncIterator[tuple]:
        # Updates that carry votes reset the thumbs to the branch on screen (the browser);
        # API clients get the messages themselves, not a component update.
        async for messages, votes, session, info in self._stream(user_id, turn, opts, request,
                                                                 answer):
            if ui and votes is not None:
                yield gr.Chatbot(messages, feedback_value=votes), session, info
            else:
                yield messages, session, info

    async def _stream(self, user_id: str, turn: Turn, opts: dict, request: gr.Request | None,
                      answer: dict | None = None) -> AsyncIterator[tuple]:
        """Stream one answer to `turn` (or more of the cut `answer`), then store it.

        Yields (chat, votes, session, info). The answer is written by a task that outlives
        this event (`outlive`): a tab reloaded or closed mid-answer cancels the event, while
        the answer goes on, kept in the store as it grows, and is stored as it ended; the
        page that opens it again follows it (Sidebar.watch). Only the stop button (`stop`),
        the generation timeout or a server shutdown end it early."""
        stop = self._stop_event(request)
        try:
            async for out in outlive(self._write(user_id, turn, opts, stop, answer),
                                     self._writing):
                yield out
        finally:
            # This tab no longer streams it: if it opens the conversation again it follows
            # the answer from the store (streaming_here), like any other page.
            self._forget_stop(request, stop)

    async def _write(self, user_id: str, turn: Turn, opts: dict, stop: asyncio.Event,
                     answer: dict | None = None) -> AsyncIterator[tuple]:
        """The answer itself, in its own task (`_stream`): generate, then store, whoever is
        watching. Everything shown comes from the store or the model, never from the
        client."""
        # Continuing: the cut answer's bubbles are replaced by the growing one.
        shown = turn.shown + [{"role": "user", "content": turn.message}]
        session = {"conv": turn.conversation_id, "ids": turn.ids + [turn.user_message_id]}
        backend = self.service.backend(opts["model"])
        req = TurnRequest(message=turn.message, history=turn.prompt_history, model=backend.name,
                          system_prompt=opts["system_prompt"],
                          temperature=opts["temperature"], top_p=opts["top_p"],
                          max_new_tokens=opts["max_new_tokens"],
                          web_search=opts["web_search"] and answer is None,
                          prefix=(answer or {}).get("content", ""))
        files = await self.file_steps.for_turn(user_id, turn, backend.name)
        req.documents, req.images = files.documents, files.images
        if turn.user_message_id in files.bubbles:  # the message's attachments, above it
            shown[-1:-1] = [{"role": "user", "content": files.bubbles[turn.user_message_id]}]
            session["ids"][-1:-1] = [""]
        result = TurnResult()
        info = {"conversation_id": turn.conversation_id,
                "user_message_id": turn.user_message_id}
        # The model's name line heads the answer from its first token, as after a reload.
        head = [model_line(backend.name)] if self.history.show_model else []
        # The answer is in the store from its first moment, marked as being written and kept
        # alive by heartbeats with the text so far: if this replica dies, whoever opens the
        # conversation next sees it as interrupted, partial text kept. A new message's answer
        # was stored with it (History.begin, one transaction); otherwise it is begun here, not
        # awaited, so the first token does not wait for the database.
        if answer is None and turn.assistant_message_id is not None:
            begun = asyncio.get_running_loop().create_future()
            begun.set_result(turn.assistant_message_id)
        else:
            begun = asyncio.ensure_future(asyncio.to_thread(
                self.history.begin_answer, user_id, turn, backend.name, backend.type, answer))
        alive = self.pulse.answer(user_id, begun, lambda: req.prefix + result.text)
        assistant: list = []
        final = None
        writing = self._writing_stops.setdefault((user_id, turn.conversation_id), set())
        writing.add(stop)
        try:
            # The slot is held from here until the answer is stored, tab or no tab.
            async with self.user_limits.generating(user_id, lease=turn.lease_id):
                yield shown, turn.votes, session, info
                with self.update_interval:
                    async with asyncio.timeout(self.limits.generation_timeout):
                        async for assistant in until(coalesce(
                                self.service.respond(req, result), self.update_interval), stop):
                            yield shown + head + assistant, None, session, info
        except LimitExceeded as e:
            result.finish_reason, result.error = "error", str(e)
        except TimeoutError:
            result.finish_reason, result.error = "error", (
                f"The answer took longer than {self.limits.generation_timeout:.0f} s and was "
                "cut off.")
        finally:
            alive.close()
            writing.discard(stop)
            if not writing:
                self._writing_stops.pop((user_id, turn.conversation_id), None)
            # Runs on completion, stop, error and shutdown alike: the answer is never lost.
            try:
                await asyncio.shield(begun)
                if answer is None:
                    msg_id = await asyncio.shield(asyncio.to_thread(
                        self.history.finish, user_id, turn, result, backend.name,
                        backend.type))
                else:
                    msg_id = await asyncio.shield(asyncio.to_thread(
                        self.history.finish_continuation, user_id, answer, result))
                info["assistant_message_id"] = msg_id
                final = await asyncio.to_thread(self.history.load, user_id,
                                                turn.conversation_id)
            except StoreError as e:
                log.error("could not store the answer: %s", e)
        info["finish_reason"] = result.finish_reason
        if final is not None:
            messages, session["ids"], votes = final
            yield messages, votes, session, info
        else:  # the store failed: still show what was generated, marked
            yield shown + head + assistant_view(req.prefix + result.text, result.finish_reason,
                                         result.error), None, session, info

    async def _start(self, message, conv_id, opts: dict, token, profile,
                     missing_ok: bool = True, files: list | None = None) -> tuple[str, Turn]:
        message = self.check_message(message)
        user_id = self.user(token, profile)
        if not message and not files:
            return user_id, None
        backend = self.service.backend(opts["model"])
        # Files are read and checked before anything is stored, then stored with the message.
        extra = await self.file_steps.begin_args(files, backend.name, message)
        # One store transaction (the limits, the conversation, the message, its answer begun,
        # an answers-at-once lease) in one worker-thread trip: when many users send at once,
        # the first token no longer waits for five trips queued behind everyone else's.
        try:
            turn = await asyncio.to_thread(
                self.history.begin, user_id, conv_id, message, backend.name, backend.type,
                opts["system_prompt"], missing_ok=missing_ok, max_turns=self.limits.max_turns,
                **self.user_limits.admission(), **extra)
        except LimitReached as e:
            raise self.refusal(e) from None
        except AttachmentLimit as e:
            raise self.file_steps.refusal(e) from None
        return user_id, turn

    async def chat(self, message: str, conversation_id: str, model: str, system_prompt: str,
                   temperature: float, top_p: float, max_new_tokens: float, web_search: bool,
                   token: str, session: dict | None, request: gr.Request,
                   profile: gr.OAuthProfile | None = None):
        """Answer `message` in conversation `conversation_id` ("" starts a new one).

        `message` is text, or the input's own form {"text": …, "files": [uploaded files]}
        for documents (and images, for vision models). Files travel inside the message, not
        as an argument of their own: raw callers send every input, so a new one would break
        them. Yields (chat messages, session, turn info)."""
        from .attachments.flow import split_message

        message, files = split_message(message)
        opts = self.options(model, system_prompt, temperature, top_p, max_new_tokens,
                            web_search)
        if conversation_id is not None and not isinstance(conversation_id, str):
            raise gr.Error("The conversation id must be text.", title="Invalid setting")
        conv_id = conversation_id or ""
        try:
            user_id, turn = await self._start(message, conv_id or None, opts, token, profile,
                                              missing_ok=False, files=files)
        except NotFound:
            raise gr.Error("This conversation does not exist.", title="Not found") from None
        if turn is None:
            yield [], session or new_session(), {}
            return
        async for out in self._run(user_id, turn, opts, request, ui=False):
            yield out
        # issue 11: a new chat's model-written title, in the background once the final update
        # is out (the browser's send chains it as a step of its own instead: ui.py).
        if turn.new_conversation and self.service.settings.conversations.auto_titles:
            retitle_later(self.service, self.history.store, user_id, turn.conversation_id,
                          opts["model"])

    async def chat_ui(self, message: str, model: str, system_prompt: str, temperature: float,
                      top_p: float, max_new_tokens: float, web_search: bool, token: str,
                      session: dict | None, request: gr.Request,
                      profile: gr.OAuthProfile | None = None):
        """The browser's send: like `chat` in the conversation on screen; a new conversation
        is listed in the sidebar as soon as its first message is stored."""
        from .attachments.flow import split_message

        session = session or new_session()
        opts = self.options(model, system_prompt, temperature, top_p, max_new_tokens,
                            web_search)
        message, files = split_message(message)  # the input's {"text", "files"}
        user_id, turn = await self._start(message, session.get("conv"), opts, token, profile,
                                          files=files)
        if turn is None:
            yield gr.skip(), session, {}, gr.skip()
            return
        first = True
        async for chat, session, info in self._run(user_id, turn, opts, request):
            if first and turn.new_conversation:
                yield chat, session, info, gr.Radio(
                    choices=self.history.conversations(user_id), value=turn.conversation_id)
            else:
                yield chat, session, info, gr.skip()
            first = False

    async def retry(self, conversation_id: str, model: str, system_prompt: str,
                    temperature: float, top_p: float, max_new_tokens: float, web_search: bool,
                    token: str, session: dict | None, request: gr.Request,
                    profile: gr.OAuthProfile | None = None):
        """A new answer to the last question of a conversation; the old answer stays as a
        sibling. The question is the stored one, never text sent with the request."""
        conv_id = conversation_id if isinstance(conversation_id, str) else ""
        async for out in self._retry(conv_id, (model, system_prompt, temperature, top_p,
                                               max_new_tokens, web_search), token, session,
                                     request, profile, ui=False):
            yield out

    async def retry_ui(self, model, system_prompt, temperature, top_p, max_new_tokens,
                       web_search, token, session, request: gr.Request,
                       profile: gr.OAuthProfile | None = None):
        async for out in self._retry((session or {}).get("conv") or "",
                                     (model, system_prompt, temperature, top_p, max_new_tokens,
                                      web_search), token, session, request, profile, ui=True):
            yield out

    async def _retry(self, conv_id: str, settings: tuple, token, session, request, profile,
                     ui: bool):
        opts = self.options(*settings)
        user_id = self.user(token, profile)
        try:
            last = await asyncio.to_thread(self.history.last_user_message, user_id, conv_id) \
                if conv_id else None
            if last is None:
                raise gr.Error("There is no question to answer again.", title="Nothing to retry")
            await self.admit(user_id,
                       await asyncio.to_thread(self.history.length, user_id, conv_id) - 1)
            turn = await asyncio.to_thread(self.history.retry, user_id, conv_id, last)
        except NotFound:
            raise gr.Error("This conversation does not exist.", title="Not found") from None
        self.check_message(turn.message)
        async for out in self._run(user_id, turn, opts, request, ui=ui):
            yield out

    async def continue_answer(self, model, system_prompt, temperature, top_p, max_new_tokens,
                              token, session, request: gr.Request,
                              profile: gr.OAuthProfile | None = None):
        """More of the last answer, when it was cut at the length limit; appended to it."""
        session = session or new_session()
        opts = self.options(model, system_prompt, temperature, top_p, max_new_tokens, False)
        user_id = self.user(token, profile)
        conv_id = session.get("conv")
        try:
            last = self.history.last_answer(user_id, conv_id) if conv_id else None
        except NotFound:
            raise gr.Error("This conversation does not exist.", title="Not found") from None
        if last is None or last["finish_reason"] != "length":
            yield gr.skip(), session, {}
            return
        await self.admit(user_id, 0)
        turn, answer = await asyncio.to_thread(self.history.continue_turn, user_id, conv_id,
                                               last["id"])
        async for out in self._run(user_id, turn, opts, request, answer=answer):
            yield out

    @staticmethod
    def stash_edit(evt: gr.EditData) -> dict:
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        text = evt.value if isinstance(evt.value, str) else ""
        return {"index": index, "text": unescape_shown(text)}

    async def edit(self, edit: dict | None, model: str, system_prompt: str,
                   temperature: float, top_p: float, max_new_tokens: float, web_search: bool,
                   token: str, session: dict | None, request: gr.Request,
                   profile: gr.OAuthProfile | None = None):
        """An edited user message becomes a sibling branch and gets a fresh answer."""
        session = session or new_session()
        opts = self.options(model, system_prompt, temperature, top_p, max_new_tokens,
                            web_search)
        user_id = self.user(token, profile)
        index = (edit or {}).get("index", -1)
        text = self.check_message((edit or {}).get("text", ""))
        ids = session.get("ids") or []
        if not (isinstance(index, int) and 0 <= index < len(ids)) or not text \
                or not session.get("conv"):
            yield gr.skip(), session, {}
            return
        await self.admit(user_id, index)
        try:
            turn = await asyncio.to_thread(self.history.edit, user_id, session["conv"],
                                           ids[index], text)
        except NotFound:
            raise gr.Error("Only your own questions can be edited.") from None
        async for out in self._run(user_id, turn, opts, request):
            yield out

    def undo(self, token: str, session: dict | None, profile: gr.OAuthProfile | None = None):
        """Take back the last question (kept in the tree) and put its text in the input box."""
        session = session or new_session()
        conv_id = session.get("conv")
        if not conv_id:
            return gr.skip(), gr.skip(), session
        user_id = self.user(token, profile)
        try:
            text = self.history.undo(user_id, conv_id)
            if text is None:
                return gr.skip(), gr.skip(), session
            if not self.history.exists(user_id, conv_id):  # the first message was undone
                return [], text, new_session()
            chat, ids = self._view(user_id, conv_id)
        except NotFound:
            raise gr.Error("This conversation does not exist.", title="Not found") from None
        return chat, text, {"conv": conv_id, "ids": ids}

    # -- versions: sibling answers (retries) and edited questions ------------------------
    def nav(self, token: str, session: dict | None, profile: gr.OAuthProfile | None = None):
        """The version switchers under the chat and the Continue button, for the branch on
        screen: "Answer 2 / 3" after retries, "Question 1 / 2" after an edit."""
        hidden = (gr.update(visible=False), "", gr.update(visible=False), "",
                  gr.update(visible=False))
        conv_id = (session or {}).get("conv")
        if not conv_id:
            return hidden
        user_id = self.user(token, profile)
        try:
            v = self.history.versions(user_id, conv_id)
            last = self.history.last_answer(user_id, conv_id)
        except NotFound:
            return hidden
        return (gr.update(visible=v.answer_count > 1),
                f"Answer {v.answer_pos} / {v.answer_count}",
                gr.update(visible=v.question_count > 1),
                f"Question {v.question_pos} / {v.question_count}",
                gr.update(visible=bool(last and last["finish_reason"] == "length")))

    def switch(self, kind: str, step: int, token: str, session: dict | None,
               profile: gr.OAuthProfile | None = None):
        """Show the previous/next version of the last answer or of the edited question (and
        what followed it)."""
        session = session or new_session()
        conv_id = session.get("conv")
        if not conv_id:
            return gr.skip(), session
        user_id = self.user(token, profile)
        try:
            v = self.history.versions(user_id, conv_id)
            target = (v.question_id if kind == "question" else
                      (self.history.last_answer(user_id, conv_id) or {}).get("id"))
            if target is None or self.history.switch_answer(user_id, conv_id, target,
                                                            step) is None:
                return gr.skip(), session
            chat, ids = self._view(user_id, conv_id)
        except NotFound:
            raise gr.Error("This conversation does not exist.", title="Not found") from None
        return chat, {"conv": conv_id, "ids": ids}
