"""State that several app replicas share through the database.

Per-user limits
    * answers at once: a **lease** per answer being generated (``generation_leases``), with an
      expiry the generating replica renews. A replica that dies stops renewing; its leases
      expire and the user is never locked out for longer than one ``ttl``.
    * messages per minute: one row per accepted message (``rate_events``), a sliding window.
    Each check-and-record is one transaction, serialised per user (SQLite: its write lock;
    PostgreSQL: a transaction-scoped advisory lock on the user id), so two replicas can never
    both take the last slot.

Answers being generated
    An assistant message without a ``finish_reason`` is *generating*; it carries
    ``heartbeat_at``, stamped by `add_message`, `update_message` and `heartbeat`. If its
    writer dies, `interrupt_stale` turns it into ``finish_reason="error"`` with
    `INTERRUPTED_ERROR`, keeping whatever text was saved.

Times are the app hosts' epoch seconds (keep replica clocks in sync, e.g. NTP).
"""

from __future__ import annotations

import time

from .base import INTERRUPTED_ERROR, InvalidArgument, NotFound, check_id, new_id
from .engines import Conn


def _lock_user(db: Conn, user_id: str) -> None:
    if db.dialect.user_lock:
        db.execute(db.dialect.user_lock, [user_id])


# The limit checks on a connection already in a write transaction that holds the user's lock:
# shared by the single-purpose methods below and by `TurnsMixin.begin_turn`.

def take_lease(db: Conn, user_id: str, max_concurrent: int, ttl: float, now: float
               ) -> tuple[str | None, int]:
    """(a new lease id, or None when the user's live leases fill ``max_concurrent``; how many
    live leases the user held before)."""
    db.execute("DELETE FROM generation_leases WHERE user_id = ? AND expires_at <= ?",
               [user_id, now])
    held = int(db.scalar("SELECT COUNT(*) FROM generation_leases WHERE user_id = ?", [user_id]))
    if held >= int(max_concurrent):
        return None, held
    lease = new_id()
    db.execute("INSERT INTO generation_leases (id, user_id, acquired_at, expires_at) "
               "VALUES (?, ?, ?, ?)", [lease, user_id, now, now + ttl])
    return lease, held


def count_message(db: Conn, user_id: str, per_minute: int, window: float, now: float) -> bool:
    """Record one message unless ``per_minute`` were sent in the last ``window`` seconds."""
    db.execute("DELETE FROM rate_events WHERE user_id = ? AND at <= ?", [user_id, now - window])
    sent = db.scalar("SELECT COUNT(*) FROM rate_events WHERE user_id = ?", [user_id])
    if sent >= int(per_minute):
        return False
    db.execute("INSERT INTO rate_events (user_id, at) VALUES (?, ?)", [user_id, now])
    return True


def rate_wait(db: Conn, user_id: str, per_minute: int, window: float, now: float) -> float:
    """Seconds until one more message fits in the user's window (0: now)."""
    times = [r[0] for r in db.execute(
        "SELECT at FROM rate_events WHERE user_id = ? AND at > ? ORDER BY at DESC",
        [user_id, now - window]).fetchall()]
    if len(times) < int(per_minute):
        return 0.0
    # the message that must leave the window before one more fits
    return max(0.0, times[int(per_minute) - 1] + window - now)



def _renew(db: Conn, lease_id: str, ttl: float, now: float) -> bool:
    """Extend a live lease to now + ttl inside the caller's transaction; False if it is gone."""
    cur = db.execute("UPDATE generation_leases SET expires_at = ? "
                     "WHERE id = ? AND expires_at > ?", [now + ttl, str(lease_id), now])
    return cur.rowcount == 1

def _positive(value: float, what: str) -> float:
    value = float(value)
    if not value > 0:
        raise InvalidArgument(f"{what} must be > 0, not {value!r}")
    return value


