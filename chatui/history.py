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
    # What the chat shows before the answer, rebuilt from the store: the client's copy of
    # the chat is never echoed back (it could carry file parts or text the store never saw).
    shown: list = field(default_factory=list)
    votes: list = field(default_factory=list)
    message: str = ""  # the stored text of the user message being answered
    # The answers-at-once slot this turn already holds (taken by `History.begin`), or None.
    lease_id: str | None = None
    # The conversation holds attachments (documents to search, images to send): the turn
    # looks them up (chatui/attachments/flow.py); without any it skips that trip.
    has_attachments: bool = False


@dataclass
class Versions:
    """Where the branch on screen can switch: the last answer's siblings, and the deepest
    question that was edited (its versions)."""
    answer_pos: int = 0
    answer_count: int = 0
    question_id: str | None = None
    question_pos: int = 0
    question_count: int = 0


def title_from(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def _view_with_votes(branch: list[dict], show_model: bool = False,
                     bubbles: dict[str, str] | None = None) -> tuple[list[dict], list, list]:
    """Also the vote per assistant message, as Gradio's `feedback_value` wants it.

    show_model: start each answer with a line naming the model that wrote it.
    bubbles: user message id -> a bubble showing its attachments, shown above its text (its
    id is "": it is not a message of its own, so it cannot be edited into one)."""
    messages, ids, votes = [], [], []
    for m in branch:
        if m["role"] == "user":
            if bubbles and m["id"] in bubbles:
                messages.append({"role": "user", "content": bubbles[m["id"]]})
                ids.append("")
            messages.append({"role": "user", "content": m["content"]})
            ids.append(m["id"])
        else:
            meta = m.get("meta") or {}
            shown = assistant_view(m["content"], m.get("finish_reason"), m.get("error"),
                                   m.get("sources") or [], meta.get("notices"),
                                   steps=meta.get("steps"),
                                   model=m.get("model") if show_model else None,
                                   reasoning=meta.get("reasoning"),
                                   reasoning_duration=meta.get("reasoning_duration"),
                                   max_new_tokens=(m.get("params") or {}).get("max_new_tokens"))
            messages.extend(shown)
            ids.extend([m["id"]] * len(shown))
            label = (m.get("feedback") or {}).get("label")
            votes.extend([{True: "Like", False: "Dislike"}.get(label)] * len(shown))
    return messages, ids, votes


def versions_of(branch: list[dict]) -> Versions:
    v = Versions()
    if branch and branch[-1]["role"] == "assistant":
        sib = branch[-1].get("sibling_ids") or [branch[-1]["id"]]
        v.answer_pos, v.answer_count = sib.index(branch[-1]["id"]) + 1, len(sib)
    for m in reversed(branch):
        sib = m.get("sibling_ids") or [m["id"]]
        if m["role"] == "user" and len(sib) > 1:
            v.question_id = m["id"]
            v.question_pos, v.question_count = sib.index(m["id"]) + 1, len(sib)
            break
    return v


def _prompt(branch: list[dict]) -> list[dict]:
    """What the model reads from a branch: text only; failed empty answers are skipped."""
    return [{"role": m["role"], "content": m["content"]} for m in branch if m["content"]]


class History:
    def __init__(self, store: Store, show_model: bool = False, stale_after: float = 20.0):
        self.store = store
        # The chat names the model at the top of each answer (display only, like the stop mark).
        self.show_model = show_model
        # An answer whose writer stopped saving it for this long died with its replica.
        self.stale_after = stale_after

    # -- conversations -------------------------------------------------------------------
    def conversations(self, user_id: str) -> list[tuple[str, str]]:
        return [(c["title"] or "Untitled", c["id"]) for c in self.store.list_conversations(user_id)]

    def load(self, user_id: str, conv_id: str) -> tuple[list[dict], list, list]:
        """(chat messages, store id per message, vote per chat message)."""
        self.store.get_conversation(user_id, conv_id)
        self.store.interrupt_stale(conv_id, older_than=self.stale_after)
        return _view_with_votes(self.store.branch(user_id, conv_id), self.show_model,
                                self._bubbles(user_id, conv_id))

    def _bubbles(self, user_id: str, conv_id: str) -> dict[str, str]:
        from .attachments.flow import conversation_bubbles

        return conversation_bubbles(self.store, user_id, conv_id)

    def writing(self, user_id: str, conv_id: str) -> bool:
        """Whether the branch on screen ends in an answer still being written (by any
        replica; one whose writer died stops counting once `load` marks it interrupted)."""
        branch = self.store.branch(user_id, conv_id)
        return bool(branch) and branch[-1]["role"] == "assistant" and (
            branch[-1]["finish_reason"] is None)

    def length(self, user_id: str, conv_id: str) -> int:
        """Messages in the branch on screen (NotFound when not the user's conversation)."""
        return len(self.store.branch(user_id, conv_id))

    def exists(self, user_id: str, conv_id: str) -> bool:
        try:
            self.store.get_conversation(user_id, conv_id)
            return True
        except NotFound:
            return False

    def versions(self, user_id: str, conv_id: str) -> Versions:
        return versions_of(self.store.branch(user_id, conv_id))

    def last_user_message(self, user_id: str, conv_id: str) -> str | None:
        """The question at the end of the branch on screen (what retry answers again)."""
        for m in reversed(self.store.branch(user_id, conv_id)):
            if m["role"] == "user":
                return m["id"]
        return None

    def last_answer(self, user_id: str, conv_id: str) -> dict | None:
        branch = self.store.branch(user_id, conv_id)
        return branch[-1] if branch and branch[-1]["role"] == "assistant" else None

    def switch_answer(self, user_id: str, conv_id: str, message_id: str, step: int) -> str | None:
        """Show the previous (-1) or next (+1) sibling of a message (an answer, or a version of
        an edited question, with what followed it); its id, or None at an end."""
        siblings = [m["id"] for m in self.store.siblings(user_id, message_id)]
        i = siblings.index(message_id) + step
        if not 0 <= i < len(siblings):
            return None
        self.store.set_current_leaf(user_id, conv_id, siblings[i], descend=True)
        self._title_follows_branch(user_id, conv_id, message_id, siblings[i])
        return siblings[i]

    def _title_follows_branch(self, user_id: str, conv_id: str, old_id: str, new_id: str) -> None:
        """Editing the first question, or switching its versions, retitles the chat with the
        first words of the question now on screen, unless the user renamed it: a title of
        the first words or a model-written one follows (the model writes a new one once the
        new question has its answer: titles.py). A title older than its source (None)
        follows only while it is the old question's first words."""
        old, new = self.store.get_message(user_id, old_id), self.store.get_message(user_id, new_id)
        if old["role"] != "user" or old["parent_id"] is not None:
            return
        conv = self.store.get_conversation(user_id, conv_id)
        source = conv.get("title_source")
        if source == "user":
            return
        if source in ("auto", "model") or conv["title"] in ("", title_from(old["content"])):
            self.store.rename_conversation(user_id, conv_id, title_from(new["content"]),
                                           by="auto")

    def rename(self, user_id: str, conv_id: str, title: str) -> None:
        self.store.rename_conversation(user_id, conv_id, title_from(title) or "Untitled",
                                       by="user")

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
        shown, ids, votes = _view_with_votes(branch, self.show_model)
        user_msg = self.store.add_message(user_id, conv_id, "user", message, parent_id=LEAF)
        return Turn(conv_id, user_msg, _prompt(branch), new, ids=ids, shown=shown, votes=votes,
                    message=message)

    def begin(self, user_id: str, conv_id: str | None, message: str, model: str,
              backend_type: str, system_prompt: str, *, missing_ok: bool = True,
              **limits) -> Turn:
        """`start` and `begin_answer` in ONE store transaction, after the per-user `limits`
        (`Store.begin_turn`: `LimitReached`, nothing stored, when one refuses). The turn's
        answer is stored as being written (`turn.assistant_message_id`) and holds the
        answers-at-once lease `turn.lease_id` when the limits ask for one.

        A conversation that is not the user's (or was deleted meanwhile) is replaced by a new
        one when `missing_ok`, as in `start`; otherwise `NotFound`."""
        args = dict(title=title_from(message), model=model, system_prompt=system_prompt,
                    backend=backend_type, **limits)
        try:
            t = self.store.begin_turn(user_id, conv_id, message, **args)
        except NotFound:
            if not conv_id or not missing_ok:
                raise
            t = self.store.begin_turn(user_id, None, message, **args)
        has = bool(t.get("has_attachments"))
        shown, ids, votes = _view_with_votes(
            t["branch"], self.show_model,
            self._bubbles(user_id, t["conversation_id"]) if has and t["branch"] else None)
        return Turn(t["conversation_id"], t["user_message_id"], _prompt(t["branch"]),
                    t["new_conversation"], assistant_message_id=t["assistant_message_id"],
                    ids=ids, shown=shown, votes=votes, message=message,
                    lease_id=t["lease_id"], has_attachments=has)

    def _before(self, user_id: str, conv_id: str, user_message_id: str
                ) -> tuple[dict, list[dict], tuple[list, list, list]]:
        """A user message of this conversation, the branch before it, and its display."""
        msg = self.store.get_message(user_id, user_message_id)
        if msg["role"] != "user" or msg["conversation_id"] != conv_id:
            raise NotFound("no such message")
        before = self.store.branch(user_id, conv_id, leaf_id=user_message_id)[:-1]
        return msg, before, _view_with_votes(before, self.show_model,
                                             self._bubbles(user_id, conv_id))

    def retry(self, user_id: str, conv_id: str, user_message_id: str) -> Turn:
        """Another answer to an existing user message: a sibling of the previous answers.
        The question is the stored one, whatever the client shows."""
        msg, before, (shown, ids, votes) = self._before(user_id, conv_id, user_message_id)
        self.store.set_current_leaf(user_id, conv_id, user_message_id, descend=False)
        return Turn(conv_id, user_message_id, _prompt(before), ids=ids, shown=shown,
                    votes=votes, message=msg["content"],
                    has_attachments=self.store.count_attachments(user_id, conv_id) > 0)

    def edit(self, user_id: str, conv_id: str, user_message_id: str, new_text: str) -> Turn:
        """An edited user message: a sibling of the original under the same parent."""
        old, before, (shown, ids, votes) = self._before(user_id, conv_id, user_message_id)
        msg = self.store.add_message(user_id, conv_id, "user", new_text,
                                     parent_id=old["parent_id"])
        self._title_follows_branch(user_id, conv_id, user_message_id, msg)
        return Turn(conv_id, msg, _prompt(before), ids=ids, shown=shown, votes=votes,
                    message=new_text,
                    has_attachments=self.store.count_attachments(user_id, conv_id) > 0)

    def continue_turn(self, user_id: str, conv_id: str, answer_id: str) -> tuple[Turn, dict]:
        """Generate more of an answer cut at the length limit: (turn, the stored answer)."""
        answer = self.store.get_message(user_id, answer_id)
        if answer["role"] != "assistant" or answer["conversation_id"] != conv_id:
            raise NotFound("no such message")
        user_msg, before, (shown, ids, votes) = self._before(user_id, conv_id,
                                                             answer["parent_id"])
        self.store.set_current_leaf(user_id, conv_id, answer_id, descend=False)
        turn = Turn(conv_id, user_msg["id"], _prompt(before), ids=ids, shown=shown,
                    votes=votes, message=user_msg["content"], assistant_message_id=answer_id)
        return turn, answer

    def undo(self, user_id: str, conv_id: str) -> str | None:
        """Move the current branch back before its last user message; that message's stored
        text (to put back in the input box), or None when there is nothing to undo.

        Undoing the first message empties the chat: the conversation is deleted unless an
        answer in it was rated (votes are training data the user chose to give)."""
        branch = self.store.branch(user_id, conv_id)
        last = next((m for m in reversed(branch) if m["role"] == "user"), None)
        if last is None:
            return None
        if last["parent_id"]:
            self.store.set_current_leaf(user_id, conv_id, last["parent_id"], descend=False)
        elif not any(m.get("feedback") for m in branch):
            self.store.delete_conversation(user_id, conv_id)
        else:
            self.store.set_current_leaf(user_id, conv_id, last["id"], descend=False)
        return last["content"]

    def begin_answer(self, user_id: str, turn: Turn, model: str, backend_type: str,
                     answer: dict | None = None) -> str:
        """The answer exists in the store from its first moment, marked as being written
        (no finish reason); a continued answer goes back to that state."""
        if answer is not None:
            self.store.update_message(user_id, answer["id"], finish_reason=None, error=None)
            return answer["id"]
        msg = self.store.add_message(user_id, turn.conversation_id, "assistant", "",
                                     parent_id=turn.user_message_id, model=model,
                                     backend=backend_type)
        turn.assistant_message_id = msg
        return msg

    def finish(self, user_id: str, turn: Turn, result: TurnResult, model: str,
               backend_type: str) -> str:
        """Store the answer, complete, stopped or failed; the partial text is kept."""
        # Reasoning lives in meta, apart from the answer: `_prompt` reads content only, so
        # the model never gets its old thoughts back.
        meta = {k: v for k, v in (("steps", result.steps), ("notices", result.notices),
                                  ("reasoning", result.reasoning),
                                  ("reasoning_duration", result.reasoning_duration)) if v}
        fields = dict(model=model, backend=backend_type, params=result.params,
                      finish_reason=result.finish_reason or "stopped", error=result.error,
                      prompt_tokens=result.prompt_tokens,
                      completion_tokens=result.completion_tokens, ttft=result.ttft,
                      duration=result.duration, sources=result.sources, meta=meta)
        if turn.assistant_message_id:  # begun by begin_answer
            self.store.update_message(user_id, turn.assistant_message_id, content=result.text,
                                      **fields)
            return turn.assistant_message_id
        msg = self.store.add_message(user_id, turn.conversation_id, "assistant", result.text,
                                     parent_id=turn.user_message_id, **fields)
        turn.assistant_message_id = msg
        return msg

    def finish_continuation(self, user_id: str, answer: dict, result: TurnResult) -> str:
        """Append a continuation to the stored answer: one answer, as if never cut."""
        meta = dict(answer.get("meta") or {})
        meta["continued"] = int(meta.get("continued") or 0) + 1
        tokens = [t for t in (answer.get("completion_tokens"), result.completion_tokens) if t]
        self.store.update_message(
            user_id, answer["id"], content=answer["content"] + result.text,
            finish_reason=result.finish_reason or "stopped", error=result.error,
            completion_tokens=sum(tokens) if tokens else None,
            duration=(answer.get("duration") or 0) + result.duration, meta=meta)
        return answer["id"]

    # -- feedback ------------------------------------------------------------------------
    def rate(self, user_id: str, message_id: str, label: bool | None,
             reason: str | None = None, comment: str | None = None) -> None:
        self.store.set_feedback(user_id, message_id, label, reason=reason or None,
                                comment=(comment or "").strip() or None)
