"""Shared fixtures: the bundled model, a real llama.cpp server on loopback, a Gradio app."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# No network here: never phone home, never reach for the Hub.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
# Chats keep their first words as their title in tests, which find chats by them; the tests
# of model-written titles turn it on (issue 11).
os.environ.setdefault("CHATUI_AUTO_TITLES", "0")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="session")
def gguf_path() -> str:
    from backends.llamacpp import bundled_gguf

    return str(bundled_gguf())


def start_llama_server(gguf: str, n_ctx: int = 2048) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--interrupt_requests", "False", "--n_threads", str(os.cpu_count() or 2)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v1/models", proc=proc)
    except Exception:
        proc.kill()
        raise
    return proc, url


@pytest.fixture(scope="session")
def llama_server(gguf_path):
    """A real `python -m llama_cpp.server` serving the bundled GGUF on loopback."""
    proc, url = start_llama_server(gguf_path)
    yield url
    stop_process(proc)


@pytest.fixture(scope="session")
def llama_backend(gguf_path):
    from backends.llamacpp import LlamaCppBackend
    from backends.base import GenerationParams

    backend = LlamaCppBackend("smollm2", gguf_path, context_length=2048,
                              defaults=GenerationParams(temperature=0.6, top_p=0.9,
                                                        max_new_tokens=64,
                                                        repetition_penalty=1.2))
    backend.load()
    return backend


@pytest.fixture
def wire_server():
    from tests.wire import WireServer

    with WireServer() as server:
        yield server


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright's sync API (never `playwright install`).

    Module-scoped, not session-scoped: the sync API runs its own event loop, which must not
    outlive a module and overlap the asyncio tests that follow."""
    import shutil

    playwright = pytest.importorskip("playwright.sync_api")
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed (apt-get install -y chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


APP_CONFIG = """
models:
  - name: smol
    type: llamacpp
    model_path: bundled
    context_length: 2048
    parallel: 2
    system_prompt: "You are a helpful assistant."
    parameters: {temperature: 0.6, top_p: 0.9, max_new_tokens: 48, repetition_penalty: 1.2}
storage:
  db_path: {db}
websearch:
  enabled: true
"""


def start_app(tmp_dir: Path, config: str | None = None, extra_env: dict | None = None
              ) -> tuple[subprocess.Popen, str]:
    """`python app.py` as a user runs it, on a free port, with its own config and DB."""
    cfg = tmp_dir / "spaces.yaml"
    cfg.write_text((config or APP_CONFIG).replace("{db}", str(tmp_dir / "chat.db")))
    port = free_port()
    env = {**os.environ, "CHATUI_CONFIG": str(cfg), "CHATUI_PORT": str(port),
           "CHATUI_HOST": "127.0.0.1", **(extra_env or {})}
    log = open(tmp_dir / "app.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url, timeout=90, proc=proc)
    except Exception:
        proc.kill()
        raise RuntimeError((tmp_dir / "app.log").read_text()[-3000:])
    return proc, url


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    proc, url = start_app(tmp_path_factory.mktemp("app"))
    yield url
    stop_process(proc)
