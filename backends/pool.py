"""Several servers of one model behind one backend: least-busy routing and failover.

`EndpointPool` holds one `RemoteBackend` per URL in `endpoint_urls`. Each request goes to the
healthy endpoint with the fewest requests in flight (ties: round robin). A server that fails
*before the first token* (refused connection, 5xx, 429, timeout, a stream cut before any
text) is marked down and the request moves on to the next one, so the user only ever sees
the answer. Once text has been shown a failure cannot be undone by retrying elsewhere: that
answer ends with the usual clear error and keeps its partial text.

A server marked down is skipped until a background probe (its `health()`, every
`health_interval` seconds) finds it answering again. The probe starts lazily on the event
loop that serves requests and is cancelled by `aclose()`.

Users never see a URL (it can reveal internal hosts); URLs go to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .base import ERROR, Backend, BackendError, Delta, GenerationParams
from .remote import RemoteBackend
from .spec import ModelSpec

log = logging.getLogger(__name__)

# Failures caused by the request itself: every server would answer the same, so trying the
# next one only delays the message (bad token, unknown model, prompt too long...).
REQUEST_ERRORS = {"auth", "not_found", "bad_request", "context", "config"}


@dataclass
class Endpoint:
    backend: RemoteBackend
    index: int
    healthy: bool = True
    in_flight: int = 0
    attempts: int = 0  # requests sent to it
    served: int = 0  # answers it streamed (first token reached the user)
    failures: int = 0
    down_since: float | None = None

    @property
    def url(self) -> str:
        return self.backend.url

    def stats(self) -> dict:
        """Counters for operators and tests; no URL (callers may show this to users)."""
        return {"index": self.index, "healthy": self.healthy, "in_flight": self.in_flight,
                "attempts": self.attempts, "served": self.served, "failures": self.failures}


class EndpointPool(Backend):
    def __init__(self, name: str, members: list[RemoteBackend], *, health_interval: float = 5.0,
                 context_length: int = 4096, defaults: GenerationParams | None = None):
        super().__init__(name, context_length, defaults)
        if not members:
            raise BackendError(f"model {name!r}: no endpoints", kind="config")
        self.type = members[0].type
        self.endpoints = [Endpoint(m, i) for i, m in enumerate(members)]
        self.health_interval = health_interval
        self._rr = 0
        self._probe: asyncio.Task | None = None
        self._probe_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> EndpointPool:
        import os

        token = os.environ.get(spec.api_key_env) or None
        # max_retries=0: a 429/503 moves on to the next server at once instead of sleeping
        # on the same one.
        members = [RemoteBackend(spec.name, url, kind=spec.type, model_id=spec.model_id,
                                 token=token, route=spec.route, timeout=spec.timeout,
                                 context_length=spec.context_length,
                                 defaults=spec.parameters.to_params(), max_retries=0)
                   for url in spec.urls]
        return cls(spec.name, members, health_interval=spec.health_interval,
                   context_length=spec.context_length, defaults=spec.parameters.to_params())

    # -- routing -----------------------------------------------------------------------

    def _order(self) -> list[Endpoint]:
        """Healthy endpoints, least busy first (ties rotate), then the ones marked down
        (longest down first) as a last resort: a mark can be stale, and trying a refused
        port costs milliseconds."""
        n = len(self.endpoints)
        start = self._rr
        self._rr = (self._rr + 1) % n
        rotation = lambda e: (e.index - start) % n  # noqa: E731
        up = sorted((e for e in self.endpoints if e.healthy),
                    key=lambda e: (e.in_flight, rotation(e)))
        down = sorted((e for e in self.endpoints if not e.healthy),
                      key=lambda e: (e.down_since or 0.0, rotation(e)))
        return up + down

    def _mark_down(self, ep: Endpoint, why: str) -> None:
        ep.failures += 1
        if ep.healthy:
            ep.healthy = False
            ep.down_since = time.monotonic()
            log.warning("model %s: server %s marked down (%s)", self.name, ep.url, why)

    def _mark_up(self, ep: Endpoint, why: str) -> None:
        if not ep.healthy:
            ep.healthy = True
            ep.down_since = None
            log.warning("model %s: server %s is back (%s)", self.name, ep.url, why)

    def _all_failed(self, kinds: list[str]) -> BackendError:
        n = len(self.endpoints)
        if kinds and all(k == "rate_limited" for k in kinds):
            return BackendError(f"All {n} servers for this model are rate-limiting requests "
                                "(HTTP 429). Try again in a moment.", kind="rate_limited")
        return BackendError(f"All {n} servers for this model are unreachable right now. "
                            "Try again in a moment.", kind="unavailable")

    async def _stream(self, messages: list[dict], params: GenerationParams
                      ) -> AsyncIterator[Delta]:
        self._ensure_probe()
        kinds: list[str] = []
        for ep in self._order():
            ep.attempts += 1
            ep.in_flight += 1
            shown = False
            try:
                # aclosing: the stop button closes this generator, which must close the
                # member's HTTP response at once so the server stops generating.
                async with contextlib.aclosing(ep.backend._stream(messages, params)) as deltas:
                    async for delta in deltas:
                        if not shown and delta.finish_reason == ERROR:
                            # An error before any text is a failure before the first token.
                            raise BackendError(delta.error or "error", kind="error")
                        if not shown and (delta.text or delta.reasoning or delta.is_final):
                            shown = True
                            ep.served += 1
                            self._mark_up(ep, "answered")
                        if delta.finish_reason == ERROR:
                            # After text the answer cannot move elsewhere: the member's
                            # message ("broke in the middle…") ends it, partial text kept.
                            self._mark_down(ep, delta.error or "error mid-answer")
                        yield delta
                        if delta.is_final:
                            return
                return  # a member that ends without a final delta: Backend.stream adds STOP
            except BackendError as e:
                if shown or e.kind in REQUEST_ERRORS:
                    raise
                # Nothing reached the user yet: try the next server, quietly.
                kinds.append(e.kind)
                self._mark_down(ep, f"{e.kind}: {e.message}")
            finally:
                ep.in_flight -= 1
        raise self._all_failed(kinds)

    # -- health ------------------------------------------------------------------------

    def _ensure_probe(self) -> None:
        """Start the background probe on the loop that serves requests (lazily: there is
        no loop when the app builds its backends)."""
        loop = asyncio.get_running_loop()
        if self._probe is not None and not self._probe.done() and self._probe_loop is loop:
            return
        self._cancel_probe()
        self._probe_loop = loop
        self._probe = loop.create_task(self._probe_forever(), name=f"probe-{self.name}")

    def _cancel_probe(self) -> None:
        task, loop = self._probe, self._probe_loop
        self._probe = self._probe_loop = None
        if task is None or task.done():
            return
        try:
            if loop is asyncio.get_running_loop():
                task.cancel()
                return
        except RuntimeError:
            pass
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            down = [e for e in self.endpoints if not e.healthy]
            if not down:
                continue
            results = await asyncio.gather(*(e.backend.health() for e in down),
                                           return_exceptions=True)
            for ep, ok in zip(down, results):
                if ok is True:
                    self._mark_up(ep, "health check passed")

    async def health(self) -> bool:
        """True when any server answers its health check. A failed check does not mark a
        server down (some servers lack the probed routes); only real requests do."""
        self._ensure_probe()
        results = await asyncio.gather(*(e.backend.health() for e in self.endpoints),
                                       return_exceptions=True)
        for ep, ok in zip(self.endpoints, results):
            if ok is True:
                self._mark_up(ep, "health check passed")
        return any(ok is True for ok in results)

    def endpoint_stats(self) -> list[dict]:
        return [e.stats() for e in self.endpoints]

    def info(self) -> dict:
        return {**super().info(), "endpoints": len(self.endpoints),
                "healthy_endpoints": sum(e.healthy for e in self.endpoints)}

    async def aclose(self) -> None:
        task = self._probe
        self._cancel_probe()
        if task is not None:
            with contextlib.suppress(BaseException):
                if task.get_loop() is asyncio.get_running_loop():
                    await task
        for ep in self.endpoints:
            await ep.backend.aclose()
