"""Layout and event wiring only. Turn logic: chat.py; handlers: handlers.py."""

from __future__ import annotations

import gradio as gr

from . import dashboard
from .chat import ChatService
from .handlers import REASONS, Handlers, new_session
from .history import History

LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
]

CSS = """
#model-info { font-size: 0.85em; opacity: 0.8; }
#conversations .wrap { flex-direction: column; }
#conversations label { width: 100%; }
footer { display: none !important; }
"""


def build_ui(service: ChatService, history: History) -> gr.Blocks:
    settings = service.settings
    h = Handlers(service, history)
    default = settings.model(None)
    model_names = [m.name for m in settings.models]
    login = settings.space.hf_oauth
    private = {"api_visibility": "private", "queue": False}

    with gr.Blocks(title=settings.space.title, fill_height=True) as demo:
        # Anonymous identity: a random token in this browser's localStorage (see identity.py).
        token = gr.BrowserState("", storage_key="chatui_user_token")
        session = gr.State(new_session())

        with gr.Sidebar(open=True):
            gr.Markdown(f"## {settings.space.emoji} {settings.space.title}")
            if login:
                gr.LoginButton()
            new_chat = gr.Button("➕ New chat", variant="primary")
            conversations = gr.Radio([], label="Conversations", elem_id="conversations",
                                     show_label=True, interactive=True)
            with gr.Accordion("✏️ Rename / delete", open=False):
                new_title = gr.Textbox(label="New title", max_lines=1)
                with gr.Row():
                    rename_btn = gr.Button("Rename", size="sm")
                    delete_btn = gr.Button("🗑️ Delete", size="sm", variant="stop")
            with gr.Accordion("⚙️ Settings", open=False):
                system_prompt = gr.Textbox(default.system_prompt, label="System prompt", lines=3)
                temperature = gr.Slider(0.0, 2.0, default.parameters.temperature, step=0.05,
                                        label="Temperature")
                top_p = gr.Slider(0.05, 1.0, default.parameters.top_p, step=0.05, label="Top-p")
                max_new_tokens = gr.Slider(16, 4096, default.parameters.max_new_tokens, step=16,
                                           label="Max new tokens")

        with gr.Tabs():
            with gr.Tab("💬 Chat"):
                with gr.Row():
                    model = gr.Dropdown(model_names, value=default.name, label="Model", scale=3)
                    model_info = gr.Markdown(_model_info(default), elem_id="model-info")
                chatbot = gr.Chatbot(
                    elem_id="chatbot", label="Chat", show_label=False, height="68vh",
                    latex_delimiters=LATEX, sanitize_html=True, render_markdown=True,
                    editable="user", buttons=["copy", "copy_all"],
                    feedback_options=("Like", "Dislike"),
                    placeholder=f"**{settings.space.title}** — ask anything. Answers stream "
                                "from the model you pick above; rate them with 👍 / 👎.")
                with gr.Row(visible=False, elem_id="answer-nav") as answer_nav:
                    prev_answer = gr.Button("◀", size="sm", scale=0, min_width=40,
                                            elem_id="prev-answer")
                    nav_label = gr.Markdown(elem_id="answer-position")
                    next_answer = gr.Button("▶", size="sm", scale=0, min_width=40,
                                            elem_id="next-answer")
                with gr.Group(visible=False) as reason_box:
                    gr.Markdown("**What was wrong with this answer?** (optional)")
                    reason = gr.Radio(REASONS, label="Reason", show_label=False)
                    comment = gr.Textbox(placeholder="Tell us more…", show_label=False,
                                         max_lines=4)
                    send_reason = gr.Button("Send feedback", size="sm")
                disliked = gr.State(None)
                with gr.Row(equal_height=True):
                    web_search = gr.Checkbox(False, label="🌐 Search the web", scale=0,
                                             min_width=170, visible=settings.websearch.enabled)
                    textbox = gr.Textbox(placeholder="Ask anything…", show_label=False, lines=1,
                                         max_lines=8, autofocus=True, submit_btn=True,
                                         stop_btn=False, scale=8, elem_id="input")
            with gr.Tab("📊 Feedback", visible=not login) as feedback_tab:
                refresh = gr.Button("Refresh", size="sm")
                votes_plot = gr.BarPlot(x="day", y="votes", color="model",
                                        title="Votes per day", x_title="day")
                rate_plot = gr.LinePlot(x="day", y="up_rate", color="model",
                                        title="Thumbs-up rate", y_lim=[0, 1])
                comments_table = gr.Dataframe(label="Latest comments", interactive=False,
                                              wrap=True, elem_id="latest-comments")
                gr.Markdown("Export training data: `python -m chatui export --format "
                            "kto|dpo|conversations --out data.jsonl`")
            turn_info = gr.JSON(visible=False)
            api_result = gr.Textbox(visible=False)

        gen_inputs = [model, system_prompt, temperature, top_p, max_new_tokens, web_search,
                      token, session]
        gen_outputs = [chatbot, session, turn_info]

        def busy():
            return gr.Textbox(value="", submit_btn=False, stop_btn=True)

        def idle():
            return gr.Textbox(submit_btn=True, stop_btn=False, interactive=True)

        # Browser path: validate first (a refused message stays in the box), then move the
        # text out of the box and generate.
        pending = gr.State("")
        ui_event = (textbox.submit(h.check_message, [textbox], None, **private)
                    .success(lambda m: (m, busy()), [textbox], [pending, textbox], **private)
                    .success(h.chat, [pending, chatbot, *gen_inputs], gen_outputs,
                             show_progress="hidden", api_name="chat_ui",
                             api_visibility="private"))
        # Named endpoints for gradio_client and bench/: one event, one round trip each.
        api_button = gr.Button(visible=False)
        api_event = api_button.click(h.chat, [textbox, chatbot, *gen_inputs], gen_outputs,
                                     api_name="chat", show_progress="hidden")
        # busy() must land before the answer: chained, not a parallel listener (a fast model
        # can finish before a parallel busy() arrives and leave the stop button stuck).
        retry_event = (chatbot.retry(busy, None, [textbox], **private)
                       .then(h.retry, [chatbot, *gen_inputs], gen_outputs, api_name="retry",
                             show_progress="hidden"))
        pending_edit = gr.State(None)  # chained events do not receive the EditData
        edit_event = (chatbot.edit(h.stash_edit, None, [pending_edit], **private)
                      .then(busy, None, [textbox], **private)
                      .then(h.edit, [chatbot, pending_edit, *gen_inputs], gen_outputs,
                            api_name="edit_ui", api_visibility="private",
                            show_progress="hidden"))
        generating = [ui_event, api_event, retry_event, edit_event]
        refresh_list = {"fn": h.conversation_choices, "inputs": [token, session],
                        "outputs": [conversations], **private}
        show_nav = {"fn": h.answer_nav, "inputs": [token, session],
                    "outputs": [answer_nav, nav_label], **private}
        for event in generating:
            event.then(idle, None, [textbox], **private).then(**refresh_list).then(**show_nav)
        for button, step in ((prev_answer, -1), (next_answer, 1)):
            button.click(lambda tok, ses, step=step: h.switch_answer(step, tok, ses),
                         [token, session], [chatbot, session, answer_nav, nav_label],
                         **private)
        textbox.stop(h.mark_stopped, [chatbot], [chatbot], cancels=generating, **private
                     ).then(idle, None, [textbox], **private)
        chatbot.undo(h.undo, [chatbot, token, session], [chatbot, textbox, session], **private
                     ).then(**show_nav)

        def start_new():
            return [], "", new_session(), gr.Radio(value=None), gr.update(visible=False)

        fresh = [chatbot, textbox, session, conversations, answer_nav]
        new_chat.click(start_new, None, fresh, cancels=generating, **private)
        chatbot.clear(start_new, None, fresh, **private)
        conversations.input(h.open_conversation, [conversations, token], [chatbot, session],
                            cancels=generating, api_name="open_conversation_ui", **private
                            ).then(**show_nav)

        # Feedback: thumbs on any answer; a thumbs-down opens the optional reason box.
        chatbot.like(h.like, [token, session], [reason_box, disliked], **private)
        send_reason.click(h.send_reason, [disliked, reason, comment, token],
                          [reason_box, disliked, comment, reason], **private)

        rename_btn.click(h.rename, [conversations, new_title, token], [api_result], **private
                         ).success(**refresh_list)
        delete_btn.click(h.delete, [conversations, token], [api_result], **private
                         ).success(start_new, None, fresh, **private).then(**refresh_list)

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
                    p.max_new_tokens)

        model.change(on_model, [model], [model_info, system_prompt, temperature, top_p,
                                         max_new_tokens], **private)

        def load_dashboard(profile: gr.OAuthProfile | None = None):
            if not dashboard.may_view(login, profile):
                return gr.update(), gr.update(), gr.update()
            votes, rates, comments = dashboard.stats_frames(history.store)
            return votes, rates, comments

        refresh.click(load_dashboard, None, [votes_plot, rate_plot, comments_table], **private)

        def on_load(tok, profile: gr.OAuthProfile | None = None):
            tok, convs = h.init_session(tok, profile)
            return tok, convs, gr.Tab(visible=dashboard.may_view(login, profile))

        demo.load(on_load, [token], [token, conversations, feedback_tab], **private)
    demo.css = CSS
    return demo


def _model_info(spec) -> str:
    desc = spec.description or spec.type
    return f"{desc} · {spec.context_length:,}-token context"
