"""Coalesce a fast stream of UI snapshots so Gradio is not asked to diff every token.

Each yield re-sends a diff of the whole chat, which caps a per-token relay at ~1,400 tok/s.
The first item goes out at once (time-to-first-token is what users feel); later items are
merged into at most one update per `interval`; the last item is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import threading
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")


async def coalesce(source: AsyncIterator[T],
                   interval: float | Callable[[], float] = 0.025) -> AsyncIterator[T]:
    """Yield the newest item from `source` at most once per `interval` seconds.

    `interval` may be a function, read before each update (see `LoadAdaptiveInterval`).

    Items are snapshots (each replaces the previous), so skipping intermediate ones loses
    nothing. A background reader keeps consuming the source, so a pending item is flushed
    when `interval` passes even while the source is idle (a slow model between tokens)."""
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def reader():
        try:
            async for item in source:
                queue.put_nowait(item)
        except BaseException as e:  # surface source errors in the consumer
            queue.put_nowait(_Failure(e))
        finally:
            queue.put_nowait(done)

    def drain(item, state):
        while not queue.empty():
            nxt = queue.get_nowait()
            if nxt is done:
                state["finished"] = True
            elif isinstance(nxt, _Failure):
                state["failure"] = nxt.error
            else:
                item = nxt
        return item

    task = asyncio.create_task(reader())
    last_sent = float("-inf")
    state = {"finished": False, "failure": None}
    nothing = object()
    try:
        while not state["finished"]:
            got = await queue.get()
            if got is done:
                break
            item = nothing
            if isinstance(got, _Failure):
                state["failure"] = got.error
            else:
                item = got
            item = drain(item, state)
            wait = (interval() if callable(interval) else interval) - (
                time.perf_counter() - last_sent)
            if wait > 0 and not state["finished"] and state["failure"] is None:
                await asyncio.sleep(wait)
                item = drain(item, state)
            if item is not nothing:
                last_sent = time.perf_counter()
                yield item
            if state["failure"] is not None:
                raise state["failure"]
    finally:
        if not task.done():
            task.cancel()
            try:
                await task
            except BaseException:
                pass
        # Close the source so backends stop generating (stop button / closed tab).
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except BaseException:
                pass


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class LoadAdaptiveInterval:
    """Update interval that grows with the number of answers streaming at once.

    Each update costs CPU proportional to the whole chat (Gradio diffs it), so with many
    concurrent streams a fixed 25 ms interval saturates the CPU and delays everyone's first
    token. Alone: `base`; beyond `per_core_streams` streams the interval grows linearly,
    up to `cap` (still several updates a second: text keeps flowing)."""

    def __init__(self, base: float = 0.025, cap: float = 0.25, free_streams: int = 4):
        self.base, self.cap, self.free_streams = base, cap, free_streams
        self.active = 0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return min(self.cap, self.base * max(1.0, self.active / self.free_streams))

    def __enter__(self):
        with self._lock:
            self.active += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self.active -= 1


async def until(source: AsyncIterator[T], stop: asyncio.Event) -> AsyncIterator[T]:
    """Items of `source` until `stop` is set; then `source` is interrupted and closed.

    The stop button ends an answer this way, from inside the running event, so the event
    finishes normally with its final update (a Gradio cancel would race with it)."""
    it = source.__aiter__()
    stopped = asyncio.ensure_future(stop.wait())
    nxt: asyncio.Future | None = None
    try:
        while True:
            nxt = asyncio.ensure_future(it.__anext__())
            await asyncio.wait({nxt, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not nxt.done():
                return  # stop: the finally interrupts the pending read
            try:
                item = nxt.result()
            except StopAsyncIteration:
                return
            yield item
            if stop.is_set():
                return
    finally:
        stopped.cancel()
        # Also reached when we are cancelled ourselves (closed tab): the read in flight must
        # not go on generating in the background. Cancelling it lands in the source's pending
        # await, so its own finally (abort the backend, record "stopped") runs now.
        if nxt is not None and not nxt.done():
            nxt.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await nxt
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(RuntimeError):  # already finished by the cancel above
                await aclose()
