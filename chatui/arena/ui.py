"""The Arena tab: two anonymous answers side by side, one input, a vote; and its API twins.

Layout and wiring here, battle logic in `chatui.arena.battles`. Identity is the caller's
token (or HF login), checked by the chat's `Handlers.user` at every event, like the chat's
own API. What reaches the browser or an API client before the vote comes from
`BattleService`, which never names the models until then.

API (gradio_client; ``token`` as for ``/chat``):
    /arena_chat(message, battle_id, token)        streams (chat A, chat B, info); "" starts
                                                  a battle; info: `BattleService.public_state`
    /arena_vote(battle_id, vote, reason, comment, token) -> info, now with ``models``
                                                  vote: a | b | tie | bothbad
    /arena_battle(battle_id, token) -> {"a": chat A, "b": chat B, "info": info}
"""

from __future__ import annotations

import asyncio
import logging

import gradio as gr

from ..safe_chatbot import safe_chatbot
from ..store import NotFound
from ..store.battles import BATTLE_REASONS
from .battles import ArenaError, BattleService

log = logging.getLogger(__name__)

INTRO = ("**Arena** — two anonymous models answer your message side by side. Vote for the "
         "better answer; their names are shown after your vote. Follow-up messages continue "
         "both conversations.")
VOTE_BUTTONS = (("a", "A is better", "arena-vote-a"), ("b", "B is better", "arena-vote-b"),
                ("tie", "Tie", "arena-vote-tie"), ("bothbad", "Both are bad", "arena-vote-bad"))
PRIVATE = {"api_visibility": "private", "queue": False}


class ArenaHandlers:
    """The tab's events. ``h``: the chat's `Handlers` (identity and message checks)."""

    def __init__(self, h, battles: BattleService):
        self.h = h
        self.battles = battles
        self._stops: dict[str, set[asyncio.Event]] = {}

    def _battle_id(self, value) -> str | None:
        return value if isinstance(value, str) and value else None

    async def _turn(self, message, battle_id, token, profile, request):
        """Begin a turn and stream it: yields (chat A, chat B, info)."""
        user_id = self.h.user(token, profile)
        message = self.h.check_message(message)
        if not message:
            return
        try:
            bt = await asyncio.to_thread(self.battles.begin, user_id, battle_id, message)
        except ArenaError as e:
            raise gr.Error(str(e), title="Arena") from None
        except NotFound:
            raise gr.Error("This battle does not exist.", title="Not found") from None
        stop = asyncio.Event()
        key = getattr(request, "session_hash", None)
        if key:
            self._stops.setdefault(key, set()).add(stop)
        try:
            async for update in self.battles.stream(user_id, bt, stop):
                yield update
        finally:
            if key:
                self._stops.get(key, set()).discard(stop)

    async def chat(self, message: str, battle_id: str, token: str, request: gr.Request,
                   profile: gr.OAuthProfile | None = None):
        """API: a message to a battle ("" starts one): yields (chat A, chat B, info)."""
        async for a, b, info in self._turn(message, self._battle_id(battle_id), token, profile,
                                           request):
            yield a, b, info

    async def chat_ui(self, message: str, token: str, session: dict | None,
                      request: gr.Request, profile: gr.OAuthProfile | None = None):
        session = session or {}
        async for a, b, info in self._turn(message, session.get("battle"), token, profile,
                                           request):
            yield a, b, {"battle": info["battle_id"]}, info

    async def stop(self, request: gr.Request) -> None:
        for event in list(self._stops.get(request.session_hash, ())):
            event.set()

    def vote(self, battle_id: str, vote: str, reason: str, comment: str, token: str,
             profile: gr.OAuthProfile | None = None) -> dict:
        """API: vote on the latest turn; returns the battle's info, now naming the models."""
        user_id = self.h.user(token, profile)
        battle_id = self._battle_id(battle_id)
        if battle_id is None:
            raise gr.Error("Start a battle first.", title="Arena")
        if comment is not None and not isinstance(comment, str):
            raise gr.Error("The comment must be text.", title="Arena")
        try:
            return self.battles.vote(user_id, battle_id, None, vote if isinstance(vote, str)
                                     else "", reason or None, comment or None)
        except ArenaError as e:
            raise gr.Error(str(e), title="Arena") from None
        except NotFound:
            raise gr.Error("This battle does not exist.", title="Not found") from None

    def api_vote(self, battle_id: str, vote: str, reason: str, comment: str,
                 token: str) -> dict:
        """Vote on the latest turn: a | b | tie | bothbad; reason optional (one of the
        arena's reasons). Returns the battle's info, now naming the models."""
        return self.vote(battle_id, vote, reason, comment, token)

    def battle(self, battle_id: str, token: str) -> dict:
        """API: one of the caller's battles as it stands (names only after a vote)."""
        user_id = self.h.user(token)
        battle_id = self._battle_id(battle_id)
        try:
            if battle_id is None:
                raise NotFound("no battle")
            a, b = self.battles.views(user_id, battle_id)
            return {"a": a, "b": b, "info": self.battles.public_state(user_id, battle_id)}
        except NotFound:
            raise gr.Error("This battle does not exist.", title="Not found") from None

    def vote_ui(self, kind: str, reason, comment, token, session,
                profile: gr.OAuthProfile | None = None):
        info = self.vote((session or {}).get("battle"), kind, reason, comment, token, profile)
        gr.Info("Thanks — your vote was saved.")
        return (*self.controls(info), info)

    @staticmethod
    def controls(info: dict | None):
        """Vote buttons (which the latest turn still takes), the reveal line, the labels."""
        info = info or {}
        allowed = set(info.get("votes") or [])
        buttons = [gr.update(interactive=kind in allowed) for kind, _, _ in VOTE_BUTTONS]
        models = info.get("models")
        if models:
            verdict = {"model_a": "A is better", "model_b": "B is better", "tie": "Tie",
                       "tie (bothbad)": "Both are bad"}.get(info.get("winner") or "", "")
            reveal = (f"**Model A:** {models['model_a']} · **Model B:** {models['model_b']}"
                      + (f" — your vote: {verdict}" if verdict else ""))
            labels = [gr.update(label=f"Model A: {models['model_a']}"),
                      gr.update(label=f"Model B: {models['model_b']}")]
        else:
            if info.get("auto_tie"):
                reveal = "The two answers are identical: recorded as a tie."
            elif allowed == {"tie", "bothbad"}:
                reveal = ("An answer failed or was stopped: it can only be a tie or both bad. "
                          "The names appear after your vote.")
            else:
                reveal = ("Which answer is better? The names appear after your vote."
                          if allowed else "")
            labels = [gr.update(label="Model A"), gr.update(label="Model B")]
        return (*buttons, reveal, *labels)


