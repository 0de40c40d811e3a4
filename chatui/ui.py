"""Layout and event wiring only. Turn logic: chat.py; handlers: handlers.py."""

from __future__ import annotations

import gradio as gr

from .chat import ChatService
from .handlers import Handlers

LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
]

CSS = """
#chatbot { flex-grow: 1; }
#model-info { font-size: 0.85em; opacity: 0.8; }
footer { display: none !important; }
"""


def build_ui(service: ChatService) -> gr.Blocks:
    settings = service.settings
    h = Handlers(service)
    default = settings.model(None)
    model_names = [m.name for m in settings.models]

    with gr.Blocks(title=settings.space.title, fill_height=True) as demo:
        with gr.Sidebar(open=True):
            gr.Markdown(f"## {settings.space.emoji} {settings.space.title}")
            new_chat = gr.Button("➕ New chat", variant="primary")
            with gr.Accordion("⚙️ Settings", open=False):
                system_prompt = gr.Textbox(default.system_prompt, label="System prompt", lines=3)
                temperature = gr.Slider(0.0, 2.0, default.parameters.temperature, step=0.05,
                                        label="Temperature")
                top_p = gr.Slider(0.05, 1.0, default.parameters.top_p, step=0.05, label="Top-p")
                max_new_tokens = gr.Slider(16, 4096, default.parameters.max_new_tokens, step=16,
                                           label="Max new tokens")
        with gr.Row():
            model = gr.Dropdown(model_names, value=default.name, label="Model", scale=3)
            model_info = gr.Markdown(_model_info(default), elem_id="model-info")
        chatbot = gr.Chatbot(
            elem_id="chatbot", label="Chat", show_label=False, height="70vh",
            latex_delimiters=LATEX, sanitize_html=True, render_markdown=True,
            editable="user", buttons=["copy", "copy_all"],
            placeholder=f"**{settings.space.title}** — ask anything. Answers stream from "
                        f"the model you pick above.")
        with gr.Row(equal_height=True):
            web_search = gr.Checkbox(False, label="🌐 Search the web", scale=0, min_width=170,
                                     visible=settings.websearch.enabled)
            textbox = gr.Textbox(placeholder="Ask anything…", show_label=False, lines=1,
                                 max_lines=8, autofocus=True, submit_btn=True, stop_btn=False,
                                 scale=8, elem_id="input")

        gen_inputs = [chatbot, model, system_prompt, temperature, top_p, max_new_tokens,
                      web_search]

        def busy():
            return gr.Textbox(value="", submit_btn=False, stop_btn=True)

        def idle():
            return gr.Textbox(submit_btn=True, stop_btn=False, interactive=True)

        private = {"api_visibility": "private", "queue": False}
        # Browser path: validate first (a refused message stays in the box), then move the
        # text out of the box and generate.
        pending = gr.State("")
        ui_event = (textbox.submit(h.check_message, [textbox], None, **private)
                    .success(lambda m: (m, busy()), [textbox], [pending, textbox], **private)
                    .success(h.chat, [pending, *gen_inputs], [chatbot], show_progress="hidden",
                             api_name="chat_ui", api_visibility="private"))
        # The named endpoint for gradio_client and bench/: one event, one round trip.
        api_button = gr.Button(visible=False)
        api_event = api_button.click(h.chat, [textbox, *gen_inputs], [chatbot],
                                     api_name="chat", show_progress="hidden")
        retry_event = chatbot.retry(h.retry, gen_inputs, [chatbot], api_name="retry",
                                    show_progress="hidden")
        chatbot.retry(busy, None, [textbox], **private)
        edit_event = chatbot.edit(h.edit, gen_inputs, [chatbot], api_name="edit_ui",
                                  api_visibility="private", show_progress="hidden")
        chatbot.edit(busy, None, [textbox], **private)
        generating = [ui_event, api_event, retry_event, edit_event]
        for event in generating:
            event.then(idle, None, [textbox], **private)
        textbox.stop(h.mark_stopped, [chatbot], [chatbot], cancels=generating, **private
                     ).then(idle, None, [textbox], **private)
        chatbot.undo(h.undo, [chatbot], [chatbot, textbox], **private)
        new_chat.click(lambda: ([], ""), None, [chatbot, textbox], cancels=generating,
                       **private)
        chatbot.clear(lambda: [], None, [chatbot], **private)

        def on_model(name):
            spec = settings.model(name)
            p = spec.parameters
            return (_model_info(spec), spec.system_prompt, p.temperature, p.top_p,
                    p.max_new_tokens)

        model.change(on_model, [model], [model_info, system_prompt, temperature, top_p,
                                         max_new_tokens], **private)
    demo.css = CSS
    return demo


def _model_info(spec) -> str:
    desc = spec.description or spec.type
    return f"{desc} · {spec.context_length:,}-token context"
