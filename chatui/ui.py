"""Layout and event wiring only. Turn logic: chat.py; handlers: handlers.py."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import dashboard, prefs
from .chat import ChatService
from .feedback_handlers import REASONS
from .handlers import Handlers
from .library_handlers import new_session
from .identity import browser_secret
from .history import History
from .safe_chatbot import safe_chatbot
from .sidebar import Sidebar
from .attachments.flow import accepted_suffixes

LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
]

# Page styling, and the browser-side behaviour Gradio has no option for (phone sidebar,
# Enter in the edit box, …): plain files next to this one, passed on by server.py.
CSS = (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")
JS = (Path(__file__).with_name("ui.js")).read_text(encoding="utf-8")


def build_ui(service: ChatService, history: History) -> gr.Blocks:
    settings = service.settings
    h = Handlers(service, history)
    default = settings.model(None)
    model_names = [m.name for m in settings.models]
    login = settings.space.hf_oauth
    private = {"api_visibility": "private", "queue": False}

    with gr.Blocks(title=settings.space.title, fill_height=True) as demo:
        # Anonymous identity: a random token in this browser's localStorage (see identity.py).
        secret = browser_secret(Path(settings.storage.db_path).parent)
        token = gr.BrowserState("", storage_key="chatui_user_token", secret=secret)
        # The user's settings, kept in this browser across reloads (see prefs.py).
        saved_prefs = gr.BrowserState({}, storage_key="chatui_settings", secret=secret)
        session = gr.State(new_session())

        with gr.Sidebar(open=True):
            gr.Markdown(f"## {settings.space.title}")
            if login:
                gr.LoginButton()
            new_chat = gr.Button("New chat", variant="primary", elem_id="new-chat")
            # -- issue 11: search (sidebar.py); results are links ui.js opens in place --
            search_box = gr.Textbox(placeholder="Search your chats…", show_label=False,
                                    max_lines=1, elem_id="search")
            search_results = gr.HTML(visible=False, elem_id="search-results")
            conversations = gr.Radio([], label="Conversations", elem_id="conversations",
                                     show_label=True, interactive=True)
            with gr.Accordion("Rename / delete", open=False, elem_id="rename-delete"):
                new_title = gr.Textbox(label="New title", max_lines=1, elem_id="new-title")
                with gr.Row():
                    rename_btn = gr.Button("Rename", size="sm", elem_id="rename-conversation")
                    delete_btn = gr.Button("Delete", size="sm", variant="stop",
                                           elem_id="delete-conversation")
                # Deleting cannot be undone: a second, explicit step.
                with gr.Group(visible=False, elem_id="confirm-delete") as confirm_box:
                    gr.Markdown("Delete this conversation for good?")
                    with gr.Row():
                        confirm_delete = gr.Button("Confirm delete", size="sm", variant="stop",
                                                   elem_id="confirm-delete-button")
                        cancel_delete = gr.Button("Cancel", size="sm",
                                                  elem_id="cancel-delete-button")
            # -- issue 11: share links of the branch on screen (sidebar.py) --
            with gr.Accordion("Share", open=False, elem_id="share-accordion"):
                share_btn = gr.Button("Share this conversation", size="sm",
                                      elem_id="share-conversation")
                share_link = gr.Textbox(label="Link (read-only snapshot)", visible=False,
                                        interactive=False, buttons=["copy"],
                                        elem_id="share-link")
                my_links = gr.Dropdown([], label="Your links", elem_id="my-links")
                revoke_btn = gr.Button("Revoke link", size="sm", variant="stop",
                                       elem_id="revoke-share")
            # The address bar's conversation (ui.js presses this on Back/Forward).
            url_nav = gr.Button("Open address", visible="hidden", elem_id="url-nav")
            # Date headings of the chat list (a <style>; ui.js presses the button when the
            # list changes).
            list_groups = gr.HTML(visible="hidden", elem_id="conv-groups")
            groups_btn = gr.Button("Group chats", visible="hidden", elem_id="conv-groups-refresh")
            tz_offset = gr.Number(visible=False)
            url_query = gr.Textbox(visible=False)
            with gr.Accordion("Settings", open=False):
                system_prompt = gr.Textbox(default.system_prompt, label="System prompt", lines=3,
                                           elem_id="system-prompt")
                temperature = gr.Slider(0.0, 2.0, default.parameters.temperature, step=0.05,
                                        label="Temperature", elem_id="temperature")
                top_p = gr.Slider(0.05, 1.0, default.parameters.top_p, step=0.05, label="Top-p",
                                  elem_id="top-p")
                # Never more than the model's context: the answer could not fit anyway.
                max_new_tokens = gr.Slider(16, default.context_length,
                                           min(default.parameters.max_new_tokens,
                                               default.context_length), step=16,
                                           label="Max new tokens", elem_id="max-new-tokens")

        with gr.Tabs():
            with gr.Tab("Chat"):
                with gr.Row(elem_id="chat-header"):
                    model = gr.Dropdown(model_names, value=default.name, label="Model", scale=3,
                                        elem_id="model")
                    model_info = gr.Markdown(_model_info(default), elem_id="model-info")
                # -- issue 11: a shared conversation (/?share=<id>), read-only --
                with gr.Group(visible=False, elem_id="share-view") as share_box:
                    share_md = gr.Markdown(elem_id="share-banner")
                    continue_share_btn = gr.Button("Continue this conversation",
                                                   variant="primary", visible=False,
                                                   elem_id="continue-share")
                share_state = gr.State(None)
                # Sanitizes every message it sends to the browser (safe_chatbot.py).
                chatbot = safe_chatbot(
                    image_hosts=settings.render.image_hosts,
                    inline_images=settings.attachments.enabled,  # attached images' previews
                    elem_id="chatbot", label="Chat", show_label=False, height="68vh",
                    latex_delimiters=LATEX, sanitize_html=True, render_markdown=True,
                    editable="user", buttons=["copy", "copy_all"],
                    feedback_options=("Like", "Dislike"),
                    # issue 11: example prompts of an empty chat (ui.js sends one on a click)
                    examples=[{"text": e} for e in settings.conversations.examples] or None,
                    placeholder=f"**{settings.space.title}** — ask anything. Answers stream "
                                "from the model you pick above; rate them with the thumbs "
                                "under each.")
                with gr.Row(visible=False, elem_id="question-nav") as question_nav:
                    prev_question = gr.Button("‹ Previous", size="sm", scale=0, min_width=40,
                                              elem_id="prev-question")
                    question_label = gr.Markdown(elem_id="question-position")
                    next_question = gr.Button("Next ›", size="sm", scale=0, min_width=40,
                                              elem_id="next-question")
                with gr.Row(visible=False, elem_id="answer-nav") as answer_nav:
                    prev_answer = gr.Button("‹ Previous", size="sm", scale=0, min_width=40,
                                            elem_id="prev-answer")
                    nav_label = gr.Markdown(elem_id="answer-position")
                    next_answer = gr.Button("Next ›", size="sm", scale=0, min_width=40,
                                            elem_id="next-answer")
                continue_btn = gr.Button("Continue", size="sm", visible=False,
                                         elem_id="continue-answer")
                with gr.Group(visible=False, elem_id="reason-box") as reason_box:
                    gr.Markdown("**What was wrong with this answer?** (optional)")
                    reason = gr.Radio(REASONS, label="Reason", show_label=False)
                    comment = gr.Textbox(placeholder="Tell us more…", show_label=False,
                                         max_lines=4)
                    send_reason = gr.Button("Send feedback", size="sm")
                disliked = gr.State(None)
                with gr.Row(equal_height=True, elem_id="input-row"):
                    web_search = gr.Checkbox(False, label="Search the web", scale=0,
                                             min_width=170, visible=settings.websearch.enabled,
                                             elem_id="web-search")
                    # -- issue 13: one input for text, documents and (vision models) images --
                    textbox = gr.MultimodalTextbox(
                        placeholder="Ask anything…", show_label=False, lines=1, max_lines=8,
                        autofocus=True, submit_btn=True, stop_btn=False, scale=8,
                        elem_id="input", file_count="multiple",
                        # no attach button when the server takes no files
                        sources=["upload"] if settings.attachments.enabled else [],
                        file_types=accepted_suffixes(default.vision),
                        # Long pasted text stays text (the message limit applies), not a file.
                        max_plain_text_length=settings.limits.max_message_chars + 1)
            from .arena.ui import build_arena_tab  # Arena (issue 12): only when enabled
            build_arena_tab(h, token)
            # The operator's dashboard, its access check and its events: dashboard.py.
            feedback_tab = dashboard.build_feedback_tab(history.store, login)
        # Hidden outputs of the API events: outside the Tabs, which take only Tab children.
        turn_info = gr.JSON(visible=False)
        api_result = gr.Textbox(visible=False)

        settings_in = [model, system_prompt, temperature, top_p, max_new_tokens]
        gen_inputs = [*settings_in, web_search, token, session]
        gen_outputs = [chatbot, session, turn_info]

        def busy():
            return gr.MultimodalTextbox(value=None, submit_btn=False, stop_btn=True)

        def idle():
            return gr.MultimodalTextbox(submit_btn=True, stop_btn=False, interactive=True)

        # The Chatbot's value is never an input of these events: what the chat shows is
        # rebuilt from the store (see handlers.py), so a client cannot make the app echo
        # file parts or invented turns.
        # Browser path: validate first (a refused message stays in the box), then move the
        # text out of the box and generate.
        pending = gr.State("")
        checked = textbox.submit(h.validate_message, [textbox, model], None, **private)
        # Gradio shows no toast for an error of a queue=False event (checked in Chromium): on
        # a refusal the same check runs again as a queued event, whose error it does show.
        checked.failure(h.validate_message, [textbox, model], None, api_visibility="private",
                        show_progress="hidden")
        # issue 11: Sidebar.send is Handlers.chat_ui, except that on a shared page
        # (share_state) it continues the shared conversation in a copy of it.
        sb = Sidebar(h)
        ui_event = (checked
                    .success(lambda m: (m, busy()), [textbox], [pending, textbox], **private)
                    .success(sb.send, [pending, *gen_inputs, share_state],
                             [*gen_outputs, conversations, share_box, share_state],
                             show_progress="hidden", api_name="chat_ui",
                             api_visibility="private", preprocess=False))
        # Named endpoints for gradio_client and bench/: one event, one round trip each.
        conversation_id = gr.Textbox(visible=False)
        api_button = gr.Button(visible=False)
        # The API's message: text, or {"text", "files"} as the browser's input sends it.
        api_message = gr.Textbox(visible=False)
        # preprocess=False on the two message events: the handler gets the raw JSON values
        # and checks every one itself (Handlers.options / check_message / user), which it
        # must do anyway for API callers. Gradio's per-input preprocess costs one worker-
        # thread trip per input (9 here) before the first token, and under load each trip
        # waits in the thread pool (bench_scale: p50 TTFT at 32 users 847 -> 675 ms).
        # File parts are still checked by Gradio (it moves/refuses them before this point).
        api_event = api_button.click(h.chat, [api_message, conversation_id, *gen_inputs],
                                     gen_outputs, api_name="chat", show_progress="hidden",
                                     preprocess=False)
        # The attach button offers images only for a model that sees them.
        model.change(lambda name: gr.MultimodalTextbox(
            file_types=accepted_suffixes(settings.model(name).vision)), [model], [textbox],
            **private)
        api_retry = gr.Button(visible=False)
        api_retry_event = api_retry.click(h.retry, [conversation_id, *gen_inputs], gen_outputs,
                                          api_name="retry", show_progress="hidden")
        # busy() must land before the answer: chained, not a parallel listener (a fast model
        # can finish before a parallel busy() arrives and leave the stop button stuck).
        retry_event = (chatbot.retry(busy, None, [textbox], **private)
                       .then(h.retry_ui, gen_inputs, gen_outputs, show_progress="hidden",
                             api_visibility="private"))
        # Generating events stay queued (queue=False cannot be cancelled by a new chat).
        pending_edit = gr.State(None)  # chained events do not receive the EditData
        edit_event = (chatbot.edit(h.stash_edit, None, [pending_edit], **private)
                      .then(busy, None, [textbox], **private)
                      .then(h.edit, [pending_edit, *gen_inputs], gen_outputs,
                            show_progress="hidden", api_visibility="private"))
        continue_event = (continue_btn.click(busy, None, [textbox], **private)
                          .then(h.continue_answer, [*settings_in, token, session], gen_outputs,
                                show_progress="hidden", api_visibility="private"))
        generating = [ui_event, api_event, api_retry_event, retry_event, edit_event,
                      continue_event]
        refresh_list = {"fn": h.conversation_choices, "inputs": [token, session],
                        "outputs": [conversations], **private}
        show_nav = {"fn": h.nav, "inputs": [token, session],
                    "outputs": [answer_nav, nav_label, question_nav, question_label,
                                continue_btn], **private}
        for event in generating:
            event.then(idle, None, [textbox], **private).then(**refresh_list).then(**show_nav)
        for button, kind, step in ((prev_answer, "answer", -1), (next_answer, "answer", 1),
                                   (prev_question, "question", -1),
                                   (next_question, "question", 1)):
            button.click(lambda tok, ses, kind=kind, step=step: h.switch(kind, step, tok, ses),
                         [token, session], [chatbot, session], **private
                         ).then(**show_nav).then(**refresh_list)
        # Stop ends the answer from the inside (no cancels=: see Handlers.stop).
        textbox.stop(h.stop_ui, [token, session], None, **private)
        chatbot.undo(h.undo, [token, session], [chatbot, textbox, session], **private
                     ).then(**show_nav).then(**refresh_list)

        def start_new():
            # The input goes back to sending: an answer left behind (a new chat mid-answer,
            # or one this page was following) goes on being written in its own chat. What is
            # typed stays: a user who clicks New chat and types at once must not lose it.
            return ([], idle(), new_session(), gr.Radio(value=None), gr.update(visible=False),
                    gr.update(visible=False), gr.update(visible=False))

        fresh = [chatbot, textbox, session, conversations, answer_nav, question_nav,
                 continue_btn]
        new_chat.click(start_new, None, fresh, cancels=generating, **private)
        chatbot.clear(start_new, None, fresh, **private)
        open_event = conversations.input(
            h.open_conversation, [conversations, token], [chatbot, session], cancels=generating,
            api_name="open_conversation_ui", **private).then(**show_nav)

        # Feedback: thumbs on any answer; a thumbs-down opens the optional reason box.
        chatbot.like(h.like, [token, session], [reason_box, disliked], **private)
        # Queued, so its "Thanks" toast shows (Gradio shows none for an unqueued event).
        send_reason.click(h.send_reason, [disliked, reason, comment, token],
                          [reason_box, disliked, comment, reason], api_visibility="private")

        # Enter in the title box renames, as the button does; the box empties afterwards and
        # whenever another chat opens, so a leftover title never renames the wrong chat.
        gr.on([rename_btn.click, new_title.submit], h.rename,
              [conversations, new_title, token], [api_result], **private
              ).success(lambda: "", None, [new_title], **private).success(**refresh_list)
        # (In the browser, at once: the list's Rename button fills the box right after it
        # opens the chat, and a server round trip could clear it afterwards.)
        conversations.change(None, None, [new_title], js="() => ''", **private)

        # Delete asks first: the button only opens the "Confirm delete / Cancel" step (and
        # with no chat open there is nothing to confirm).
        def ask_delete(conv_id):
            if not conv_id:
                gr.Warning("Open a conversation to delete it.")
            return gr.update(visible=bool(conv_id))

        # Queued: Gradio shows no toast for an unqueued event.
        delete_btn.click(ask_delete, [conversations], [confirm_box], api_visibility="private")
        cancel_delete.click(lambda: gr.update(visible=False), None, [confirm_box], **private)
        confirm_delete.click(lambda: gr.update(visible=False), None, [confirm_box], **private
                             ).then(h.delete, [conversations, token], [api_result], **private
                                    ).success(start_new, None, fresh, **private
                                              ).then(**refresh_list)

        # API twins of the sidebar and the thumbs (identity = the caller's token).
        for fn, name in [(h.api_conversations, "conversations"),
                         (h.api_open_conversation, "open_conversation"),
                         (h.api_rename, "rename_conversation"),
                         (h.api_delete, "delete_conversation"), (h.api_rate, "rate")]:
            gr.api(fn, api_name=name, queue=False)

        def on_model(name):
            spec = settings.model(name)
            p = spec.parameters
            return (_model_info(spec), spec.system_prompt, p.temperature, p.top_p,
                    gr.Slider(maximum=spec.context_length,
                              value=min(p.max_new_tokens, spec.context_length)))

        # .input, not .change: only the user's choice resets to the model's defaults, not the
        # restore of saved settings on load.
        model.input(on_model, [model], [model_info, system_prompt, temperature, top_p,
                                        max_new_tokens], **private)

        pref_fields = [model, system_prompt, temperature, top_p, max_new_tokens, web_search]
        gr.on([c.change for c in pref_fields],
              lambda *values: prefs.to_saved(settings, *values), pref_fields, [saved_prefs],
              **private)

        def restore_prefs(saved):
            p = prefs.restore(settings, saved)
            spec = settings.model(p.model)
            return (p.model, _model_info(spec), p.system_prompt, p.temperature, p.top_p,
                    gr.Slider(maximum=spec.context_length, value=p.max_new_tokens),
                    p.web_search)

        demo.load(restore_prefs, [saved_prefs], [model, model_info, *pref_fields[1:]], **private)

        def on_load(tok, profile: gr.OAuthProfile | None = None):
            tok, convs = h.init_session(tok, profile)
            return tok, convs, gr.Tab(visible=dashboard.tab_visible(login, profile))

        page_load = demo.load(on_load, [token], [token, conversations, feedback_tab],
                              **private)
        _wire_issue_11(h, page_load, locals())
    demo.css, demo.js = CSS, JS
    return demo


def _model_info(spec) -> str:
    desc = spec.description or spec.type
    return f"{desc} · {spec.context_length:,}-token context"


# -- issue 11: the address bar, search and share links (handlers: sidebar.py) --------------
def _wire_issue_11(h: Handlers, page_load, c: dict) -> None:
    """Events of the URL / search / share parts; ``c`` is build_ui's components by name."""
    sb = c["sb"]
    private = {"api_visibility": "private", "queue": False}
    chatbot, session, conversations, token = (c["chatbot"], c["session"], c["conversations"],
                                              c["token"])
    share_box, share_md, share_state = c["share_box"], c["share_md"], c["share_state"]
    show_nav = {"fn": h.nav, "inputs": [token, session],
                "outputs": [c["answer_nav"], c["nav_label"], c["question_nav"],
                            c["question_label"], c["continue_btn"]], **private}
    # What the address names (?c= / ?share=), on load (after the token exists) and on
    # Back/Forward or a search hit (ui.js presses #url-nav): the browser sends location.search.
    from_url = {"fn": sb.open_from_url, "inputs": [c["url_query"], token],
                "outputs": [chatbot, session, conversations, share_box, share_md, share_state,
                            c["continue_share_btn"]],
                "js": "(q, tok) => [window.location.search, tok]", **private}
    # An answer still being written by another tab or replica is followed until it ends.
    writing = gr.Timer(2.0, active=False)
    # While following, the input's stop button stops that answer (Handlers.stop_ui).
    watch = {"fn": sb.watch, "inputs": [token, session], "outputs": [writing, c["textbox"]],
             **private}
    writing.tick(sb.refresh_writing, [token, session],
                 [chatbot, session, writing, c["textbox"]], **private).then(**show_nav)
    page_load.then(**from_url).then(**show_nav).then(**watch)
    # always_last: Back twice in a row must end on the second address, not drop it.
    c["url_nav"].click(**from_url, trigger_mode="always_last").then(**show_nav).then(**watch)
    c["open_event"].then(**watch)
    # The conversation on screen changed (opened, started, continued): put it in the address.
    conversations.change(None, [conversations], None,
                         js="(conv) => { window.chatuiUrl?.show(conv); }", **private)
    c["new_chat"].click(lambda: (gr.update(visible=False), None), None,
                        [share_box, share_state], **private)
    c["search_box"].change(sb.search, [c["search_box"], token], [c["search_results"]],
                           trigger_mode="always_last", **private)
    share_link, my_links = c["share_link"], c["my_links"]
    c["share_btn"].click(sb.share, [session, token], [share_link, my_links], **private
                         ).success(None, [share_link], [share_link],
                                   js="(id) => window.chatuiUrl ? window.chatuiUrl.shareLink(id)"
                                      " : id", **private)
    c["revoke_btn"].click(sb.revoke, [my_links, token], [my_links], **private)
    # The browser's UTC offset travels with the request, so "Today" is the viewer's day.
    c["groups_btn"].click(sb.list_groups, [token, c["tz_offset"]], [c["list_groups"]],
                          js="(token) => [token, new Date().getTimezoneOffset()]",
                          trigger_mode="always_last", **private)
    # A new chat's model-written title, once its first answer is stored and shown (a step of
    # its own after the send: it never delays the answer).
    # After an edit of the first question too: the title follows the question on screen.
    if h.service.settings.conversations.auto_titles:
        for event in (c["ui_event"], c["edit_event"]):
            event.then(sb.retitle, [token, session, c["model"]], [conversations], **private)
    page_load.then(sb.share_choices, [token], [my_links], **private)
    c["continue_share_btn"].click(sb.continue_share, [share_state, token],
                                  [chatbot, session, conversations, share_box, share_state],
                                  api_name="continue_share_ui", **private).then(**show_nav)
    for fn, name in [(sb.api_search, "search_conversations"),
                     (sb.api_share, "share_conversation"),
                     (sb.api_list_shares, "list_shares"), (sb.api_revoke_share, "revoke_share"),
                     (sb.api_open_share, "open_share"),
                     (sb.api_continue_share, "continue_share")]:
        gr.api(fn, api_name=name, queue=False)