def build_arena_tab(h, token) -> gr.Tab | None:
    """The Arena tab, when ``arena.enabled`` and two of its models are up; call inside
    ``gr.Tabs()`` with the chat's `Handlers` and the token component."""
    settings = h.service.settings
    if not settings.arena.enabled:
        return None
    battles = BattleService(h.service, h.history.store)
    if not battles.available:
        log.warning("arena: enabled but fewer than two of its models are up; tab left out")
        return None
    a = ArenaHandlers(h, battles)
    chat_args = dict(image_hosts=settings.render.image_hosts, height="58vh",
                     sanitize_html=True, render_markdown=True, buttons=["copy"])
    with gr.Tab("Arena", elem_id="arena-tab") as tab:
        gr.Markdown(INTRO, elem_id="arena-intro")
        session = gr.State({})
        with gr.Row(elem_id="arena-columns"):
            with gr.Column(min_width=300):
                chat_a = safe_chatbot(label="Model A", elem_id="arena-a", **chat_args)
            with gr.Column(min_width=300):
                chat_b = safe_chatbot(label="Model B", elem_id="arena-b", **chat_args)
        reveal = gr.Markdown(elem_id="arena-reveal")
        with gr.Row(elem_id="arena-votes"):
            buttons = [gr.Button(text, elem_id=eid, interactive=False, min_width=120)
                       for _, text, eid in VOTE_BUTTONS]
        with gr.Accordion("Why? (optional, before you vote)", open=False,
                          elem_id="arena-why"):
            reason = gr.Radio(list(BATTLE_REASONS), label="What decided it", elem_id="arena-reason")
            comment = gr.Textbox(placeholder="Anything else…", show_label=False, max_lines=4,
                                 elem_id="arena-comment")
        with gr.Row(equal_height=True, elem_id="arena-input-row"):
            textbox = gr.Textbox(placeholder="Ask both models…", show_label=False, lines=1,
                                 max_lines=8, submit_btn=True, stop_btn=False, scale=8,
                                 elem_id="arena-input")
            new_battle = gr.Button("New battle", scale=0, min_width=120, elem_id="arena-new")
        info = gr.JSON(visible=False)
        pending = gr.State("")
        api_message, api_battle = gr.Textbox(visible=False), gr.Textbox(visible=False)
        api_button = gr.Button(visible=False)

    controls = [*buttons, reveal, chat_a, chat_b]
    turn = (textbox.submit(h.validate_message, [textbox], None, **PRIVATE)
            .success(lambda m: (m, gr.Textbox(value="", submit_btn=False, stop_btn=True),
                                *ArenaHandlers.controls(None)[:5]),
                     [textbox], [pending, textbox, *buttons, reveal], **PRIVATE)
            .success(a.chat_ui, [pending, token, session], [chat_a, chat_b, session, info],
                     show_progress="hidden", api_visibility="private"))
    turn.then(lambda: gr.Textbox(submit_btn=True, stop_btn=False, interactive=True), None,
              [textbox], **PRIVATE).then(a.controls, [info], controls, **PRIVATE)
    textbox.stop(a.stop, None, None, **PRIVATE)
    for (kind, _, _), button in zip(VOTE_BUTTONS, buttons):
        button.click(lambda r, c, t, s, kind=kind: a.vote_ui(kind, r, c, t, s),
                     [reason, comment, token, session], [*controls, info], **PRIVATE)

    def fresh():
        *buttons_reveal, _, _ = ArenaHandlers.controls(None)
        return ({}, None, "", None, "", *buttons_reveal,
                gr.update(value=[], label="Model A"), gr.update(value=[], label="Model B"))

    new_battle.click(fresh, None, [session, info, textbox, reason, comment, *controls],
                     cancels=[turn], **PRIVATE)
    api_button.click(a.chat, [api_message, api_battle, token], [chat_a, chat_b, info],
                     api_name="arena_chat", show_progress="hidden")
    with tab:  # gr.api adds a component: inside the Tab (Tabs take only Tab children)
        gr.api(a.api_vote, api_name="arena_vote", queue=False)
        gr.api(a.battle, api_name="arena_battle", queue=False)
    return tab


__all__ = ["ArenaHandlers", "build_arena_tab"]
