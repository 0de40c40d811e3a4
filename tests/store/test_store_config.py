"""storage.url / CHATUI_DATABASE_URL choose the engine; storage.db_path alone keeps working."""

from __future__ import annotations

import pytest

from chatui.app_factory import open_store
from chatui.config import ConfigError, StorageSettings, load_settings
from tests.conftest import ROOT

CONFIG = ROOT / "spaces.yaml"


def test_default_is_the_sqlite_file_of_db_path():
    s = load_settings(CONFIG, env={}).storage
    assert (s.url, s.db_path) == ("sqlite:///data/chatui.db", "data/chatui.db")
    assert StorageSettings().url == "sqlite:///data/chatui.db"


def test_db_path_alone_keeps_working():
    s = load_settings(CONFIG, env={"CHATUI_DB_PATH": "/tmp/x.db"}).storage
    assert (s.url, s.db_path) == ("sqlite:////tmp/x.db", "/tmp/x.db")


def test_database_url_env_selects_postgresql_and_wins_over_db_path():
    url = "postgresql://chatui:pw@db:5432/chatui"
    s = load_settings(CONFIG, env={"CHATUI_DATABASE_URL": url,
                                   "CHATUI_DB_PATH": "/tmp/x.db"}).storage
    assert s.url == url and s.db_path == "/tmp/x.db"    # db_path: feedback folder default only


def test_sqlite_url_also_sets_db_path(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(CONFIG.read_text().replace("db_path: data/chatui.db",
                                            "url: sqlite:////srv/chat.db"))
    s = load_settings(p, env={}).storage
    assert (s.url, s.db_path) == ("sqlite:////srv/chat.db", "/srv/chat.db")


def test_unknown_scheme_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as err:
        load_settings(CONFIG, env={"CHATUI_DATABASE_URL": "mysql://x@y/z"})
    assert "storage" in str(err.value) and "postgresql://" in str(err.value)
    assert "\n" not in str(err.value)


def test_open_store_uses_the_url(pg_cluster, tmp_path):
    settings = load_settings(CONFIG, env={"CHATUI_DATABASE_URL": pg_cluster.create_database()})
    store = open_store(settings)
    try:
        assert store.engine == "postgresql"
        store.create_conversation("u")
    finally:
        store.close()
    settings = load_settings(CONFIG, env={"CHATUI_DB_PATH": str(tmp_path / "a" / "c.db")})
    store = open_store(settings)
    try:
        assert store.engine == "sqlite" and (tmp_path / "a" / "c.db").is_file()
    finally:
        store.close()


def test_open_store_exits_with_one_line_when_postgresql_is_down(capsys):
    from tests.conftest import free_port

    settings = load_settings(CONFIG, env={
        "CHATUI_DATABASE_URL": f"postgresql://chatui:hunter2@127.0.0.1:{free_port()}/chatui"})
    with pytest.raises(SystemExit) as code:
        open_store(settings)
    assert code.value.code == 2
    err = capsys.readouterr().err
    assert "cannot open the database" in err and "hunter2" not in err
    assert len(err.strip().splitlines()) == 1
