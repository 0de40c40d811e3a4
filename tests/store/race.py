"""Races between replicas, as the store tests run them: N threads released at once, spread
over two `Store` instances on one database (two replicas)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from chatui.store import Store


@contextlib.contextmanager
def two_replicas(db_url: str) -> Iterator[list[Store]]:
    stores = [Store(db_url), Store(db_url)]
    try:
        yield stores
    finally:
        for s in stores:
            s.close()


def race(n: int, worker: Callable[[int], None], timeout: float = 60) -> list[BaseException]:
    """Run worker(0..n-1) in n threads released together; the errors they raised."""
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            worker(i)
        except BaseException as e:  # noqa: BLE001 - returned to the test, which asserts
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return errors
