"""spaces.yaml validation and environment overrides."""

import subprocess
import sys
from pathlib import Path

import pytest

from chatui.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path, text):
    p = tmp_path / "spaces.yaml"
    p.write_text(text)
    return p


def test_repo_config_is_valid():
    s = load_settings(ROOT / "spaces.yaml", env={})
    assert s.models[0].type == "llamacpp" and s.models[0].model_path == "bundled"
    assert s.default_model == s.models[0].name
    assert s.server.port == 7860 and s.server.concurrency_limit > 1


def test_unknown_key_names_the_key(tmp_path):
    p = write(tmp_path, "models:\n  - name: a\n    type: openai\n    endpoint_url: http://x\n"
                        "    temprature: 0.5\n")
    with pytest.raises(ConfigError) as e:
        load_settings(p, env={})
    assert "models.0.temprature" in str(e.value) and "\n" not in str(e.value)


def test_bad_type_and_range(tmp_path):
    p = write(tmp_path, "models:\n  - name: a\n    type: ollama\n")
    with pytest.raises(ConfigError, match=r"models\.0\.type"):
        load_settings(p, env={})
    p = write(tmp_path, "models:\n  - name: a\n    type: llamacpp\n    parameters:\n"
                        "      temperature: 9\n")
    with pytest.raises(ConfigError, match=r"models\.0\.parameters\.temperature"):
        load_settings(p, env={})


def test_invalid_yaml_and_missing_file(tmp_path):
    p = write(tmp_path, "models: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(p, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_default_model_must_exist(tmp_path):
    p = write(tmp_path, "models:\n  - {name: a, type: llamacpp}\ndefault_model: b\n")
    with pytest.raises(ConfigError, match="default_model"):
        load_settings(p, env={})


def test_endpoint_env_var_points_the_app_at_a_remote_server():
    s = load_settings(ROOT / "spaces.yaml", env={
        "CHATUI_ENDPOINT_URL": "http://gpu-box:8000/v1",
        "CHATUI_ENDPOINT_MODEL": "meta-llama/Llama-3.1-8B-Instruct"})
    m = s.model(None)
    assert m.type == "openai" and m.endpoint_url == "http://gpu-box:8000/v1"
    assert m.model_id == "meta-llama/Llama-3.1-8B-Instruct"
    assert len(s.models) == 2  # the bundled model stays available in the dropdown


def test_env_overrides_storage_and_port():
    s = load_settings(ROOT / "spaces.yaml", env={"CHATUI_DB_PATH": "/tmp/x.db", "PORT": "9000",
                                                  "CHATUI_MODEL": s_name()})
    assert s.storage.db_path == "/tmp/x.db" and s.server.port == 9000


def s_name():
    return load_settings(ROOT / "spaces.yaml", env={}).models[0].name


def test_bad_config_gives_one_line_at_startup_not_a_traceback(tmp_path):
    p = write(tmp_path, "models:\n  - name: a\n    type: llamacpp\n    n_threads: zero\n")
    r = subprocess.run([sys.executable, "app.py"], cwd=ROOT, capture_output=True, text=True,
                       env={"CHATUI_CONFIG": str(p), "PATH": "/usr/bin:/bin",
                            "GRADIO_ANALYTICS_ENABLED": "False"}, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "models.0.n_threads" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_gradio_server_variables_and_ours_taking_precedence():
    s = load_settings(ROOT / "spaces.yaml", env={"GRADIO_SERVER_PORT": "7001",
                                                  "GRADIO_SERVER_NAME": "127.0.0.1"})
    assert (s.server.host, s.server.port) == ("127.0.0.1", 7001)
    s = load_settings(ROOT / "spaces.yaml", env={"GRADIO_SERVER_PORT": "7001",
                                                  "CHATUI_PORT": "7002"})
    assert s.server.port == 7002
