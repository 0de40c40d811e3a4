"""`python -m chatui space build|deploy`.

`build` is tested for real: the README front matter parses and matches spaces.yaml, the folder
holds exactly the Space's files, and the app starts from it. The Hub is unreachable from here,
so `deploy` runs against a recording fake in place of huggingface_hub's HfApi: the tests assert
the calls and their arguments (what a real HfApi would have been asked to do).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from chatui import cli, space
from chatui.config import load_settings
from tests.conftest import ROOT, free_port, stop_process


def front_matter(readme: Path) -> tuple[dict, str]:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


CUSTOM = """
models:
  - name: local
    type: llamacpp
    model_path: bundled
  - name: gguf from the hub
    type: llamacpp
    hf_repo: bartowski/SmolLM2-135M-Instruct-GGUF
    hf_file: "*Q4_K_M.gguf"
  - name: big
    type: openai
    endpoint_url: https://router.huggingface.co/v1
    model_id: meta-llama/Llama-3.1-8B-Instruct:cerebras
    api_key_env: ROUTER_KEY
  - name: gpt
    type: openai
    endpoint_url: https://api.example.com/v1
    model_id: some-model
    api_key_env: EXAMPLE_API_KEY
  - name: gpu
    type: vllm
    model_path: Qwen/Qwen2.5-1.5B-Instruct
default_model: big
storage:
  feedback_repo: me/chat-feedback
space:
  title: My Chat
  emoji: 🦙
  colorFrom: green
  colorTo: blue
  short_description: A test Space
  suggested_hardware: t4-small
  hf_oauth: true
  license: mit
