"""Per-user limits: messages per minute and answers generated at once.

In-process and lock-protected (Gradio runs handlers on several threads). With several
replicas, each enforces its own share; a shared store would be needed for global limits.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from contextlib import contextmanager


class LimitExceeded(Exception):
    """A user-facing sentence saying which limit was hit and what to do."""


class UserLimits:
    def __init__(self, messages_per_minute: int, max_concurrent: int, window: float = 60.0):
        self.messages_per_minute = messages_per_minute
        self.max_concurrent = max_concurrent
        self.window = window
        self._lock = threading.Lock()
        self._sent: dict[str, deque] = defaultdict(deque)
        self._running: dict[str, int] = defaultdict(int)

    def check_rate(self, user_id: str, now: float | None = None) -> None:
        """Count one message; refuse past `messages_per_minute` in the sliding window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            sent = self._sent[user_id]
            while sent and now - sent[0] >= self.window:
                sent.popleft()
            if len(sent) >= self.messages_per_minute:
                wait = self.window - (now - sent[0])
                raise LimitExceeded(
                    f"You are sending messages too fast (limit: {self.messages_per_minute} per "
                    f"minute). Try again in {max(1, round(wait))} s.")
            sent.append(now)

    @contextmanager
    def generating(self, user_id: str):
        """Hold one of the user's concurrent-generation slots for the duration of an answer."""
        with self._lock:
            if self._running[user_id] >= self.max_concurrent:
                raise LimitExceeded(
                    f"You already have {self._running[user_id]} answer(s) being written (limit: "
                    f"{self.max_concurrent}). Wait for one to finish or stop it.")
            self._running[user_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[user_id] -= 1
                if self._running[user_id] <= 0:
                    del self._running[user_id]
