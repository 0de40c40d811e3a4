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


# -- URLs (storage.url) ------------------------------------------------------------------------

def test_sqlite_urls_relative_and_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Store("sqlite:///data/rel.db") as s:                  # relative to the working dir
        assert s.engine == "sqlite" and s.path == Path("data/rel.db")
        s.create_conversation("u")
    assert (tmp_path / "data" / "rel.db").is_file()
    with Store(f"sqlite:///{tmp_path}/abs.db") as s:            # sqlite:////abs/path
        assert s.path == tmp_path / "abs.db"
        assert s.url == f"sqlite:///{tmp_path}/abs.db"
    assert (tmp_path / "abs.db").is_file()


def test_unknown_scheme_is_one_line_without_the_password():
    with pytest.raises(StoreError) as err:
        Store("mysql://bob:s3cret@db/chat")
    msg = str(err.value)
    assert "unknown URL scheme" in msg and "s3cret" not in msg and "\n" not in msg


def test_postgres_unreachable_is_one_line_without_the_password():
    from tests.conftest import free_port

    url = f"postgresql://bob:s3cret@127.0.0.1:{free_port()}/chat"   # nothing listens there
    with pytest.raises(StoreError) as err:
        Store(url, busy_timeout=3)
    msg = str(err.value)
    assert "\n" not in msg and "s3cret" not in msg
    assert "postgresql://bob:***@127.0.0.1" in msg and "refused" in msg.lower(), msg


def test_postgres_missing_database_names_it(pg_cluster):
    url = pg_cluster.url("no_such_db")
    with pytest.raises(StoreError) as err:
        Store(url)
    msg = str(err.value)
    assert "\n" not in msg and "no_such_db" in msg and "does not exist" in msg, msg


def test_postgres_store_reports_its_engine(pg_cluster):
    url = pg_cluster.create_database()
    with Store(url) as s:
        assert (s.engine, s.path, s.url) == ("postgresql", None, url)
        assert "postgresql://" in repr(s)
    with pytest.raises(StoreError, match="closed"):
        s.list_conversations("u")
