"""Per-user limits kept in the store (chatui/limits.py), on SQLite and PostgreSQL: they hold
across replicas because every replica asks the same database."""

from __future__ import annotations

import asyncio

import pytest

from chatui.limits import LimitExceeded, SharedLimits
from chatui.store import Store


async def test_rate_limit_holds_across_two_replicas(db_url):
    a, b = Store(db_url), Store(db_url)  # two app processes' stores on one database
    try:
        la, lb = SharedLimits(a, 3, 1), SharedLimits(b, 3, 1)
        await la.check_rate("u")
        await lb.check_rate("u")
        await la.check_rate("u")
        with pytest.raises(LimitExceeded, match=r"3 per minute\)\. Try again in \d+ s"):
            await lb.check_rate("u")
        await lb.check_rate("other")  # per user
    finally:
        a.close()
        b.close()


async def test_answers_at_once_hold_across_replicas_and_slots_come_back(db_url):
    a, b = Store(db_url), Store(db_url)
    try:
        la, lb = SharedLimits(a, 100, 2), SharedLimits(b, 100, 2)
        async with la.generating("u"), lb.generating("u"):
            with pytest.raises(LimitExceeded, match="limit: 2"):
                async with la.generating("u"):
                    pass
            async with lb.generating("v"):
                pass
        async with la.generating("u"):  # released slots are free again
            assert a.active_generations("u") == 1
        assert b.active_generations("u") == 0
    finally:
        a.close()
        b.close()


async def test_a_long_answer_keeps_its_slot_by_renewing_and_a_dead_one_frees_it(db_url):
    store = Store(db_url)
    try:
        lim = SharedLimits(store, 100, 1, lease_ttl=0.6)
        async with lim.generating("u"):
            await asyncio.sleep(1.5)  # longer than the lease: renewals keep it
            with pytest.raises(LimitExceeded):
                async with lim.generating("u"):
                    pass
        # a replica that died holding a slot (never released, never renewed)
        assert store.acquire_generation("u", 1, ttl=0.3) is not None
        with pytest.raises(LimitExceeded):
            async with lim.generating("u"):
                pass
        await asyncio.sleep(0.4)
        async with lim.generating("u"):  # expired: the user is not locked out
            pass
    finally:
        store.close()


async def test_cancelled_answer_gives_its_slot_back(db_url):
    """A closed tab cancels the answer; the slot must be released all the same."""
    store = Store(db_url)
    try:
        lim = SharedLimits(store, 100, 1)

        async def answer():
            async with lim.generating("u"):
                await asyncio.sleep(10)

        task = asyncio.create_task(answer())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert store.active_generations("u") == 0
    finally:
        store.close()
