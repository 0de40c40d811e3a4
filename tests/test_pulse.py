"""chatui/pulse.py on a real SQLite store: everything a process keeps alive is written in one
transaction per interval, however many answers and leases it holds; what is closed stops
being written; a failing store does not stop the pulse."""

from __future__ import annotations

import asyncio

import pytest

from chatui.pulse import Pulse, pulse_of
from chatui.store import Store

U = "alice"


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "chat.db")
    yield s
    s.close()


def answer(store: Store) -> str:
    conv = store.create_conversation(U, "t", model="m")
    store.add_message(U, conv, "user", "q")
    return store.add_message(U, conv, "assistant", "")


def done(value) -> asyncio.Future:
    fut = asyncio.get_running_loop().create_future()
    fut.set_result(value)
    return fut


def test_many_answers_and_leases_one_transaction_per_interval(store):
    ids = [answer(store) for _ in range(5)]
    calls = []
    real = store.pulse
    store.pulse = lambda answers, leases: calls.append((len(answers), len(leases))) or \
        real(answers, leases)

    async def main():
        pulse = Pulse(store, interval=0.2)
        texts = {i: f"text of {i}" for i in ids}
        kept = [pulse.answer(U, done(i), lambda i=i: texts[i]) for i in ids]
        leases = [pulse.lease(store.acquire_generation(U, 10, ttl=5), 5) for _ in range(3)]
        await asyncio.sleep(0.5)                       # two intervals
        kept[0].close()
        texts[ids[0]] = texts[ids[1]] = "changed"
        await asyncio.sleep(0.3)
        for k in kept[1:] + leases:
            k.close()
        await asyncio.sleep(0.3)
        return pulse

    pulse = asyncio.run(main())
    assert calls[:2] == [(5, 3), (5, 3)]               # one call for all of them
    assert (4, 3) in calls and len(calls) == pulse.beats <= 4
    assert store.get_message(U, ids[0])["content"] == f"text of {ids[0]}"   # closed: kept
    assert store.get_message(U, ids[1])["content"] == "changed"
    assert pulse._task.done()                          # nothing left: the task ends


def test_an_answer_still_being_stored_waits_and_a_store_error_is_survived(store):
    a = answer(store)
    failures = [RuntimeError("database is locked")]
    real = store.pulse

    def flaky(answers, leases):
        if failures:
            raise failures.pop()
        return real(answers, leases)

    store.pulse = flaky

    async def main():
        pulse = Pulse(store, interval=0.1)
        pending = asyncio.get_running_loop().create_future()
        with pulse.answer(U, pending, lambda: "so far"):
            await asyncio.sleep(0.25)                  # id not known yet: nothing written
            assert store.get_message(U, a)["content"] == ""
            pending.set_result(a)
            await asyncio.sleep(0.35)
        return pulse

    pulse = asyncio.run(main())
    assert not failures and pulse.beats >= 1
    assert store.get_message(U, a)["content"] == "so far"


def test_one_pulse_per_store_at_the_shortest_interval(store):
    assert pulse_of(store) is pulse_of(store)
    assert pulse_of(store).at_most(3.0).at_most(10.0).interval == 3.0
