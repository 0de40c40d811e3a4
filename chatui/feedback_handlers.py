"""Gradio handlers for thumbs up/down and the reason box, and the `/rate` API twin. A mixin
of `Handlers` (handlers.py), which supplies `self.user` and `self.history`; a vote is stored
only on the voter's own answers (History raises NotFound for anyone else's)."""

from __future__ import annotations

import gradio as gr

from .store import NotFound

__all__ = ["FeedbackHandlers", "REASONS"]

REASONS = ["incorrect", "unhelpful", "unsafe", "other"]


class FeedbackHandlers:
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

    def api_rate(self, message_id: str, vote: str, reason: str, comment: str, token: str) -> str:
        """vote: up | down | none; reason (down only): incorrect | unhelpful | unsafe | other."""
        return self.rate(message_id, vote, reason or None, comment or None, token)
