"""Handlers of issue 11: a conversation's own URL, search, share links — and their API twins.

Layout and wiring stay in ui.py (the Sidebar block); turn logic stays in handlers.py. Identity
is always `Handlers.user` (the caller's token, or the OAuth profile), so everything here is
owner-only exactly as the rest of the app: another user's conversation id, or a share link
that was revoked or never existed, is "not found" with the same sentence as a missing one.

URLs: ``/?c=<conversation id>`` reopens one of the caller's conversations; ``/?share=<id>``
shows a read-only snapshot anyone with the link may see and copy ("Continue this
conversation"). ui.js keeps the address bar in step (pushState when a chat starts or is
opened, popstate on Back), and sends the address back here through `open_from_url`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from urllib.parse import parse_qs

import gradio as gr

from .handlers import Handlers
from .library_handlers import new_session
from .share_page import NOT_FOUND_BANNER, search_results_html, share_banner, share_messages
from .store import InvalidArgument, NotFound
from .store.search import query_terms
from .titles import retitle_after_first_answer

NOT_FOUND = "This conversation does not exist."
SHARE_NOT_FOUND = "This shared conversation was not found."
CONV_NOT_FOUND_BANNER = ("**This conversation does not exist** in your history (it was "
                         "deleted, or the link belongs to someone else's account).")
MAX_QUERY_CHARS = 500


def _param(query: str | None, name: str) -> str | None:
    if not isinstance(query, str):
        return None
    values = parse_qs(query.lstrip("?"), keep_blank_values=False).get(name)
    return values[0] if values else None


class Sidebar:
    def __init__(self, h: Handlers):
        self.h = h
        self.history = h.history
        self.store = h.history.store
        # Browser sessions whose input shows Stop for an answer they follow (an ordered set,
        # capped: a tab closed while following never says so).
        self._following: dict[str, None] = {}

    # -- the address bar -------------------------------------------------------------------
    def open_from_url(self, query: str | None, token: str,
                      profile: gr.OAuthProfile | None = None):
        """Page load and Back/Forward: what ``?c=`` / ``?share=`` name, else leave the page
        as it is. Outputs: chatbot, session, conversations, share box, share banner, the
        share id shown."""
        share_id, conv_id = _param(query, "share"), _param(query, "c")
        if share_id:
            try:
                share = self.store.get_share(share_id)
            except NotFound:
                return ([], new_session(), gr.Radio(value=None), gr.update(visible=True),
                        NOT_FOUND_BANNER, None, gr.update(visible=False))
            chat = share_messages(share["messages"], self.history.show_model)
            return (chat, new_session(), gr.Radio(value=None), gr.update(visible=True),
                    share_banner(share["title"], share["created_at"]), share["id"],
                    gr.update(visible=True))
        hide = (gr.update(visible=False), "", None, gr.update(visible=False))
        if not conv_id:
            return ([], new_session(), gr.Radio(value=None), *hide)
        user_id = self.h.user(token, profile)
        try:
            messages, ids, votes = self.history.load(user_id, conv_id)
        except NotFound:
            # A banner, not an error badge on every output: the page stays usable.
            return ([], new_session(), gr.Radio(value=None), gr.update(visible=True),
                    CONV_NOT_FOUND_BANNER, None, gr.update(visible=False))
        return (gr.Chatbot(messages, feedback_value=votes), {"conv": conv_id, "ids": ids},
                gr.Radio(value=conv_id), *hide)

    # -- an answer written elsewhere -----------------------------------------------------------
    def watch(self, token: str, session: dict | None, request: gr.Request,
              profile: gr.OAuthProfile | None = None):
        """After a chat is opened: follow it while its last answer is being written by
        another tab or replica (see `refresh_writing`). Outputs: the timer, the input (its
        stop button while following)."""
        if self.h.streaming_here(request):
            return gr.Timer(active=False), gr.skip()         # this page writes it: its own
        following = self._writing_elsewhere(token, session, request, profile)
        return gr.Timer(active=following), self._input(request, following)

    def refresh_writing(self, token: str, session: dict | None, request: gr.Request,
                        profile: gr.OAuthProfile | None = None):
        """Timer tick: show the answer as stored now. A reload during an answer (or after its
        replica died) would otherwise show "Still being written…" until the user clicks
        something; the store marks a dead writer's answer interrupted after
        `server.stale_after_seconds`, and the page shows that without being asked. Outputs:
        chatbot, session, the timer (off once nothing is being written), the input (a stop
        button while the answer is being written)."""
        conv_id = (session or {}).get("conv")
        if self.h.streaming_here(request):
            return gr.skip(), gr.skip(), gr.Timer(active=False), gr.skip()
        if not conv_id:
            return gr.skip(), gr.skip(), gr.Timer(active=False), self._input(request, False)
        try:  # the last tick shows the answer as it ended
            user_id = self.h.user(token, profile)
            messages, ids, votes = self.history.load(user_id, conv_id)
            writing = self.history.writing(user_id, conv_id)
        except (gr.Error, NotFound):
            return gr.skip(), gr.skip(), gr.Timer(active=False), self._input(request, False)
        return (gr.Chatbot(messages, feedback_value=votes), {"conv": conv_id, "ids": ids},
                gr.Timer(active=writing), self._input(request, writing))

    def _input(self, request: gr.Request | None, following: bool):
        """The input's update: Stop while following, back to Send when following ends, and
        otherwise nothing. The page's own send events set its Send/Stop; an update from here
        racing them (a page load's `watch` still running when a fast user sends) would turn
        Stop back into Send under the user's own answer."""
        key = getattr(request, "session_hash", None) or ""
        if following:
            self._following.pop(key, None)
            self._following[key] = None
            while len(self._following) > 10_000:
                del self._following[next(iter(self._following))]
            return input_box(True)
        if key in self._following:
            del self._following[key]
            return input_box(False)
        return gr.skip()

    def _writing_elsewhere(self, token, session, request, profile) -> bool:
        conv_id = (session or {}).get("conv")
        if not conv_id or self.h.streaming_here(request):
            return False                 # nothing open, or this page is the writer
        try:
            return self.history.writing(self.h.user(token, profile), conv_id)
        except (gr.Error, NotFound):
            return False

    # -- the chat list's date groups ---------------------------------------------------------
    def list_groups(self, token: str, tz_offset: float | None = None,
                    profile: gr.OAuthProfile | None = None, now: float | None = None) -> str:
        """A <style> putting "Today", "Yesterday", "Previous 7 days", "Older" above the first
        chat of each group. The list is newest first, so a group is a run of labels and
        ``label:nth-of-type(k)::before`` places each heading; the labels' own text stays the
        title (generated content is not part of it). ui.js asks again when the list changes.
        `tz_offset`: the browser's `Date.getTimezoneOffset()`, so "Today" is the viewer's day."""
        if not token and not profile:
            return ""                           # the page is still getting its token
        try:
            convs = self.store.list_conversations(self.h.user(token, profile))
        except gr.Error:
            return ""                           # not signed in: no list to head
        return group_style(date_groups([c["updated_at"] for c in convs], now,
                                       utc_offset_minutes(tz_offset)))

    # -- titles ------------------------------------------------------------------------------
    async def retitle(self, token: str, session: dict | None, model: str | None,
                      profile: gr.OAuthProfile | None = None):
        """After a send: a new chat's model-written title (titles.py), then the list again."""
        try:
            user_id = self.h.user(token, profile)
        except gr.Error:
            return gr.skip()
        conv_id = (session or {}).get("conv")
        if not await retitle_after_first_answer(self.h.service, self.store, user_id, conv_id,
                                                model):
            return gr.skip()
        return gr.Radio(choices=self.history.conversations(user_id), value=conv_id)

    # -- search ----------------------------------------------------------------------------
    def search(self, query: str | None, token: str, profile: gr.OAuthProfile | None = None):
        """The sidebar's search box → HTML list of matching conversations (links)."""
        query = (query or "")[:MAX_QUERY_CHARS]
        if not query.strip():
            return gr.update(value="", visible=False)
        results = self.store.search_conversations(self.h.user(token, profile), query, limit=20)
        return gr.update(value=search_results_html(results, query_terms(query), query),
                         visible=True)

    # -- share links -----------------------------------------------------------------------
    def share(self, session: dict | None, token: str, profile: gr.OAuthProfile | None = None):
        """Share the branch on screen → (share id for the link box, the refreshed list)."""
        user_id = self.h.user(token, profile)
        conv_id = (session or {}).get("conv")
        if not conv_id:
            raise gr.Error("Open or start a conversation first, then share it.")
        try:
            share_id = self.store.share_conversation(user_id, conv_id)
        except NotFound:
            raise gr.Error(NOT_FOUND, title="Not found") from None
        except InvalidArgument as e:
            raise gr.Error(str(e).capitalize() + ".", title="Too many links") from None
        return gr.update(value=share_id, visible=True), self.share_choices(token, profile)

    def share_choices(self, token: str, profile: gr.OAuthProfile | None = None):
        try:
            links = self.store.list_shares(self.h.user(token, profile))
        except gr.Error:                        # not signed in (login required): no links
            return gr.Dropdown(choices=[], value=None)
        return gr.Dropdown(choices=[(f"{s['title'] or 'Untitled'} · {s['id'][:6]}…", s["id"])
                                    for s in links], value=None)

    def revoke(self, share_id: str | None, token: str, profile: gr.OAuthProfile | None = None):
        if not share_id:
            raise gr.Error("Pick one of your links first.")
        try:
            self.store.revoke_share(self.h.user(token, profile), share_id)
        except NotFound:
            raise gr.Error(SHARE_NOT_FOUND, title="Not found") from None
        gr.Info("Link revoked: it now shows \"not found\".")
        return self.share_choices(token, profile)

    def continue_share(self, share_id: str | None, token: str,
                       profile: gr.OAuthProfile | None = None):
        """Copy the shared snapshot into the viewer's history and open it there."""
        user_id = self.h.user(token, profile)
        try:
            conv_id = self.store.continue_share(user_id, share_id or "")
        except NotFound:
            raise gr.Error(SHARE_NOT_FOUND, title="Not found") from None
        chat, session = self.h.open_conversation(conv_id, token, profile)
        return (chat, session, gr.Radio(choices=self.history.conversations(user_id),
                                        value=conv_id), gr.update(visible=False), None)

    async def send(self, message, model, system_prompt, temperature, top_p, max_new_tokens,
                   web_search, token, session, share_id, request: gr.Request,
                   profile: gr.OAuthProfile | None = None):
        """The browser's send (`Handlers.chat_ui`). On a shared page (``share_id``) the message
        continues the shared conversation, as HuggingChat does: the snapshot is copied into
        the sender's history first (as "Continue this conversation") and answered there; the
        list selects the copy, which puts its ``?c=`` in the address (ui.js). Outputs: chatbot,
        session, turn info, conversations, share box, share id."""
        conv_id = user_id = None
        if share_id:
            user_id = self.h.user(token, profile)
            try:
                conv_id = await asyncio.to_thread(self.store.continue_share, user_id, share_id)
            except NotFound:
                raise gr.Error(SHARE_NOT_FOUND, title="Not found") from None
            session = {"conv": conv_id, "ids": []}
        first = True
        try:
            async for chat, session, info, convs in self.h.chat_ui(
                    message, model, system_prompt, temperature, top_p, max_new_tokens,
                    web_search, token, session, request, profile):
                if first and conv_id:
                    yield (chat, session, info, gr.Radio(
                        choices=self.history.conversations(user_id), value=conv_id),
                        gr.update(visible=False), None)
                else:
                    yield chat, session, info, convs, gr.skip(), gr.skip()
                first = False
        except gr.Error:
            if first and conv_id:  # refused before anything was sent: no copy left behind
                await asyncio.to_thread(self.store.delete_conversation, user_id, conv_id)
            raise

    # -- API twins (gr.api reads the type hints; identity = the caller's token) -------------
    def api_search(self, query: str, token: str) -> list:
        """The caller's conversations matching ``query``: [{"id", "title", "snippet",
        "updated_at"}], best first."""
        if not isinstance(query, str) or len(query) > MAX_QUERY_CHARS:
            raise gr.Error(f"The search must be text of at most {MAX_QUERY_CHARS} characters.")
        return [{k: r[k] for k in ("id", "title", "snippet", "updated_at")}
                for r in self.store.search_conversations(self.h.user(token), query, limit=20)]

    def api_share(self, conversation_id: str, token: str) -> str:
        """Share the branch on screen of one of the caller's conversations: the share id
        (the page shows it at ``/?share=<id>``)."""
        try:
            return self.store.share_conversation(self.h.user(token), conversation_id)
        except NotFound:
            raise gr.Error(NOT_FOUND, title="Not found") from None
        except InvalidArgument as e:
            raise gr.Error(str(e).capitalize() + ".", title="Too many links") from None

    def api_list_shares(self, token: str) -> list:
        """The caller's share links, newest first: [{"id", "conversation_id", "title",
        "created_at", "message_count"}]."""
        return self.store.list_shares(self.h.user(token))

    def api_revoke_share(self, share_id: str, token: str) -> str:
        try:
            self.store.revoke_share(self.h.user(token), share_id)
        except NotFound:
            raise gr.Error(SHARE_NOT_FOUND, title="Not found") from None
        return "revoked"

    def api_open_share(self, share_id: str) -> dict:
        """A shared conversation, for anyone with its id: {"title", "created_at",
        "messages"} (chat messages as the page shows them)."""
        try:
            share = self.store.get_share(share_id)
        except NotFound:
            raise gr.Error(SHARE_NOT_FOUND, title="Not found") from None
        return {"title": share["title"], "created_at": share["created_at"],
                "messages": share_messages(share["messages"], self.history.show_model)}

    def api_continue_share(self, share_id: str, token: str) -> str:
        """Copy a shared conversation into the caller's history: the new conversation id."""
        try:
            return self.store.continue_share(self.h.user(token), share_id)
        except NotFound:
            raise gr.Error(SHARE_NOT_FOUND, title="Not found") from None


def input_box(following: bool):
    """The message box while a page follows an answer being written (its stop button stops
    that answer: Handlers.stop_ui), or back to sending once it has ended. Its text is left
    alone: the user may be typing the next message."""
    return gr.MultimodalTextbox(submit_btn=not following, stop_btn=following)


GROUPS = ("Today", "Yesterday", "Previous 7 days", "Older")


def utc_offset_minutes(value) -> int | None:
    """A browser's `getTimezoneOffset()` (UTC minus local time, in minutes), or None when it
    is not a plausible one (anything a client sends arrives here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return int(value) if -16 * 60 <= value <= 16 * 60 else None


def date_groups(times: list[float], now: float | None = None,
                offset_minutes: int | None = None) -> list[tuple[str, int]]:
    """(group, index of its first item) for epoch times sorted newest first. Days are the
    viewer's calendar days when their UTC offset is known, else the server's."""
    def day(t: float) -> int:
        if offset_minutes is None:
            return datetime.fromtimestamp(t).date().toordinal()
        return int((t - offset_minutes * 60) // 86400)

    today = day(now if now is not None else time.time())
    out: list[tuple[str, int]] = []
    for i, t in enumerate(times):
        age = today - day(t)
        name = GROUPS[0] if age <= 0 else GROUPS[1] if age == 1 else \
            GROUPS[2] if age <= 7 else GROUPS[3]
        if not out or out[-1][0] != name:
            out.append((name, i))
    return out


def group_style(groups: list[tuple[str, int]]) -> str:
    rules = "".join(f'#conversations label:nth-of-type({i + 1})::before{{content:"{name}"}}'
                    for name, i in groups)
    return f"<style>{rules}</style>" if rules else ""
