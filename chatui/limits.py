"""Per-user limits: messages per minute and answers generated at once.

Kept in the store, so they hold across every replica that shares it (SQLite for one process,
PostgreSQL for several): a message is counted and checked in one transaction, and each
answer holds a lease that its replica renews while it writes. A replica that dies stops
renewing; its leases expire after `lease_ttl` seconds, so nobody is locked out for longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from .pulse import pulse_of

log = logging.getLogger(__name__)


class LimitExceeded(Exception):
    """A user-facing sentence saying which limit was hit and what to do."""


class SharedLimits:
    def __init__(self, store, messages_per_minute: int, max_concurrent: int,
                 lease_ttl: float = 30.0, window: float = 60.0):
        self.store = store
        self.messages_per_minute = messages_per_minute
        self.max_concurrent = max_concurrent
        self.lease_ttl = lease_ttl
        self.window = window

    async def check_rate(self, user_id: str) -> None:
        """Count one message; refuse past `messages_per_minute` in the sliding window."""
        if await asyncio.to_thread(self.store.record_message_and_check_rate, user_id,
                                   self.messages_per_minute, self.window):
            return
        wait = await asyncio.to_thread(self.store.rate_retry_after, user_id,
                                       self.messages_per_minute, self.window)
        raise LimitExceeded(self.rate_message(wait))

    def rate_message(self, wait: float) -> str:
        return (f"You are sending messages too fast (limit: {self.messages_per_minute} per "
                f"minute). Try again in {max(1, round(wait))} s.")

    def busy_message(self, busy: int) -> str:
        return (f"You already have {busy} answer(s) being written (limit: "
                f"{self.max_concurrent}). Wait for one to finish or stop it.")

    def admission(self) -> dict:
        """The limits as `Store.begin_turn` checks them, in the same transaction that stores
        the message (`History.begin`): the lease it takes goes to `generating(lease=…)`."""
        return {"max_concurrent": self.max_concurrent, "lease_ttl": self.lease_ttl,
                "per_minute": self.messages_per_minute, "window": self.window}

    @contextlib.asynccontextmanager
    async def generating(self, user_id: str, lease: str | None = None) -> AsyncIterator[None]:
        """Hold one of the user's concurrent-answer slots while an answer is written.

        ``lease``: a slot already taken (by `Store.begin_turn`, with the message); it is
        renewed and given back like one taken here."""
        if lease is None:
            lease = await asyncio.to_thread(self.store.acquire_generation, user_id,
                                            self.max_concurrent, self.lease_ttl)
        if lease is None:
            raise LimitExceeded(self.busy_message(self.max_concurrent))
        try:
            # renewed with every other live lease of this process, in one transaction
            with pulse_of(self.store).at_most(self.lease_ttl / 3).lease(lease, self.lease_ttl):
                yield
        finally:
            # shielded: a closed tab cancels us, and the slot must still be given back
            await asyncio.shield(asyncio.to_thread(self.store.release_generation, lease))
