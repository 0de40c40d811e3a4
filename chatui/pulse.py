"""One writer per process keeps everything alive that this replica holds in the store.

While an answer is written, its replica must keep telling the shared store two things: the
answer is still being written (its heartbeat, with the text so far, so a reader can tell a
dead replica's answer from a live one) and the user's answers-at-once slot is still taken
(the lease, which otherwise expires). Done per answer, that was two timers and two worker-
thread trips with a write transaction each: at 64 streaming users about 30 write
transactions a second, queued in the same few worker threads as every new message's first
database trip, which then waited seconds for its turn (bench_scale, one replica, 64 users:
p50 from join to the question shown 764 ms). Here one task per process writes every live
answer's heartbeat and renews every lease in ONE transaction per `interval`.

    pulse = pulse_of(store).at_most(3.0)
    with pulse.answer(user_id, message_id_future, lambda: text_so_far), \
            pulse.lease(lease_id, ttl):
        ...stream...
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Pulse:
    def __init__(self, store, interval: float = 3.0):
        self.store = store
        self.interval = interval
        self._ids = itertools.count()
        self._answers: dict[int, tuple[str, asyncio.Future, Callable[[], str]]] = {}
        self._leases: dict[int, tuple[str, float]] = {}
        self._task: asyncio.Task | None = None
        self.beats = 0          # transactions written (read by tests)

    def at_most(self, interval: float) -> Pulse:
        """Beat at least every `interval` seconds (the shortest any user asked for)."""
        self.interval = min(self.interval, interval)
        return self

    def answer(self, user_id: str, message_id: asyncio.Future,
               text: Callable[[], str]) -> Kept:
        """Keep this answer's heartbeat (and its text so far) fresh until `close()` (or the
        end of a `with` block). `message_id`: a future of its id (the answer may still be
        being stored)."""
        return self._keep(self._answers, (user_id, message_id, text))

    def lease(self, lease_id: str, ttl: float) -> Kept:
        """Keep this answers-at-once lease from expiring until `close()`."""
        return self._keep(self._leases, (lease_id, ttl))

    def _keep(self, table: dict, item) -> Kept:
        key = next(self._ids)
        table[key] = item
        self._ensure_running()
        return Kept(table, key)

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while self._answers or self._leases:
            await asyncio.sleep(self.interval)
            answers = []
            for user_id, fut, text in list(self._answers.values()):
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    answers.append((user_id, fut.result(), text()))
            leases = list(self._leases.values())
            if not answers and not leases:
                continue
            try:
                await asyncio.to_thread(self.store.pulse, answers, leases)
                self.beats += 1
            except Exception as e:  # a database hiccup must not end anyone's answer
                log.warning("could not save heartbeats / renew leases: %s", e)


class Kept:
    """One thing a Pulse keeps alive; `close()` (idempotent) or leave the `with` block."""

    def __init__(self, table: dict, key: int):
        self._table, self._key = table, key

    def close(self) -> None:
        self._table.pop(self._key, None)

    def __enter__(self) -> Kept:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pulse_of(store) -> Pulse:
    """The one Pulse of this store object (so of this process, for that database)."""
    pulse = getattr(store, "_chatui_pulse", None)
    if pulse is None:
        pulse = Pulse(store)
        store._chatui_pulse = pulse
    return pulse
