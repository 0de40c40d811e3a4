"""Remote endpoints through huggingface_hub's AsyncInferenceClient.

`openai`: any OpenAI-compatible chat server (vllm serve, llama.cpp server, Ollama, HF
Inference Providers, TGI's Messages API). `tgi`: TGI; `route: generate` uses TGI's
`/generate_stream` for servers without a chat route (the prompt is rendered with ChatML).

huggingface_hub does not retry 429/503 and reports a refused connection as a raw
transport error, so every failure is mapped here to a sentence a user can act on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

from .base import (ERROR, LENGTH, STOP, Backend, BackendError, Delta, GenerationParams,
                   content_text, continues)
from .spec import ModelSpec

log = logging.getLogger(__name__)
RETRYABLE = {429, 503}


def _class_names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _server_detail(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    try:
        body = response.json()
        detail = body.get("error") or body.get("detail") or body.get("message") or ""
        if isinstance(detail, dict):
            detail = detail.get("message") or str(detail)
        return str(detail)[:300]
    except Exception:
        return ""


def map_error(exc: BaseException, url: str, streamed: bool = False) -> BackendError:
    """Translate client/transport exceptions into one user-facing sentence.

    The sentence never names the endpoint: every user sees it, and an endpoint URL can reveal
    internal hosts. The URL and the raw exception go to the server log instead."""
    log.warning("model server %s: %s: %s", url, type(exc).__name__, exc)
    names = _class_names(exc)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        detail = _server_detail(exc)
        suffix = f": {detail}" if detail else ""
        if status == 429:
            wait = _retry_after(exc)
            hint = f" Try again in {wait:.0f} s." if wait else " Try again in a moment."
            return BackendError(f"The model server is rate-limiting requests (HTTP 429).{hint}",
                                kind="rate_limited", status=status)
        if status in (401, 403):
            return BackendError(
                f"The model server refused the credentials (HTTP {status}). "
                "Set a valid token in the environment (HF_TOKEN or the model's api_key_env).",
                kind="auth", status=status)
        if status == 404:
            return BackendError(f"The model server has no such model or route (HTTP 404)"
                                f"{suffix}", kind="not_found", status=status)
        if status == 413 or (status in (400, 422) and "context" in detail.lower()):
            return BackendError(f"The conversation is too long for this model (HTTP {status}){suffix}",
                                kind="context", status=status)
        if 400 <= status < 500:
            return BackendError(f"The model server rejected the request (HTTP {status}){suffix}",
                                kind="bad_request", status=status)
        return BackendError(f"The model server failed (HTTP {status}){suffix}. Try again later.",
                            kind="server_error", status=status)
    if names & {"InferenceTimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout",
                "PoolTimeout", "TimeoutError"}:
        return BackendError("The model server timed out.", kind="timeout")
    if "ConnectError" in names or "ConnectionRefusedError" in names:
        return BackendError("Cannot reach the model server (connection refused or host "
                            "unknown). Is it running?", kind="unavailable")
    if streamed or names & {"RemoteProtocolError", "ReadError", "StreamError",
                            "ClientPayloadError", "IncompleteRead"}:
        return BackendError("The connection to the model server broke in the middle of the answer.",
                            kind="disconnected")
    return BackendError(f"The model server failed ({type(exc).__name__}). Try again later.")


def _reasoning_field(delta) -> str:
    """Reasoning sent beside the content: `reasoning` (newer vLLM; a declared field of
    huggingface_hub's delta type) or `reasoning_content` (vLLM's parser, llama.cpp's server),
    which the delta type does not declare but keeps, being a dict."""
    for key in ("reasoning", "reasoning_content"):
        value = getattr(delta, key, None)
        if value is None and isinstance(delta, dict):
            value = delta.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def chatml(messages: list[dict]) -> str:
    """Prompt for /generate_stream servers without a chat route."""
    # /generate_stream takes text only: image parts are dropped here (vision needs the chat
    # route), their text kept.
    parts = [f"<|im_start|>{m['role']}\n{content_text(m.get('content'))}<|im_end|>\n"
             for m in messages]
    if continues(messages):  # the partial answer's turn stays open: the model goes on
        return "".join(parts[:-1]) + "<|im_start|>assistant\n" + content_text(
            messages[-1].get("content"))
    return "".join(parts) + "<|im_start|>assistant\n"


# A continuation on the chat route: the partial answer is the last (assistant) message and
# these fields ask the server to render it as an open turn (vLLM's chat route reads them, as
# transformers' apply_chat_template does; llama.cpp's C++ server prefills a final assistant
# message by itself). A server that refuses unknown fields (HTTP 400/422) gets the request
# again without them. One that ignores both (llama-cpp-python's own `llama_cpp.server`,
# checked: it closes the turn and opens a new one) writes a new answer, appended as is.
CONTINUE_FIELDS = {"continue_final_message": True, "add_generation_prompt": False}


class RemoteBackend(Backend):
    def __init__(self, name: str, url: str, *, kind: str = "openai", model_id: str | None = None,
                 token: str | None = None, route: str = "chat", timeout: float = 60.0,
                 context_length: int = 4096, defaults: GenerationParams | None = None,
                 max_retries: int = 1):
        super().__init__(name, context_length, defaults)
        self.type = kind
        self.url = url.rstrip("/")
        self.model_id = model_id
        self.route = route
        self.timeout = timeout
        self.max_retries = max_retries
        self._token = token
        self._pool = None
        self._pool_loop = None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> Backend:
        urls = spec.urls
        if not urls:
            raise BackendError(f"model {spec.name!r}: endpoint_url is required for type {spec.type}",
                               kind="config")
        if len(urls) > 1:  # several servers of one model: least-busy routing + failover
            from .pool import EndpointPool

            return EndpointPool.from_spec(spec)
        return cls(spec.name, urls[0], kind=spec.type, model_id=spec.model_id,
                   token=os.environ.get(spec.api_key_env) or None, route=spec.route,
                   timeout=spec.timeout, context_length=spec.context_length,
                   defaults=spec.parameters.to_params())

    def _http(self):
        """One pooled HTTP client per event loop (keep-alive to the model server).

        huggingface_hub's default session refuses every request when HF_HUB_OFFLINE=1, even
        to a local vLLM/llama.cpp server; that guard is meant for the Hub, so it is kept
        only for Hub URLs."""
        import httpx2
        from huggingface_hub.utils._http import (async_hf_request_event_hook,
                                                 async_hf_response_event_hook)

        loop = asyncio.get_running_loop()
        if self._pool is None or self._pool_loop is not loop or self._pool.is_closed:
            hooks = {"response": [async_hf_response_event_hook]}
            if "huggingface.co" in self.url or "hf.space" in self.url:
                hooks["request"] = [async_hf_request_event_hook]
            self._pool = httpx2.AsyncClient(event_hooks=hooks, follow_redirects=True,
                                            timeout=None)
            self._pool_loop = loop
        return self._pool

    def _client(self):
        """A fresh InferenceClient per request over the pooled connection.

        The client parks each streamed response in its own exit stack and closes it only in
        `close()`: closing our iterator alone would leave the server generating (stop
        button) and leak responses on a long-lived client. So each request gets its own
        client, closed when the stream ends."""
        from huggingface_hub import AsyncInferenceClient

        from .hub_stream import install

        install()  # huggingface_hub's per-token chunk parse, without its overhead
        if self.route == "generate":
            client = AsyncInferenceClient(model=self.url, token=self._token,
                                          timeout=self.timeout)
        else:
            client = AsyncInferenceClient(base_url=self.url, api_key=self._token,
                                          timeout=self.timeout)
        client._async_client = self._http()  # not entered in its exit stack: the pool outlives it
        return client

    async def _open(self, client, messages: list[dict], p: GenerationParams,
                    prefill: bool = True):
        if self.route == "generate":
            # TGI answers 422 to temperature=0 and top_p=1.0 on /generate_stream.
            greedy = p.temperature <= 0
            return await client.text_generation(
                chatml(messages), stream=True, details=True, max_new_tokens=p.max_new_tokens,
                do_sample=not greedy, temperature=None if greedy else p.temperature,
                top_p=p.top_p if 0 < p.top_p < 1 else None,
                repetition_penalty=p.repetition_penalty, stop=p.stop or None, seed=p.seed)
        extra = {"repetition_penalty": p.repetition_penalty} if p.repetition_penalty else {}
        if prefill and continues(messages):
            extra.update(CONTINUE_FIELDS)
        return await client.chat_completion(
            messages, model=self.model_id, stream=True, max_tokens=p.max_new_tokens,
            temperature=p.temperature, top_p=p.top_p, stop=p.stop or None, seed=p.seed,
            stream_options={"include_usage": True}, extra_body=extra or None)

    async def _stream(self, messages, params) -> AsyncIterator[Delta]:
        attempt, prefill = 0, True
        while True:
            client = self._client()
            try:
                stream = await self._open(client, messages, params, prefill)
                break
            except Exception as e:
                await client.close()
                err = map_error(e, self.url)
                if (err.kind == "bad_request" and prefill and continues(messages)
                        and self.route != "generate"):
                    prefill = False  # the server refused CONTINUE_FIELDS: plain messages
                    continue
                if err.status in RETRYABLE and attempt < self.max_retries:
                    attempt += 1
                    wait = _retry_after(e)
                    await asyncio.sleep(min(1.0 if wait is None else wait, 5.0))
                    continue
                raise err from e
        finish, prompt_tokens, completion_tokens, n = None, None, None, 0
        try:
            async for chunk in stream:
                text, reason, reasoning = self._parse(chunk)
                usage = getattr(chunk, "usage", None)
                if usage:
                    prompt_tokens = usage.prompt_tokens
                    completion_tokens = usage.completion_tokens
                details = getattr(chunk, "details", None)
                if details is not None:
                    completion_tokens = details.generated_tokens
                if text or reasoning:
                    n += 1
                    yield Delta(text=text, reasoning=reasoning)
                if reason:
                    finish = LENGTH if reason in ("length", "max_tokens") else STOP
        except Exception as e:
            err = map_error(e, self.url, streamed=n > 0)
            if n == 0:  # nothing shown yet: raised, so a pool (pool.py) can try another server
                raise err from e
            yield Delta(finish_reason=ERROR, error=err.message)
            return
        finally:
            # Closes the HTTP response: the server sees the disconnect and stops generating
            # (stop button / closed tab). Shielded so a cancelled task still closes it.
            try:
                await asyncio.shield(client.close())
            except BaseException:
                pass
        if finish is None:
            # Every well-formed stream ends with a finish_reason; a clean EOF without one
            # means the server died or a proxy cut the response.
            err = map_error(ConnectionError("stream ended early"), self.url, streamed=True)
            if n == 0:
                raise err
            yield Delta(finish_reason=ERROR, error=err.message)
            return
        yield Delta(finish_reason=finish, prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens if completion_tokens is not None else n)

    def _parse(self, chunk) -> tuple[str, str | None, str]:
        """(answer text, finish reason, reasoning from a separate delta field)."""
        if self.route == "generate":
            token = getattr(chunk, "token", None)
            text = "" if token is None or getattr(token, "special", False) else token.text
            details = getattr(chunk, "details", None)
            return text, getattr(details, "finish_reason", None) if details else None, ""
        if not chunk.choices:
            return "", None, ""
        choice = chunk.choices[0]
        delta = choice.delta
        if not delta:
            return "", choice.finish_reason, ""
        return delta.content or "", choice.finish_reason, _reasoning_field(delta)

    async def health(self) -> bool:
        import httpx

        root = self.url[:-3] if self.url.endswith("/v1") else self.url
        try:
            async with httpx.AsyncClient(timeout=3.0) as c:
                for path in ("/health", "/v1/models", "/models"):
                    r = await c.get(root + path)
                    if r.status_code < 400:
                        return True
        except httpx.HTTPError:
            return False
        return False

    def info(self) -> dict:
        return {**super().info(), "url": self.url, "route": self.route, "model_id": self.model_id}

    async def aclose(self) -> None:
        if self._pool is not None and not self._pool.is_closed:
            try:
                await self._pool.aclose()
            except RuntimeError:  # its event loop is gone already
                pass
        self._pool = None
