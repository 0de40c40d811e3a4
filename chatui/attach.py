"""The message path's attachment steps, Gradio side (handlers.py stays small): refusals as
`gr.Error`, the work in worker threads. The rules themselves live in chatui/attachments/."""

from __future__ import annotations

import asyncio

import gradio as gr

from .attachments import AttachmentError
from .attachments.flow import NEEDS_TEXT, Attachments, TurnFiles, store_items
from .store.attachments import AttachmentLimit

__all__ = ["FileSteps"]


class FileSteps:
    def __init__(self, settings, store):
        self.settings = settings
        self.files = Attachments(settings.attachments, store)

    def vision(self, model: str) -> bool:
        try:
            return bool(self.settings.model(model).vision)
        except KeyError:
            return False

    def check(self, files: list, model: str, text: str) -> list[dict]:
        """The store items for a message's files; gr.Error with the one-line reason."""
        if not isinstance(files, list) or not all(
                isinstance(f, dict | str) for f in files):
            raise gr.Error("Files must be a list of uploaded files.", title="Invalid file")
        if not text:
            raise gr.Error(NEEDS_TEXT, title="Question missing")
        try:
            return store_items(self.files.check(files, vision=self.vision(model), model=model))
        except AttachmentError as e:
            raise gr.Error(str(e), title="File refused") from None

    async def begin_args(self, files: list | None, model: str, text: str) -> dict:
        """Extra arguments of `History.begin` for a message sent with files ({} without)."""
        if not files:
            return {}
        items = await asyncio.to_thread(self.check, files, model, text)
        return {"attachments": items,
                "max_documents": self.settings.attachments.max_documents_per_conversation}

    @staticmethod
    def refusal(e: AttachmentLimit) -> gr.Error:
        return gr.Error(str(e), title="Too many documents")

    async def for_turn(self, user_id: str, turn, model: str) -> TurnFiles:
        if not turn.has_attachments:
            return TurnFiles()
        # The turn's display ids hold the user message ids of the branch before it.
        branch = {i for i in turn.ids if i} | {turn.user_message_id}
        return await asyncio.to_thread(self.files.for_turn, user_id, turn.conversation_id,
                                       turn.user_message_id, self.vision(model), branch)
