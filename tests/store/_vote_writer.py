"""Child process for the kill -9 test: votes in a loop, prints each id once committed.

Usage: python -m tests.store._vote_writer DB_PATH
"""

import sys

from chatui.store import Store


def main(path: str) -> None:
    store = Store(path)
    conv = store.create_conversation("writer", "crash test", model="m1")
    i = 0
    while True:
        q = store.add_message("writer", conv, "user", f"question {i}")
        a = store.add_message("writer", conv, "assistant", f"answer {i}", parent_id=q)
        store.set_feedback("writer", a, i % 2 == 0, comment=f"vote {i}")
        # set_feedback returned: the vote is committed. Only now report it.
        sys.stdout.write(a + "\n")
        sys.stdout.flush()
        i += 1


if __name__ == "__main__":
    main(sys.argv[1])