"""


def test_build_writes_front_matter_that_matches_spaces_yaml(tmp_path):
    result = space.build(tmp_path / "out")
    meta, body = front_matter(tmp_path / "out" / "README.md")
    settings = load_settings(ROOT / "spaces.yaml", env={})
    sp = settings.space
    assert meta == result.front_matter
    assert {k: meta[k] for k in ("title", "emoji", "colorFrom", "colorTo", "hf_oauth",
                                 "suggested_hardware", "short_description", "license")} == \
        {"title": sp.title, "emoji": sp.emoji, "colorFrom": sp.colorFrom, "colorTo": sp.colorTo,
         "hf_oauth": sp.hf_oauth, "suggested_hardware": sp.suggested_hardware,
         "short_description": sp.short_description, "license": sp.license}
    assert meta["sdk"] == "docker" and meta["app_port"] == 7860
    # The bundled GGUF is SmolLM2-135M-Instruct; no feedback dataset is configured.
    assert meta["models"] == [space.BUNDLED_MODEL_ID]
    assert "datasets" not in meta and "hf_oauth_expiration_minutes" not in meta
    assert f"# {sp.emoji} {sp.title}" in body
    for m in settings.models:
        assert m.name in body
    assert "/healthz" in body and "HF_TOKEN" in body


def test_build_collects_hub_models_datasets_and_oauth(tmp_path):
    cfg = tmp_path / "custom.yaml"
    cfg.write_text(CUSTOM, encoding="utf-8")
    space.build(tmp_path / "out", cfg)
    meta, body = front_matter(tmp_path / "out" / "README.md")
    assert meta["models"] == [space.BUNDLED_MODEL_ID, "bartowski/SmolLM2-135M-Instruct-GGUF",
                              "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"]
    assert meta["datasets"] == ["me/chat-feedback"]
    assert meta["hf_oauth"] is True and meta["hf_oauth_expiration_minutes"] > 0
    assert (meta["title"], meta["emoji"], meta["colorFrom"], meta["colorTo"], meta["license"],
            meta["suggested_hardware"]) == ("My Chat", "🦙", "green", "blue", "mit", "t4-small")
    assert "`ROUTER_KEY`" in body and "`EXAMPLE_API_KEY`" in body and "me/chat-feedback" in body
    # The given config becomes the Space's spaces.yaml, whatever its local name.
    assert (tmp_path / "out" / "spaces.yaml").read_text(encoding="utf-8") == CUSTOM


def test_local_paths_are_not_mistaken_for_hub_ids(tmp_path):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    cfg = tmp_path / "spaces.yaml"
    cfg.write_text("models:\n  - {name: a, type: vllm, model_path: models/mine}\n"
                   "  - {name: b, type: llamacpp, model_path: ./x/y.gguf}\n"
                   "  - {name: c, type: openai, endpoint_url: 'http://h/v1', model_id: gpt-4o}\n")
    assert space.hub_models(load_settings(cfg, env={}), tmp_path) == []


def test_build_folder_holds_only_the_space_files(tmp_path):
    result = space.build(tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", "Dockerfile", *space.APP_FILES])
    assert (out / "Dockerfile").read_bytes() == (ROOT / "Dockerfile").read_bytes()
    assert not list(out.rglob("__pycache__")) and not list(out.rglob("*.pyc"))
    for forbidden in ("tests", "data", ".git", "bench", ".ci"):
        assert not (out / forbidden).exists()
    tracked = subprocess.run(["git", "ls-files", "chatui", "backends"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    for path in tracked:
        if (ROOT / path).exists():
            assert (out / path).is_file(), path
    assert set(result.files) == {p.relative_to(out).as_posix() for p in out.rglob("*")
                                 if p.is_file()}


def test_build_refuses_a_non_empty_folder_and_a_bad_config(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli.main(["space", "build", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert cli.main(["space", "build", str(out), "--force"]) == 0
    assert (out / "README.md").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - {name: a, type: llamacpp, temprature: 1}\n")
    assert cli.main(["space", "build", str(tmp_path / "o2"), "--config", str(bad)]) == 2
    assert "temprature" in capsys.readouterr().err
    colours = tmp_path / "colours.yaml"
    colours.write_text("models: [{name: a, type: llamacpp}]\nspace: {colorFrom: orange}\n")
    assert cli.main(["space", "build", str(tmp_path / "o3"), "--config", str(colours)]) == 2
    assert "colorFrom" in capsys.readouterr().err


@pytest.mark.slow
def test_app_starts_from_the_built_folder(tmp_path):
    out = tmp_path / "space"
    assert cli.main(["space", "build", str(out)]) == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATUI_")}
    env.update(CHATUI_PORT=str(port), CHATUI_HOST="127.0.0.1",
               CHATUI_DB_PATH=str(tmp_path / "db" / "chatui.db"), HF_HUB_OFFLINE="1")
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=out, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline, status = time.monotonic() + 90, None
        while time.monotonic() < deadline and status != 200:
            assert proc.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).status_code
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert status == 200, (tmp_path / "app.log").read_text()[-3000:]
        if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
            # It ran the folder's own code, not this checkout's.
            assert (out / "chatui" / "__pycache__").is_dir()
    finally:
        stop_process(proc)
        log.close()


# --- deploy, against a recording fake of huggingface_hub.HfApi (the Hub is unreachable) ---

class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: records every call; uploads list the folder."""

    instances: list[RecordingHfApi] = []

    def __init__(self, token=None, **kwargs):
        self.token = token
        self.calls: list[tuple[str, tuple, dict]] = []
        RecordingHfApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", (repo_id,), kwargs))
        return f"https://huggingface.co/spaces/{repo_id}"

    def add_space_secret(self, repo_id, key, value, **kwargs):
        self.calls.append(("add_space_secret", (repo_id, key, value), kwargs))

    def add_space_variable(self, repo_id, key, value, **kwargs):
        self.calls.append(("add_space_variable", (repo_id, key, value), kwargs))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        readme = (folder / "README.md").read_text(encoding="utf-8")
        self.calls.append(("upload_folder", (), {**kwargs, "_files": files, "_readme": readme}))


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    RecordingHfApi.instances.clear()
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    for key in list(os.environ):
        if key.startswith("CHATUI_") or key in ("HF_TOKEN", "ROUTER_KEY", "EXAMPLE_API_KEY"):
            monkeypatch.delenv(key)
    return RecordingHfApi.instances


