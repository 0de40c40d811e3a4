"""A short title for a new chat, written by the model after its first answer.

Runs after the answer is stored and shown, so it never delays the answer: in the browser as
its own step chained after the send (ui.py), for API callers (`/chat`) as a background task
the handler starts once the final update is out (`retitle_later`). A chat keeps the title it started with
(its first words, `history.title_from`) unless that is still its title: a title the user
typed (rename) is never replaced, and neither is one written here already. Anything odd
from the model (nothing, an error, a paragraph, markup, a title about nothing in the chat or
about the instructions themselves) falls back to the first words. When the first question is
edited, its new version gets the first words again (History._title_follows_branch) and a new
model-written title once it has its answer.
"""

from __future__ import annotations

import asyncio
import logging
import re

from .history import title_from
from .store import NotFound, StoreError

log = logging.getLogger(__name__)

MAX_TITLE_WORDS = 8
MAX_TITLE_CHARS = 60
PROMPT = ("Write a title of 2 to 6 words for a conversation that starts with the message "
          "below. Answer with the title only: no quotes, no punctuation at the end.")


# Words that carry no subject: a title must share some other word with the chat ("s", "t":
# the ends of "it's", "don't").
STOP_WORDS = frozenset("""
a an the and or but nor of to in on at for from by with without about into over under as
is are was were be been being am do does did doing have has had can could would should will
shall may might must not no yes so if then than that this these those there here it its
i me my mine you your yours he him his she her we us our they them their what which who whom
whose how why when where all any some each every more most much many very too also just only
please tell give show explain write make let want need know like get s t
""".split())
# Words of the title instructions (PROMPT): a small model sometimes answers about the task
# ("No, no quotes here") instead of the chat. Unless the chat itself uses them, such a
# title is refused.
ECHO_WORDS = frozenset("""
title titles quote quotes quoted quotation quotations punctuation conversation message
word words answer summary summaries summarize summarise summarized summarised
""".split())
ECHO_PREFIXES = ("summar", "titl")

_CJK = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")


def _key(word: str) -> str:
    """A word folded for comparison: lower case, a simple plural made singular."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith("es") and w[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def _words(text: str) -> set[str]:
    """The content words of a text (CJK: each character, as those scripts use no spaces)."""
    return {_key(w) for w in _WORD.findall(text or "") if w.lower() not in STOP_WORDS}


def fits_chat(title: str, question: str, answer: str = "") -> bool:
    """Whether a model-written title is about this chat: it shares a content word with the
    first question or the first answer, and does not echo the title instructions."""
    words = _words(title)
    chat = _words(question) | _words(answer)
    echoes = {w for w in words if w in ECHO_WORDS or w.startswith(ECHO_PREFIXES)}
    if echoes - chat:
        return False
    # Equal words, or one word's form of the other (count/counting, explain/explained).
    return any(a == b or (min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)))
               for a in words for b in chat)


def _still_first_words(conv: dict, first: str) -> bool:
    """Whether the chat's title is still its first question's first words, not a user's."""
    return conv["title"] == title_from(first) and conv.get("title_source") != "user"


def clean_title(text: str) -> str | None:
    """The model's reply → a title, or None when it does not look like one."""
    text = re.sub(r"<think>.*?</think>", "", text or "", flags=re.S)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = re.sub(r"^(title\s*:\s*)", "", line, flags=re.I)
    line = line.strip(" \t\"'`*#_“”‘’«»").rstrip(".:;!,")
    line = re.sub(r"[<>\[\]{}|\\]", "", line)
    line = " ".join(line.split())
    if not line or len(line.split()) > MAX_TITLE_WORDS or len(line) > MAX_TITLE_CHARS:
        return None
    return line


async def retitle_after_first_answer(service, store, user_id: str, conv_id: str | None,
                                     model: str | None) -> bool:
    """Give ``conv_id`` a model-written title if it has exactly its first exchange and still
    its automatic title. True when the title changed."""
    if not conv_id:
        return False
    try:  # worker threads: the event loop keeps streaming other users' answers meanwhile
        conv = await asyncio.to_thread(store.get_conversation, user_id, conv_id)
        branch = await asyncio.to_thread(store.branch, user_id, conv_id)
    except (NotFound, StoreError):
        return False
    if len(branch) != 2 or branch[0]["role"] != "user" or branch[1]["finish_reason"] is None:
        return False
    first = branch[0]["content"]
    if not _still_first_words(conv, first):
        return False                          # renamed by the user, or titled already
    backend = service.backend(model or conv["model"])
    params = backend.defaults.merged(max_new_tokens=24, temperature=0.3)
    messages = [{"role": "user", "content": f"{PROMPT}\n\nMessage: {first[:2000]}"}]
    try:
        text = "".join([d.text async for d in backend.stream(messages, params) if d.text])
    except Exception as e:  # noqa: BLE001 - a title is a nicety: never an error for the user
        log.info("title for %s not written: %s", conv_id, e)
        return False
    title = clean_title(text)
    if not title or not fits_chat(title, first, branch[1]["content"]):
        if title:
            log.info("title for %s refused (not about the chat): %r", conv_id, title)
        return False
    try:
        # Re-read: the user may have renamed it while the model was writing.
        now = await asyncio.to_thread(store.get_conversation, user_id, conv_id)
        if not _still_first_words(now, first):
            return False
        await asyncio.to_thread(store.rename_conversation, user_id, conv_id, title, "model")
    except (NotFound, StoreError):
        return False
    return True


# Background titles still running: the loop keeps only weak references to its tasks.
_running: set[asyncio.Task] = set()


def retitle_later(service, store, user_id: str, conv_id: str | None,
                  model: str | None) -> asyncio.Task:
    """Start `retitle_after_first_answer` without waiting for it (the API's `/chat`: its
    caller has its answer already; the title lands a moment later, unless renamed first)."""
    task = asyncio.get_running_loop().create_task(
        retitle_after_first_answer(service, store, user_id, conv_id, model))
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("title task failed: %r", task.exception())
