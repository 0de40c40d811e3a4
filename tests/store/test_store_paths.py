"""Paths that cannot be opened give a StoreError with one line naming the path and reason."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path

import pytest

from chatui.store import Store, StoreError


def one_line_error(path) -> str:
    with pytest.raises(StoreError) as err:
        Store(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_creates_missing_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "chat.db"
    with Store(path) as s:
        s.create_conversation("u")
    assert path.is_file()


def test_directory_given_as_file(tmp_path):
    assert "is a directory" in one_line_error(tmp_path)


def test_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "cannot create folder" in one_line_error(tmp_path / "file" / "chat.db")


def test_folder_not_creatable(tmp_path):
    # /proc refuses new entries even for root
    assert "cannot create folder" in one_line_error(Path("/proc/chatui-test-dir/chat.db"))


def test_not_a_sqlite_file(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database, just some text " * 100)
    assert "not a SQLite database" in one_line_error(path)
    assert path.read_bytes().startswith(b"this is not")       # left untouched


def test_memory_path_refused():
    with pytest.raises(StoreError, match="file path is required"):
        Store(":memory:")


@pytest.fixture
def readonly_db():
    """A valid database in a folder nobody but its owner may write (world-readable)."""
    folder = Path(tempfile.mkdtemp(prefix="chatui-ro-"))
    path = folder / "chat.db"
    Store(path).close()
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)
    yield path
    folder.chmod(0o755)
    for p in folder.iterdir():
        p.chmod(0o644)
        p.unlink()
    folder.rmdir()


def _open_as_nobody(path, conn) -> None:
    """Child process: drop root, try to open the store, report the error line."""
    try:
        os.setgid(65534)
        os.setuid(65534)
        Store(path)
        conn.send("opened")
    except StoreError as e:
        conn.send(f"StoreError: {e}")
    except BaseException as e:  # noqa: BLE001 - report anything to the parent
        conn.send(f"{type(e).__name__}: {e}")
    finally:
        conn.close()


def test_read_only_file(readonly_db):
    if os.geteuid() != 0:
        msg = one_line_error(readonly_db)
    else:
        # root ignores file modes: drop to an unprivileged user in a forked child
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_open_as_nobody, args=(readonly_db, child))
        proc.start()
        assert parent.poll(30)
        result = parent.recv()
        proc.join(10)
        assert result.startswith("StoreError: "), result
        msg = result.removeprefix("StoreError: ")
        assert "\n" not in msg and str(readonly_db) in msg
    assert "read-only" in msg or "not writable" in msg or "permission denied" in msg, msg