def test_deploy_creates_sets_secrets_and_variables_then_uploads(tmp_path, fake_hub, monkeypatch,
                                                               capsys):
    cfg = tmp_path / "custom.yaml"
    cfg.write_text(CUSTOM, encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("ROUTER_KEY", "router-secret")          # a model's api_key_env
    monkeypatch.setenv("CHATUI_MODEL", "big")                  # a plain variable
    monkeypatch.setenv("CHATUI_ADMINS", "alice,bob")
    monkeypatch.setenv("CHATUI_SEARXNG_API_KEY", "k")          # secret-looking CHATUI_* name
    monkeypatch.setenv("CHATUI_DB_PATH", "/home/me/chat.db")   # this machine only: not copied
    monkeypatch.setenv("CHATUI_CONFIG", str(cfg))

    assert cli.main(["space", "deploy", "--repo", "me/my-chat", "--config", str(cfg),
                     "--private"]) == 0
    (api,) = fake_hub
    assert api.token == "hf_secret_value"
    names = [c[0] for c in api.calls]
    assert names[0] == "create_repo" and names[-1] == "upload_folder"
    assert api.calls[0] == ("create_repo", ("me/my-chat",),
                            {"repo_type": "space", "space_sdk": "docker", "exist_ok": True,
                             "private": True})
    secrets = {c[1][1]: c[1][2] for c in api.calls if c[0] == "add_space_secret"}
    variables = {c[1][1]: c[1][2] for c in api.calls if c[0] == "add_space_variable"}
    assert secrets == {"HF_TOKEN": "hf_secret_value", "ROUTER_KEY": "router-secret",
                       "CHATUI_SEARXNG_API_KEY": "k"}              # EXAMPLE_API_KEY is unset
    assert variables == {"CHATUI_MODEL": "big", "CHATUI_ADMINS": "alice,bob"}
    assert all(c[1][0] == "me/my-chat" for c in api.calls if c[0].startswith("add_space"))
    upload = api.calls[-1][2]
    assert upload["repo_id"] == "me/my-chat" and upload["repo_type"] == "space"
    assert upload["delete_patterns"] == ["*"]
    assert {"README.md", "Dockerfile", "app.py", "spaces.yaml", "pyproject.toml",
            "chatui/app_factory.py", "backends/base.py"} <= set(upload["_files"])
    assert not any(f.startswith(("tests/", "data/", ".git")) for f in upload["_files"])
    assert "datasets:\n- me/chat-feedback" in upload["_readme"]
    out = capsys.readouterr()
    assert "hf_secret_value" not in out.out + out.err and "router-secret" not in out.out + out.err
    assert "CHATUI_DB_PATH" in out.out  # told it was left out
    assert not Path(upload["folder_path"]).exists()  # the temporary build is cleaned up


def test_deploy_without_a_token_stops_before_contacting_the_hub(fake_hub, capsys):
    assert cli.main(["space", "deploy", "--repo", "me/chat"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    assert fake_hub == []


def test_deploy_defaults_to_the_hubs_visibility_and_rejects_bad_repo_ids(fake_hub, monkeypatch,
                                                                         capsys):
    monkeypatch.setenv("HF_TOKEN", "t")
    assert cli.main(["space", "deploy", "--repo", "me/chat"]) == 0
    assert fake_hub[0].calls[0][2]["private"] is None
    assert [c[1][1] for c in fake_hub[0].calls if c[0] == "add_space_secret"] == ["HF_TOKEN"]
    assert cli.main(["space", "deploy", "--repo", "not-a-repo-id"]) == 2
    assert "OWNER/NAME" in capsys.readouterr().err


def test_dry_run_needs_no_token_and_calls_nothing(fake_hub, capsys):
    assert cli.main(["space", "deploy", "--repo", "me/chat", "--dry-run"]) == 0
    assert fake_hub == []
    assert "README.md" in capsys.readouterr().out
