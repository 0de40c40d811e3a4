"""Gradio handlers for the user's conversation list: list, open, rename, delete, and their
API twins. A mixin of `Handlers` (handlers.py), which supplies `self.user` (identity from the
browser token or login) and `self.history`; every call is scoped to that user, so one user
can never open, rename or delete another's conversation (History raises NotFound)."""

from __future__ import annotations

import gradio as gr

from .store import NotFound

__all__ = ["LibraryHandlers", "new_session"]


def new_session() -> dict:
    return {"conv": None, "ids": []}


class LibraryHandlers:
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
