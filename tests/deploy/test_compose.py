"""docker-compose.yml: the app beside a vLLM OpenAI server (default) or TGI (profile `tgi`);
profile `replicas`: PostgreSQL + two app replicas + HAProxy with deploy/haproxy.cfg.

No Docker engine here: the file is checked as data (YAML with compose's `${VAR:-default}`
interpolation applied), and its chatui environment is fed to the real config loader.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from chatui.config import load_settings
from tests.conftest import ROOT
from tests.deploy.dockerfile import Dockerfile

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
_INTERP = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value, env: dict[str, str] | None = None):
    """Compose's `${VAR}` / `${VAR:-default}` with the given (default: empty) environment."""
    env = env or {}
    if isinstance(value, str):
        return _INTERP.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def _gpu(service: dict) -> list[dict]:
    return service["deploy"]["resources"]["reservations"]["devices"]


def test_default_stack_is_chatui_plus_vllm_on_a_gpu():
    default = {n for n, s in SERVICES.items() if not s.get("profiles")}
    assert default == {"chatui", "vllm"}
    vllm = SERVICES["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    assert any(a.startswith("--model=") for a in vllm["command"])
    assert _gpu(vllm) == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "http://127.0.0.1:8000/health" in " ".join(vllm["healthcheck"]["test"])
    assert vllm["environment"]["HF_TOKEN"] == "${HF_TOKEN:-}"


def test_chatui_waits_for_a_healthy_model_server_and_keeps_data_in_a_volume():
    app = SERVICES["chatui"]
    assert app["build"]["context"] == "."
    assert app["depends_on"] == {"vllm": {"condition": "service_healthy"}}
    env = app["environment"]
    assert env["CHATUI_ENDPOINT_URL"] == "http://vllm:8000/v1"
    assert env["HF_TOKEN"] == "${HF_TOKEN:-}"                 # from the host environment
    assert env["CHATUI_DB_PATH"].startswith("/data/")
    volume, _, mount = app["volumes"][0].partition(":")
    assert mount == "/data" and volume in COMPOSE["volumes"]
    assert interpolate(app["ports"]) == ["7860:7860"]


def test_chatui_healthcheck_is_the_dockerfiles():
    health = Dockerfile.read(ROOT / "Dockerfile").stages[-1].all("HEALTHCHECK")[0].args
    test = SERVICES["chatui"]["healthcheck"]["test"]
    assert test[0] == "CMD" and health == "CMD " + " ".join(
        f'"{a}"' if " " in a else a for a in test[1:])


def test_tgi_is_a_profile_with_its_own_chatui():
    tgi, app = SERVICES["tgi"], SERVICES["chatui-tgi"]
    assert tgi["profiles"] == ["tgi"] and app["profiles"] == ["tgi"]
    assert tgi["image"].startswith("ghcr.io/huggingface/text-generation-inference:")
    assert any(a.startswith("--model-id=") for a in tgi["command"])
    assert _gpu(tgi)[0]["capabilities"] == ["gpu"]
    assert "/health" in " ".join(tgi["healthcheck"]["test"])
    assert app["depends_on"] == {"tgi": {"condition": "service_healthy"}}
    assert app["environment"]["CHATUI_ENDPOINT_URL"] == "http://tgi:80/v1"


@pytest.mark.parametrize("service", ["chatui", "chatui-tgi"])
def test_the_app_reads_the_compose_environment_as_intended(service):
    env = interpolate(SERVICES[service]["environment"], {"MODEL": "org/served-model"})
    model_arg = next(a for a in interpolate(
        SERVICES["vllm" if service == "chatui" else "tgi"]["command"], {"MODEL": "org/served-model"})
        if a.startswith(("--served-model-name=", "--model-id=")))
    settings = load_settings(ROOT / "spaces.yaml", env=env)
    remote = settings.models[0]
    assert settings.default_model == remote.name == "org/served-model"
    assert remote.model_id == model_arg.split("=", 1)[1]     # the name the server answers to
    assert remote.endpoint_url == env["CHATUI_ENDPOINT_URL"] and remote.type == "openai"
    assert len(settings.models) > 1                            # the bundled CPU model stays
    assert settings.storage.db_path == "/data/chatui.db"


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_compose_validates_the_file_when_available():
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    r = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config",
                        "-q"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


# -- profile `replicas`: PostgreSQL + two app replicas + the proxy ------------------------------

REPLICAS = ["chatui-1", "chatui-2"]


def _profile(name: str) -> set[str]:
    return {n for n, s in SERVICES.items() if name in (s.get("profiles") or [])}


def test_replicas_profile_is_postgres_two_replicas_and_the_proxy():
    assert _profile("replicas") == {"postgres", *REPLICAS, "proxy"}
    pg = SERVICES["postgres"]
    assert interpolate(pg["image"]).startswith("postgres:")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    mount = pg["volumes"][0].split(":")
    assert mount[1] == "/var/lib/postgresql/data" and mount[0] in COMPOSE["volumes"]


def test_each_tier_waits_for_the_health_of_the_one_below():
    for name in REPLICAS:
        app = SERVICES[name]
        assert app["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                     "vllm": {"condition": "service_healthy"}}
        assert "/healthz" in " ".join(app["healthcheck"]["test"])    # the Dockerfile's check
        assert "ports" not in app                                     # only via the proxy
    assert SERVICES["proxy"]["depends_on"] == {
        name: {"condition": "service_healthy"} for name in REPLICAS}


def test_replicas_share_the_database_the_secret_and_the_data_volume():
    envs = [SERVICES[name]["environment"] for name in REPLICAS]
    for key in ("CHATUI_DATABASE_URL", "CHATUI_SECRET", "CHATUI_ENDPOINT_URL", "HF_TOKEN"):
        assert envs[0][key] == envs[1][key], key
    assert envs[0]["CHATUI_SECRET"] == "${CHATUI_SECRET:-}"         # from the host, never here
    # The URL reaches the compose postgres with its user, password and database.
    pg = interpolate(SERVICES["postgres"]["environment"], {"POSTGRES_PASSWORD": "pw"})
    url = interpolate(envs[0]["CHATUI_DATABASE_URL"], {"POSTGRES_PASSWORD": "pw"})
    assert url == (f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
                   f"@postgres:5432/{pg['POSTGRES_DB']}")
    # One /data for both: without CHATUI_SECRET they share the key file the first creates.
    assert SERVICES[REPLICAS[0]]["volumes"] == SERVICES[REPLICAS[1]]["volumes"]
    assert SERVICES[REPLICAS[0]]["volumes"][0].endswith(":/data")
    assert SERVICES[REPLICAS[0]]["volumes"] != SERVICES["chatui"]["volumes"]


@pytest.mark.parametrize("name", REPLICAS)
def test_a_replica_reads_postgresql_from_its_environment(name):
    env = interpolate(SERVICES[name]["environment"],
                      {"CHATUI_SECRET": "s" * 40, "POSTGRES_PASSWORD": "pw"})
    settings = load_settings(ROOT / "spaces.yaml", env=env)
    assert settings.storage.url == "postgresql://chatui:pw@postgres:5432/chatui"
    assert settings.models[0].endpoint_url == "http://vllm:8000/v1"
    assert env["CHATUI_REPLICA_ID"] == name


def test_proxy_runs_the_shipped_haproxy_config_in_front_of_these_replicas():
    proxy = SERVICES["proxy"]
    assert interpolate(proxy["image"]) == "haproxy:2.6"
    assert proxy["volumes"] == ["./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    host, _, inside = interpolate(proxy["ports"])[0].partition(":")
    assert host == "7860"
    cfg = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert f"bind :{inside}\n" in cfg
    # each replica service is a server of the backend, its cookie named as the replica
    servers = re.findall(r"^\s*server (\S+) (\S+):7860 cookie (\S+)$", cfg, re.M)
    assert servers == [(n, n, n) for n in REPLICAS]
    assert [SERVICES[n]["environment"]["CHATUI_REPLICA_ID"] for n in REPLICAS] == REPLICAS
