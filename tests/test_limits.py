"""Per-user limits (unit) — the soak test drives them through the real app."""

import threading

import pytest

from chatui.limits import LimitExceeded, UserLimits


def test_rate_limit_sliding_window():
    lim = UserLimits(messages_per_minute=3, max_concurrent=1)
    for t in (0, 1, 2):
        lim.check_rate("u", now=t)
    with pytest.raises(LimitExceeded, match=r"3 per minute\). Try again in 58 s"):
        lim.check_rate("u", now=2)
    lim.check_rate("other", now=2)  # per user
    lim.check_rate("u", now=60.5)  # the first message left the window


def test_concurrent_generations_per_user():
    lim = UserLimits(messages_per_minute=100, max_concurrent=2)
    with lim.generating("u"), lim.generating("u"):
        with pytest.raises(LimitExceeded, match="limit: 2"):
            with lim.generating("u"):
                pass
        with lim.generating("v"):
            pass
    with lim.generating("u"):  # slots are returned
        pass
    assert lim._running == {}


def test_limits_hold_under_threads():
    lim = UserLimits(messages_per_minute=10, max_concurrent=1)
    ok, refused = [], []

    def send():
        try:
            lim.check_rate("u")
            ok.append(1)
        except LimitExceeded:
            refused.append(1)

    threads = [threading.Thread(target=send) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 10 and len(refused) == 54
