"""Conversations as the UI sees them, persisted through the Store (the only SQL module).

The server's stored branch is the truth for what the model reads: a client can show what
it likes, but cannot inject fake assistant turns into the prompt or the training data.
Each displayed chat message is paired with the store id it belongs to (`ids`), so a
thumbs-up on bubble i rates the right answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .chat import TurnResult
from .render import assistant_view
from .store import LEAF, NotFound, Store

TITLE_CHARS = 60


@dataclass
class Turn:
    conversation_id: str
    user_message_id: str
    prompt_history: list[dict]  # role/content of the branch before the user message
    new_conversation: bool = False
    assistant_message_id: str | None = None
    ids: list = field(default_factory=list)  # display ids for the branch before this turn


def title_from(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def _view(branch: list[dict]) -> tuple[list[dict], list]:
    """Chat messages and their ids for a stored branch."""
    messages, ids, _ = _view_with_votes(branch)
    return messages, ids


def _view_with_votes(branch: list[dict]) -> tuple[list[dict], list, list]:
    """Also the vote per assistant message, as Gradio's `feedback_value` wants it."""
    messages, ids, votes = [], [], []
    for m in branch:
        if m["role"] == "user":
            messages.append({"role": "user", "content": m["content"]})
            ids.append(m["id"])
        else:
            shown = assistant_view(m["content"], m.get("finish_reason"), m.get("error"),
                                   m.get("sources") or [])
            messages.extend(shown)
            ids.extend([m["id"]] * len(shown))
            label = (m.get("feedback") or {}).get("label")
            votes.extend([{True: "Like", False: "Dislike"}.get(label)] * len(shown))
    return messages, ids, votes


def _prompt(branch: list[dict]) -> list[dict]:
    """What the model reads from a branch: text only; failed empty answers are skipped."""
    return [{"role": m["role"], "content": m["content"]} for m in branch if m["content"]]


class History:
    def __init__(self, store: Store):
        self.store = store

    # -- conversations -------------------------------------------------------------------
    def conversations(self, user_id: str) -> list[tuple[str, str]]:
        return [(c["title"] or "Untitled", c["id"]) for c in self.store.list_conversations(user_id)]

    def load(self, user_id: str, conv_id: str) -> tuple[list[dict], list, list]:
        """(chat messages, store id per message, vote per assistant message)."""
        self.store.get_conversation(user_id, conv_id)
        return _view_with_votes(self.store.branch(user_id, conv_id))

    def answer_position(self, user_id: str, message_id: str | None) -> tuple[int, int]:
        """(1-based position, count) of an answer among its sibling answers."""
        if not message_id:
            return 0, 0
        siblings = self.store.siblings(user_id, message_id)
        ids = [m["id"] for m in siblings]
        return (ids.index(message_id) + 1 if message_id in ids else 0), len(ids)

    def switch_answer(self, user_id: str, conv_id: str, message_id: str, step: int) -> str | None:
        """Show the previous (-1) or next (+1) sibling of an answer; its id, or None at an end."""
        siblings = [m["id"] for m in self.store.siblings(user_id, message_id)]
        i = siblings.index(message_id) + step
        if not 0 <= i < len(siblings):
            return None
        self.store.set_current_leaf(user_id, conv_id, siblings[i], descend=True)
        return siblings[i]

    def rename(self, user_id: str, conv_id: str, title: str) -> None:
        self.store.rename_conversation(user_id, conv_id, title_from(title) or "Untitled")

    def delete(self, user_id: str, conv_id: str) -> None:
        self.store.delete_conversation(user_id, conv_id)

    # -- turns ---------------------------------------------------------------------------
    def start(self, user_id: str, conv_id: str | None, message: str, model: str,
              system_prompt: str) -> Turn:
        """A new user message at the end of the current branch (new conversation if none)."""
        new = False
        if conv_id:
            try:
                self.store.update_conversation(user_id, conv_id, model=model,
                                               system_prompt=system_prompt)
            except NotFound:
                conv_id = None  # not this user's (or deleted): never write into it
        if not conv_id:
            conv_id = self.store.create_conversation(user_id, title_from(message), model,
                                                     system_prompt)
            new = True
        branch = self.store.branch(user_id, conv_id)
        _, ids = _view(branch)
        user_msg = self.store.add_message(user_id, conv_id, "user", message, parent_id=LEAF)
        return Turn(conv_id, user_msg, _prompt(branch), new, ids=ids)

    def _before(self, user_id: str, conv_id: str, user_message_id: str
                ) -> tuple[dict, list[dict], list]:
        """A user message of this conversation, the branch before it, and its display ids."""
        msg = self.store.get_message(user_id, user_message_id)
        if msg["role"] != "user":
            raise NotFound("no such message")
        before = self.store.branch(user_id, conv_id, leaf_id=user_message_id)[:-1]
        return msg, before, _view(before)[1]

    def retry(self, user_id: str, conv_id: str, user_message_id: str) -> Turn:
        """Another answer to an existing user message: a sibling of the previous answers."""
        _, before, ids = self._before(user_id, conv_id, user_message_id)
        self.store.set_current_leaf(user_id, conv_id, user_message_id, descend=False)
        return Turn(conv_id, user_message_id, _prompt(before), ids=ids)

    def edit(self, user_id: str, conv_id: str, user_message_id: str, new_text: str) -> Turn:
        """An edited user message: a sibling of the original under the same parent."""
        old, before, ids = self._before(user_id, conv_id, user_message_id)
        msg = self.store.add_message(user_id, conv_id, "user", new_text,
                                     parent_id=old["parent_id"])
        return Turn(conv_id, msg, _prompt(before), ids=ids)

    def undo(self, user_id: str, conv_id: str, user_message_id: str) -> bool:
        """Move the current branch back before this user message (nothing is deleted).

        Returns False when it was the first message: the caller starts a new conversation
        (the old one stays in the history with its votes)."""
        msg = self.store.get_message(user_id, user_message_id)
        if not msg["parent_id"]:
            return False
        self.store.set_current_leaf(user_id, conv_id, msg["parent_id"], descend=False)
        return True

    def finish(self, user_id: str, turn: Turn, result: TurnResult, model: str,
               backend_type: str) -> str:
        """Store the answer, complete, stopped or failed; the partial text is kept."""
        msg = self.store.add_message(
            user_id, turn.conversation_id, "assistant", result.text,
            parent_id=turn.user_message_id, model=model, backend=backend_type,
            params=result.params, finish_reason=result.finish_reason or "stopped",
            error=result.error, prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens, ttft=result.ttft,
            duration=result.duration, sources=result.sources)
        turn.assistant_message_id = msg
        return msg

    # -- feedback ------------------------------------------------------------------------
    def rate(self, user_id: str, message_id: str, label: bool | None,
             reason: str | None = None, comment: str | None = None) -> None:
        self.store.set_feedback(user_id, message_id, label, reason=reason or None,
                                comment=(comment or "").strip() or None)
