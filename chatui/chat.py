"""One chat turn: history → (web search) → prompt → stream → result.

Gradio-free on purpose: `ChatService.respond` yields *snapshots* of the assistant side of
the turn as plain message dicts (Gradio's messages format, incl. `metadata` for progress
steps), so it is testable without a browser and the UI only renders what it gets.
Persistence happens through the optional `recorder` (see chatui/history.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from backends import ERROR, STOPPED, Backend, Delta, GenerationParams

from .context import ContextOverflow, fit_messages
from .render import ERROR_PREFIX, STOPPED_MARK, assistant_view, error_bubble, thinking_step


@dataclass
class TurnRequest:
    message: str
    history: list[dict]  # earlier turns, role/content only, no system message
    model: str
    system_prompt: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    web_search: bool = False
    # Continue: the answer so far, cut at the length limit; the model writes what follows.
    prefix: str = ""
    # Attachments: this message's images as OpenAI image_url content parts (vision models
    # only, checked before the turn), and the conversation's documents (DocIndex), searched
    # again at every question.
    images: list[dict] = field(default_factory=list)
    documents: list = field(default_factory=list)


@dataclass
class TurnResult:
    text: str = ""
    finish_reason: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft: float | None = None
    duration: float = 0.0
    params: dict = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # shown under the answer
    steps: list[dict] = field(default_factory=list)  # finished progress steps (web search…)
    # The model's thinking, kept apart from `text` (never sent back to the model).
    reasoning: str = ""
    reasoning_duration: float | None = None  # seconds from first thought to answer (or end)


def step_message(title: str, status: str = "pending", duration: float | None = None,
                 log: str | None = None, content: str = "") -> dict:
    meta: dict[str, Any] = {"title": title, "status": status}
    if duration is not None:
        meta["duration"] = round(duration, 2)
    if log:
        meta["log"] = log
    return {"role": "assistant", "content": content, "metadata": meta}


def clean_history(history: list[Any]) -> list[dict]:
    """Keep only real user/assistant turns: drop progress steps, errors, notices."""
    out = []
    for m in history:
        if not isinstance(m, dict):
            m = {"role": getattr(m, "role", None), "content": getattr(m, "content", ""),
                 "metadata": getattr(m, "metadata", None)}
        if m.get("role") not in ("user", "assistant") or (m.get("metadata") or {}).get("title"):
            continue
        content = m.get("content")
        if isinstance(content, list):  # gradio normalised form: [{"type": "text", "text": …}]
            content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
        if not isinstance(content, str) or not content.strip():
            continue
        if m["role"] == "assistant" and content.startswith(ERROR_PREFIX):
            continue
        if m["role"] == "assistant" and content.endswith(STOPPED_MARK):
            content = content[: -len(STOPPED_MARK)].rstrip()
        if out and out[-1]["role"] == m["role"] == "assistant":
            out[-1]["content"] += "\n\n" + content  # grouped bubbles of one answer
            continue
        out.append({"role": m["role"], "content": content})
    return out


class ChatService:
    """Owns the backends; runs turns. One instance per app, shared by all sessions."""

    def __init__(self, settings, backends: dict[str, Backend], search_provider=None):
        self.settings = settings
        self.backends = backends
        # None: the provider named in settings.websearch (ddgs or searxng).
        self.search_provider = search_provider

    def backend(self, name: str | None) -> Backend:
        return self.backends.get(name or "") or self.backends[self.settings.default_model]

    def params_for(self, req: TurnRequest, backend: Backend) -> GenerationParams:
        params = backend.defaults.merged(temperature=req.temperature, top_p=req.top_p,
                                         max_new_tokens=req.max_new_tokens)
        if params.seed is None:
            # Backends seed their samplers identically in every process (llama.cpp does):
            # without a fresh seed the same question gets the same answer after each restart.
            # The seed is stored with the answer, so an answer can be reproduced.
            params = params.merged(seed=secrets.randbelow(2**31 - 1))
        return params

    async def respond(self, req: TurnRequest, result: TurnResult | None = None
                      ) -> AsyncIterator[list[dict]]:
        """Yield snapshots of the assistant messages for this turn; fill `result` as it goes.

        If the consumer stops early (stop button, generation timeout, shutdown),
        `result.finish_reason` becomes "stopped" and keeps the partial text."""
        result = result if result is not None else TurnResult()
        backend = self.backend(req.model)
        params = self.params_for(req, backend)
        result.params = _params_record(params)
        started = time.perf_counter()
        steps: list[dict] = []
        thinking = _Thinking(result)
        system_text = req.system_prompt
        try:
            doc_sources: list[dict] = []
            if req.documents:
                from .attachments.turn import search_step

                step, doc_sources, doc_context = await search_step(
                    req.documents, req.message, self.settings.attachments,
                    backend.context_length)
                steps.append(step)
                result.sources = list(doc_sources)
                system_text = "\n\n".join(t for t in (system_text, doc_context) if t)
                yield list(steps)
            if req.web_search and self.settings.websearch.enabled:
                async for item in self._web_search(req, backend):
                    if isinstance(item, dict):  # a progress step (new or updated)
                        _upsert_step(steps, item)
                        yield list(steps)
                    else:  # the final WebSearchResult
                        web = [_source_dict(s) for s in item.sources]
                        if doc_sources and web:  # one numbering: documents, then the web
                            from .attachments.turn import number_after
                            from .websearch.context import build_context

                            web = number_after(web, len(doc_sources))
                            item.context = build_context(item.query, web)
                        result.sources = doc_sources + web
                        if item.notice:
                            result.notices.append(item.notice)
                        if item.context:
                            # One system message: several break many chat templates.
                            system_text = "\n\n".join(t for t in (system_text, item.context) if t)
            system = [{"role": "system", "content": system_text}] if system_text else []
            content = req.message
            if req.images:
                from .attachments.turn import user_content

                content = user_content(req.message, req.images)
            messages = system + req.history + [{"role": "user", "content": content}]
            if req.prefix:
                # Continue: the partial answer ends the prompt as an open assistant turn
                # (backends/base.py), so the model writes its next words, not a new answer
                # (asked in a new user turn, small models started over: "…and theThe…").
                # The new text is appended as it comes: its leading space is the join.
                messages += [{"role": "assistant", "content": req.prefix}]
            try:
                fitted = fit_messages(messages, backend.context_length, params.max_new_tokens,
                                      backend.count_tokens)
            except ContextOverflow as e:
                result.finish_reason, result.error = ERROR, str(e)
                yield steps + [error_bubble(str(e))]
                return
            if fitted.dropped:
                note = (f"Earlier messages ({fitted.dropped}) were left out so the conversation "
                        f"fits the model's {backend.context_length}-token context.")
                steps.append(step_message("Trimmed history", "done", log=note))
            if fitted.max_new_tokens != params.max_new_tokens:
                params = params.merged(max_new_tokens=fitted.max_new_tokens)
            result.params = _params_record(params)  # what was used, after fitting
            # Steps collapse once the answer starts (gradio renders "done" steps folded).
            steps = [dict(s, metadata={**s["metadata"], "status": "done"}) for s in steps]
            delta: Delta
            async for delta in backend.stream(fitted.messages, params):
                if delta.reasoning:
                    # Thoughts stream into an open "Thinking" step above the answer.
                    thinking.add(delta.reasoning)
                    if not delta.text:
                        yield steps + [thinking.step("pending")]
                if delta.text:
                    if result.ttft is None:
                        result.ttft = time.perf_counter() - started
                    thinking.end()  # the answer starts: the step folds, with its duration
                    result.text += delta.text
                    yield steps + thinking.done() + [
                        {"role": "assistant", "content": req.prefix + result.text}]
                if delta.is_final:
                    result.finish_reason = delta.finish_reason
                    result.error = delta.error
                    result.prompt_tokens = delta.prompt_tokens or fitted.prompt_tokens
                    result.completion_tokens = delta.completion_tokens
            thinking.end()
            yield assistant_view(req.prefix + result.text, result.finish_reason, result.error,
                                 result.sources, result.notices, steps=steps,
                                 reasoning=result.reasoning,
                                 reasoning_duration=result.reasoning_duration,
                                 max_new_tokens=params.max_new_tokens)
        finally:
            # No final delta: the consumer stopped us (stop button, timeout, shutdown).
            if result.finish_reason is None:
                result.finish_reason = STOPPED
            thinking.end()  # stopped while thinking: what was thought is kept, timed
            result.steps = [dict(s, metadata={**s["metadata"], "status": "done"})
                            for s in steps]
            result.duration = time.perf_counter() - started


    async def _web_search(self, req: TurnRequest, backend: Backend):
        """Progress steps as chat message dicts, then the WebSearchResult."""
        from .websearch import Step, run_websearch

        async def write_query(messages: list[dict]) -> str:
            params = backend.defaults.merged(max_new_tokens=32, temperature=0.2)
            return "".join([d.text async for d in backend.stream(messages, params) if d.text])

        ws = self.settings.websearch
        chars = int(backend.context_length * ws.context_fraction * 3)
        async for ev in run_websearch(req.message, req.history, ws, generate=write_query,
                                      provider=self.search_provider, context_chars=chars):
            if isinstance(ev, Step):
                yield {"role": "assistant", "content": ev.log or "", "metadata": ev.metadata()}
            else:
                yield ev


class _Thinking:
    """The reasoning of one turn as it streams: text, timing and its chat step."""

    def __init__(self, result: TurnResult):
        self.result = result
        self.started: float | None = None

    def add(self, text: str) -> None:
        if self.started is None:
            self.started = time.perf_counter()
        self.result.reasoning += text

    def end(self) -> None:
        """Thinking is over (the answer started, the stream ended or was stopped)."""
        if self.started is not None and self.result.reasoning_duration is None:
            self.result.reasoning_duration = time.perf_counter() - self.started

    def step(self, status: str) -> dict:
        return thinking_step(self.result.reasoning, status, self.result.reasoning_duration)

    def done(self) -> list[dict]:
        return [self.step("done")] if self.result.reasoning else []


def _params_record(params: GenerationParams) -> dict:
    """The sampling parameters stored with an answer (and carried into exports)."""
    return {"temperature": params.temperature, "top_p": params.top_p,
            "max_new_tokens": params.max_new_tokens,
            "repetition_penalty": params.repetition_penalty, "seed": params.seed}


def _upsert_step(steps: list[dict], step: dict) -> None:
    key = step.get("metadata", {}).get("id")
    for i, s in enumerate(steps):
        if key is not None and s.get("metadata", {}).get("id") == key:
            steps[i] = step
            return
    steps.append(step)


def _source_dict(source: Any) -> dict:
    from dataclasses import asdict, is_dataclass

    return asdict(source) if is_dataclass(source) else dict(source)
