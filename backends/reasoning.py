"""Reasoning ("thinking") split from the answer, for every backend alike.

Models that think first send their reasoning one of two ways:

* inline, at the start of the text: ``<think>…</think>answer`` (the tag names depend on the
  model: ModelSpec ``reasoning_tags``). The tags arrive in pieces — a server may send
  ``"<th"`` and ``"ink>"`` as two chunks — so the split is incremental: text that could still
  become a tag is held back until the next chunk decides, and nothing else is delayed.
* in a separate delta field (OpenAI-compatible servers with a reasoning parser: vLLM's
  ``reasoning_content`` / ``reasoning``, llama.cpp's server): the backend puts it in
  ``Delta.reasoning`` and the text is the answer already.

`ThinkSplitter` handles the first form; `split_reasoning` applies it to a Delta stream and
passes the second form through, so callers only ever see `Delta.text` (answer) and
`Delta.reasoning` (thinking). Only a tag at the very start counts: a model that writes
``<think>`` in the middle of an answer is quoting it, not thinking.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from .base import Delta

DEFAULT_TAGS: tuple[str, str] = ("<think>", "</think>")

_START, _THINKING, _ANSWER = "start", "thinking", "answer"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of `tag`."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkSplitter:
    """Incremental splitter: `feed(chunk)` → (reasoning, answer) ready now; `flush()` at the end.

    Leading whitespace before the open tag and between the close tag and the answer is
    dropped (templates put newlines there; they are not part of either)."""

    def __init__(self, open_tag: str = DEFAULT_TAGS[0], close_tag: str = DEFAULT_TAGS[1]):
        if not open_tag or not close_tag:
            raise ValueError("reasoning tags must be non-empty")
        self.open_tag, self.close_tag = open_tag, close_tag
        self.state = _START
        self._buf = ""  # held back: may still become a tag
        self._answer_started = False
        self.closed = False  # the close tag was seen (thinking ended normally)

    @property
    def thinking(self) -> bool:
        return self.state == _THINKING

    def feed(self, chunk: str) -> tuple[str, str]:
        reasoning, answer = [], []
        self._buf += chunk
        while self._buf:
            if self.state == _START:
                head = self._buf.lstrip()
                if not head or (len(head) < len(self.open_tag)
                                and self.open_tag.startswith(head)):
                    break  # whitespace or a piece of the open tag: wait for more
                if head.startswith(self.open_tag):
                    self.state, self._buf = _THINKING, head[len(self.open_tag):]
                else:
                    self.state = _ANSWER  # no tag: everything is answer, untouched
            elif self.state == _THINKING:
                i = self._buf.find(self.close_tag)
                if i >= 0:
                    reasoning.append(self._buf[:i])
                    self.state, self.closed = _ANSWER, True
                    self._buf = self._buf[i + len(self.close_tag):]
                    continue
                keep = _partial_suffix(self._buf, self.close_tag)
                reasoning.append(self._buf[:len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep:]
                break
            else:
                text = self._buf
                if not self._answer_started and self.closed:
                    text = text.lstrip()
                    if not text:
                        self._buf = ""
                        break
                self._answer_started = True
                answer.append(text)
                self._buf = ""
        return "".join(reasoning), "".join(answer)

    def flush(self) -> tuple[str, str]:
        """What is still held back when the stream ends (an unclosed tag piece, or text)."""
        buf, self._buf = self._buf, ""
        if self.state == _THINKING:
            return buf, ""  # thinking cut off (length limit, stop): it was still reasoning
        if self.state == _START:
            return "", buf  # a lone "<thi" or whitespace: it was answer after all
        return "", buf


def make_splitter(tags: Sequence[str] | None) -> ThinkSplitter | None:
    """A splitter for these (open, close) tags; None turns inline parsing off."""
    if not tags:
        return None
    return ThinkSplitter(tags[0], tags[1])


async def split_reasoning(deltas: AsyncIterator[Delta], tags: Sequence[str] | None
                          ) -> AsyncIterator[Delta]:
    """The same stream with inline reasoning moved from `text` to `reasoning`.

    Deltas that already carry `reasoning` (a server's separate field) keep it; their text is
    parsed like any other, so a server mixing both forms still comes out right."""
    splitter = make_splitter(tags)
    final_seen = thought = answered = False
    # aclosing: closing this stream (stop button) closes the backend's at once, so its
    # abort runs now and not when the garbage collector finds it.
    async with contextlib.aclosing(deltas) as inner:
        async for delta in inner:
            final_seen = final_seen or delta.is_final
            if splitter is None:
                reasoning, answer = "", delta.text
            else:
                reasoning, answer = splitter.feed(delta.text) if delta.text else ("", "")
                if delta.is_final:
                    r, a = splitter.flush()
                    reasoning, answer = reasoning + r, answer + a
            reasoning = delta.reasoning + reasoning
            thought = thought or bool(reasoning)
            if thought and not answered:
                # Servers put "\n\n" between the reasoning field and the answer: not answer.
                answer = answer.lstrip()
            answered = answered or bool(answer)
            if reasoning or answer or delta.is_final:
                yield replace(delta, text=answer, reasoning=reasoning)
    if splitter is not None and not final_seen:  # ended without a final delta
        reasoning, answer = splitter.flush()
        if reasoning or answer:
            yield Delta(text=answer, reasoning=reasoning)
