"""Coalescing of UI updates: first at once, bounded rate, nothing lost at the end."""

import asyncio
import time

import pytest

from chatui.streaming import coalesce


async def fast_source(n, delay=0.0):
    for i in range(1, n + 1):
        await asyncio.sleep(delay)  # real token streams await between items
        yield i


async def test_first_item_immediate_last_kept_rate_bounded():
    t0 = time.perf_counter()
    got, times = [], []
    async for x in coalesce(fast_source(2000), interval=0.02):
        got.append(x)
        times.append(time.perf_counter() - t0)
    assert got[0] == 1 and times[0] < 0.01
    assert got[-1] == 2000
    assert len(got) < 50  # 2000 snapshots collapsed
    assert got == sorted(got)


async def test_slow_source_passes_every_item():
    got = [x async for x in coalesce(fast_source(5, delay=0.05), interval=0.02)]
    assert got == [1, 2, 3, 4, 5]


async def test_pending_item_flushed_while_source_idle():
    async def src():
        yield 1
        await asyncio.sleep(0.001)
        yield 2  # arrives within the interval: must still show before the long pause ends
        await asyncio.sleep(0.5)
        yield 3

    t0 = time.perf_counter()
    seen = []
    async for x in coalesce(src(), interval=0.05):
        seen.append((x, time.perf_counter() - t0))
    assert [x for x, _ in seen] == [1, 2, 3]
    assert seen[1][1] < 0.2


async def test_closing_consumer_closes_source():
    closed = asyncio.Event()

    async def src():
        try:
            for i in range(10**9):
                yield i
                await asyncio.sleep(0.001)
        finally:
            closed.set()

    gen = coalesce(src(), interval=0.01)
    async for x in gen:
        if x > 5:
            break
    await gen.aclose()
    await asyncio.wait_for(closed.wait(), 1.0)


async def test_source_error_surfaces():
    async def src():
        yield 1
        await asyncio.sleep(0)
        yield 2
        raise ValueError("boom")

    got = []
    try:
        async for x in coalesce(src(), interval=0.01):
            got.append(x)
    except ValueError as e:
        assert str(e) == "boom"
    else:
        raise AssertionError("error swallowed")
    assert got[-1] == 2  # the last good snapshot is shown before the error


async def test_until_interrupts_the_source_on_stop_and_on_cancel():
    """Stop (an event) and a closed tab (cancellation) both end the source at once: its
    finally runs, nothing keeps generating in the background."""
    import asyncio

    from chatui.streaming import until

    state = {"closed": 0, "produced": 0}

    async def source():
        try:
            while True:
                await asyncio.sleep(0.01)
                state["produced"] += 1
                yield state["produced"]
        finally:
            state["closed"] += 1

    stop = asyncio.Event()
    got = []
    async for item in until(source(), stop):
        got.append(item)
        if len(got) == 3:
            stop.set()
    assert got == [1, 2, 3] and state["closed"] == 1

    async def consume():
        async for _ in until(source(), asyncio.Event()):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    produced = state["produced"]
    await asyncio.sleep(0.1)
    assert state["closed"] == 2 and state["produced"] == produced  # nothing runs on