class ReplicasMixin:
    """Part of `Store`: leases, rate events, heartbeats of generating answers."""

    # -- answers at once ---------------------------------------------------------------------

    def acquire_generation(self, user_id: str, max_concurrent: int, ttl: float) -> str | None:
        """Take one of the user's ``max_concurrent`` slots for ``ttl`` seconds: a lease id, or
        None when all are taken by live leases. Renew it while generating; release it after."""
        check_id(user_id, "user_id")
        ttl = _positive(ttl, "ttl")
        with self._write() as db:
            _lock_user(db, user_id)
            lease, _held = take_lease(db, user_id, max_concurrent, ttl, time.time())
        return lease

    def renew_generation(self, lease_id: str, ttl: float) -> bool:
        """Extend a live lease to now + ``ttl``; False if it expired or was released (its slot
        may already be someone else's)."""
        ttl = _positive(ttl, "ttl")
        with self._write() as db:
            return _renew(db, lease_id, ttl, time.time())

    def release_generation(self, lease_id: str) -> None:
        """Give the slot back (idempotent)."""
        with self._write() as db:
            db.execute("DELETE FROM generation_leases WHERE id = ?", [str(lease_id)])

    def active_generations(self, user_id: str) -> int:
        """Live leases of the user (for messages such as "you already have 2 answers …")."""
        check_id(user_id, "user_id")
        with self._read() as db:
            return int(db.scalar("SELECT COUNT(*) FROM generation_leases "
                                 "WHERE user_id = ? AND expires_at > ?", [user_id, time.time()]))

    # -- messages per minute -----------------------------------------------------------------

    def record_message_and_check_rate(self, user_id: str, per_minute: int,
                                      window: float = 60.0) -> bool:
        """Count one message if the user sent fewer than ``per_minute`` in the last ``window``
        seconds (True); else refuse it, uncounted (False)."""
        check_id(user_id, "user_id")
        window = _positive(window, "window")
        with self._write() as db:
            _lock_user(db, user_id)
            return count_message(db, user_id, per_minute, window, time.time())

    def rate_retry_after(self, user_id: str, per_minute: int, window: float = 60.0) -> float:
        """Seconds until `record_message_and_check_rate` would accept a message (0: now)."""
        check_id(user_id, "user_id")
        window = _positive(window, "window")
        now = time.time()
        with self._read() as db:
            return rate_wait(db, user_id, per_minute, window, now)

    # -- answers being generated -------------------------------------------------------------

    def heartbeat(self, user_id: str, message_id: str, content: str | None = None) -> bool:
        """The writer of a generating answer is alive (optionally saving the text so far).

        False when the answer is no longer generating: it finished, or a reader declared it
        interrupted — the writer should then stop writing to it.
        """
        with self._write() as db:
            return self._beat(db, user_id, message_id, content, time.time())

    def _beat(self, db: Conn, user_id: str, message_id: str, content: str | None,
              now: float) -> bool:
        """`heartbeat` inside the caller's transaction (NotFound if not the user's)."""
        row = self._own_message(db, user_id, message_id, lock=True)
        if row["role"] != "assistant" or row["finish_reason"] is not None:
            return False
        if content is None:
            db.execute("UPDATE messages SET heartbeat_at = ? WHERE id = ?", [now, message_id])
        else:
            db.execute("UPDATE messages SET heartbeat_at = ?, content = ?, updated_at = ? "
                       "WHERE id = ?", [now, str(content), now, message_id])
        return True

    def pulse(self, answers: list[tuple[str, str, str | None]],
              leases: list[tuple[str, float]]) -> set[str]:
        """One transaction for everything a replica keeps alive (chatui/pulse.py): a
        heartbeat for each ``(user_id, message_id, content)`` answer it writes (saving the
        text when given) and a renewal for each ``(lease_id, ttl)``. Returns the ids of the
        answers that are no longer generating (finished, interrupted or gone)."""
        now = time.time()
        stopped: set[str] = set()
        with self._write() as db:
            for user_id, message_id, content in answers:
                try:
                    if not self._beat(db, user_id, message_id, content, now):
                        stopped.add(message_id)
                except NotFound:
                    stopped.add(message_id)
            for lease_id, ttl in leases:
                _renew(db, lease_id, _positive(ttl, "ttl"), now)
        return stopped

    def interrupt_stale(self, conv_id: str | None = None, older_than: float = 60.0) -> list[str]:
        """Mark generating answers whose last heartbeat is older than ``older_than`` seconds as
        interrupted (``finish_reason="error"``, `INTERRUPTED_ERROR`; the text is kept).

        ``conv_id`` limits it to one conversation (what a reader is about to show); None sweeps
        every conversation. Returns the ids changed. Not an ownership-checked call: it only
        ever repairs what a dead writer left behind.
        """
        older_than = _positive(older_than, "older_than")
        now = time.time()
        where = ("role = 'assistant' AND finish_reason IS NULL "
                 "AND COALESCE(heartbeat_at, updated_at) < ?")
        params: list = [now - older_than]
        if conv_id is not None:
            where += " AND conversation_id = ?"
            params.append(str(conv_id))
        # Readers call this before showing a conversation: look first without the write lock
        # (a partial index holds only generating answers), write only when something is stale.
        with self._read() as db:
            if db.one(f"SELECT 1 FROM messages WHERE {where} LIMIT 1", params) is None:
                return []
        with self._write() as db:
            # FOR UPDATE (PostgreSQL): a heartbeat racing this waits, then sees the verdict
            ids = [r[0] for r in db.execute(f"SELECT id FROM messages WHERE {where}"
                                            + db.dialect.for_update, params).fetchall()]
            for message_id in ids:
                db.execute("UPDATE messages SET finish_reason = 'error', error = ?, "
                           "updated_at = ? WHERE id = ?", [INTERRUPTED_ERROR, now, message_id])
        return ids
