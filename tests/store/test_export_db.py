"""`python -m chatui export` on the app's database wherever it lives: a PostgreSQL URL shared
by several replicas (--db, or the config's storage.url by default), as well as a SQLite file."""

from __future__ import annotations

import json

from chatui.store import Store
from tests.conftest import free_port

from .test_export import make_voted, run_cli


MODEL = "models:\n  - {name: m, type: openai, endpoint_url: 'http://127.0.0.1:9/v1'}\n"


def rows(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_export_reads_a_postgresql_url(pg_cluster, tmp_path):
    url = pg_cluster.create_database()
    try:
        with Store(url) as store:
            make_voted(store)
        out = tmp_path / "dpo.jsonl"
        r = run_cli("export", "--format", "dpo", "--out", str(out), "--db", url)
        assert r.returncode == 0, r.stderr
        assert "wrote 1 dpo row" in r.stderr
        assert [(x["chosen"][0]["content"], x["rejected"][0]["content"])
                for x in rows(out)] == [("4", "5")]
    finally:
        pg_cluster.drop_database(url)


def test_export_defaults_to_the_configs_storage_url(pg_cluster, tmp_path):
    """No --db: the database the app uses (storage.url in CHATUI_CONFIG), not a file path."""
    url = pg_cluster.create_database()
    try:
        with Store(url) as store:
            make_voted(store)
        cfg = tmp_path / "spaces.yaml"
        cfg.write_text(f"{MODEL}storage:\n  url: {url}\n")
        out = tmp_path / "kto.jsonl"
        r = run_cli("export", "--format", "kto", "--out", str(out), "--model", "m1",
                    env={"CHATUI_CONFIG": str(cfg), "CHATUI_DB_PATH": ""})
        assert r.returncode == 0, r.stderr
        assert len(rows(out)) == 3
        # and CHATUI_DATABASE_URL wins over the file's storage, as it does for the app
        cfg.write_text(f"{MODEL}storage:\n  url: sqlite:///{tmp_path / 'missing.db'}\n")
        r = run_cli("export", "--format", "kto", "--out", str(out), env={
            "CHATUI_CONFIG": str(cfg), "CHATUI_DATABASE_URL": url, "CHATUI_DB_PATH": ""})
        assert r.returncode == 0 and len(rows(out)) == 4, r.stderr
    finally:
        pg_cluster.drop_database(url)


def test_sqlite_url_and_unreachable_postgres_are_one_line(tmp_path):
    r = run_cli("export", "--format", "kto", "--out", "-",
                "--db", f"sqlite:///{tmp_path / 'missing.db'}")
    assert r.returncode == 2 and f"no database at {tmp_path / 'missing.db'}" in r.stderr
    assert not (tmp_path / "missing.db").exists()
    url = f"postgresql://chatui:s3cret-pw@127.0.0.1:{free_port()}/chat"
    r = run_cli("export", "--format", "kto", "--out", str(tmp_path / "x.jsonl"), "--db", url)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("error: cannot open database") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "s3cret-pw" not in r.stderr                      # the password is never printed
    assert not (tmp_path / "x.jsonl").exists()
