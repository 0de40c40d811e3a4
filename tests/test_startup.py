"""Startup failures a self-hoster can make: one clear line, exit code 2, no traceback."""

import subprocess
import sys

from tests.conftest import ROOT

CONFIG = "models:\n  - {name: smol, type: llamacpp, model_path: bundled}\nstorage:\n  db_path: %s\n"


def run_app(tmp_path, db_path: str, extra: str = "") -> subprocess.CompletedProcess:
    cfg = tmp_path / "spaces.yaml"
    cfg.write_text(CONFIG % db_path + extra)
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"CHATUI_CONFIG": str(cfg), "PATH": "/usr/bin:/bin",
                                            "GRADIO_ANALYTICS_ENABLED": "False",
                                            "HF_HUB_OFFLINE": "1"})


def test_database_path_that_is_a_directory(tmp_path):
    r = run_app(tmp_path, str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cannot open the database" in r.stderr and str(tmp_path) in r.stderr


def test_database_file_that_is_not_sqlite(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("these are my notes, not a database\n" * 100)
    r = run_app(tmp_path, str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cannot open the database" in r.stderr
    assert bad.read_text().startswith("these are my notes")  # never overwritten


def test_missing_gguf_model_is_reported_and_app_refuses_to_run_without_models(tmp_path):
    cfg = tmp_path / "spaces.yaml"
    cfg.write_text("models:\n  - {name: m, type: llamacpp, model_path: /nope/x.gguf}\n"
                   f"storage: {{db_path: {tmp_path / 'c.db'}}}\n")
    r = subprocess.run([sys.executable, "app.py"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={"CHATUI_CONFIG": str(cfg), "PATH": "/usr/bin:/bin",
                                         "GRADIO_ANALYTICS_ENABLED": "False"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "GGUF file not found: /nope/x.gguf" in r.stderr


def test_gradio_server_name_and_port_work_as_for_any_gradio_app(tmp_path):
    """`GRADIO_SERVER_PORT=… GRADIO_SERVER_NAME=… python app.py`, as Gradio users expect."""
    import os

    from tests.conftest import free_port, stop_process, wait_http

    port = free_port()
    cfg = tmp_path / "spaces.yaml"
    cfg.write_text(CONFIG % (tmp_path / "c.db"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("CHATUI_PORT", "CHATUI_HOST", "PORT")}
    env.update(CHATUI_CONFIG=str(cfg), GRADIO_SERVER_PORT=str(port),
               GRADIO_SERVER_NAME="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False")
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=90, proc=proc)
        assert f"http://127.0.0.1:{port}" in (tmp_path / "app.log").read_text()
    finally:
        stop_process(proc)
