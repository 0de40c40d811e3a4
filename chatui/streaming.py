"""Streams of UI snapshots: coalesced (`coalesce`), stoppable (`until`), and run apart from
the Gradio event that shows them (`outlive`).

Each yield re-sends a diff of the whole chat, which caps a per-token relay at ~1,400 tok/s.
The first item goes out at once (time-to-first-token is what users feel); later items are
merged into at most one update per `interval`; the last item is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import threading
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


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

    The stop button ends an answer this way, from inside, so the event showing it
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
        # Also reached when we are cancelled ourselves (the generation timeout, a server
        # shutdown): the read in flight must not go on generating in the background.
        # Cancelling it lands in the source's pending await, so its own finally (abort the
        # backend, record "stopped") runs now.
        if nxt is not None and not nxt.done():
            nxt.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await nxt
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(RuntimeError):  # already finished by the cancel above
                await aclose()


async def outlive(source: AsyncIterator[T], tasks: set[asyncio.Task]) -> AsyncIterator[T]:
    """The items of `source`, which a task of its own runs to its end: leaving this relay
    (cancelled or closed) does not end the source.

    Gradio cancels an event when its tab reloads or closes (or another event names it in
    `cancels=`). An answer must not end with the tab, as users expect and as the README
    promises: the model goes on writing, the store keeps the text as it grows (heartbeats),
    and a page that opens the conversation follows it to its end (Sidebar.watch). So the
    source (generate, then store) runs in a task that only its own stop event, its timeout
    or a server shutdown ends; the event merely relays what it yields while it is there.

    `tasks` keeps the running tasks referenced (the event loop holds only weak references,
    and a collected task would vanish mid-answer); each leaves the set when it ends."""
    queue: asyncio.Queue = asyncio.Queue()
    done = object()
    relay = {"watched": True}  # off once the event is gone: nothing piles up unread

    async def run():
        try:
            async for item in source:
                if relay["watched"]:
                    queue.put_nowait(item)
        except Exception as e:  # the event's to raise; with nobody there, logged
            if relay["watched"]:
                queue.put_nowait(_Failure(e))
            else:
                log.exception("an answer whose tab was closed failed")
        finally:
            queue.put_nowait(done)

    task = asyncio.create_task(run())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        relay["watched"] = False  # deliberately no task.cancel(): see above
