"""``python -m chatui config-docs`` — the configuration reference, generated from the settings model.

Every key of `spaces.yaml` comes from the pydantic models in chatui/config.py and
backends/spec.py: key, type (with its bounds), default and the Field description. A field
without a description falls back to `FALLBACK_DESCRIPTIONS` here, then to nothing (the type and
default still say a lot). The environment-variable table lists every variable the code reads
(found by scanning the source for ``env.get("NAME")``-style reads), described by `ENV_DOCS`.

README.md carries the output between the `config-reference` markers; a test keeps the two equal:
``python -m chatui config-docs --write README.md`` regenerates it.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .config import Settings

HELP = "Print the configuration reference (spaces.yaml keys and environment variables) as Markdown."

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
REGENERATE = "python -m chatui config-docs --write README.md"

# Used only where the model's Field has no description (a description in the model wins).
FALLBACK_DESCRIPTIONS: dict[str, str] = {
    "models": "The models offered in the menu (at least one); see `models[]` below.",
    "default_model": "Name of the model selected at start (default: the first one).",
    "models[].description": "Shown under the model menu.",
    "models[].system_prompt": "System message sent first in every conversation.",
    "models[].parameters": "Sampling defaults; see `models[].parameters` below.",
    "models[].engine": "vllm: engine arguments; see `models[].engine` below.",
    "models[].parameters.temperature": "Sampling temperature (0 = greedy).",
    "models[].parameters.top_p": "Nucleus sampling: keep the smallest token set with this probability.",
    "models[].parameters.max_new_tokens": "Longest answer, in tokens.",
    "models[].parameters.repetition_penalty": "Penalise repeated tokens (>1); small models need ~1.1–1.3.",
    "models[].parameters.stop": "Strings that end the answer.",
    "models[].parameters.seed": "Fixed seed for reproducible sampling.",
    "models[].engine.dtype": "vllm `dtype` (auto, bfloat16, float16, ...).",
    "models[].engine.max_model_len": "vllm `max_model_len` (default: the model's).",
    "models[].engine.gpu_memory_utilization": "vllm: share of GPU memory the engine may take.",
    "models[].engine.tensor_parallel_size": "vllm: GPUs to shard the model over.",
    "models[].engine.enable_prefix_caching": "vllm: reuse the KV cache of shared prompt prefixes.",
    "models[].engine.quantization": "vllm `quantization` (awq, gptq, fp8, ...).",
    "models[].engine.max_num_seqs": "vllm: sequences batched at once.",
    "models[].engine.enforce_eager": "vllm: no CUDA graphs (slower, less memory, faster start).",
    "websearch": "Web search; see `websearch` below.",
    "websearch.max_redirects": "Redirects followed per page at most.",
    "storage": "Where conversations and feedback go; see `storage` below.",
    "storage.feedback_every_minutes": "Minutes between feedback pushes to `feedback_repo`.",
    "space": "Hugging Face Space metadata (README front matter); see `space` below.",
    "space.title": "Space title.",
    "space.emoji": "Space emoji.",
    "space.colorFrom": "Thumbnail gradient start: red, yellow, green, blue, indigo, purple, pink, gray.",
    "space.colorTo": "Thumbnail gradient end (same colours).",
    "space.short_description": "One line on the Space card (the Hub shows 60 characters).",
    "space.suggested_hardware": "Hardware suggested to people who duplicate the Space (cpu-basic, t4-small, a10g-small, ...).",
    "space.hf_oauth": "Sign in with Hugging Face (conversations follow the account).",
    "space.license": "License shown on the Space.",
    "limits": "Abuse limits per user; see `limits` below.",
    "limits.max_concurrent_per_user": "Answers one user may generate at once.",
    "limits.login_required": "Only signed-in users may chat (needs `space.hf_oauth`).",
    "conversations": "How a new chat starts and is named; see `conversations` below.",
    "server": "HTTP server; see `server` below.",
    "server.max_threads": "Worker threads for Gradio's synchronous handlers.",
}

# Every environment variable the code reads (scanned), described. Order is the table's order.
ENV_DOCS: dict[str, str] = {
    "CHATUI_CONFIG": "Path of the config file (default: `spaces.yaml` next to `app.py`).",
    "CHATUI_ENDPOINT_URL": "Adds a remote model at this URL first in the menu and makes it the default.",
    "CHATUI_ENDPOINT_TYPE": "`openai` (default) or `tgi`: the protocol of `CHATUI_ENDPOINT_URL`.",
    "CHATUI_ENDPOINT_MODEL": "Model id sent to that server; also its name in the menu.",
    "CHATUI_MODEL": "Name of the default model (`default_model`).",
    "CHATUI_DB_PATH": "`storage.db_path`.",
    "CHATUI_AUTO_TITLES": "`conversations.auto_titles` (`0` / `false`: a new chat keeps its first words as its title).",
    "CHATUI_DATABASE_URL": "`storage.url` (e.g. `postgresql://chatui:PASSWORD@db:5432/chatui` for replicas). May hold a password: prefer it to the file.",
    "CHATUI_FEEDBACK_REPO": "`storage.feedback_repo`.",
    "CHATUI_HOST": "`server.host`.",
    "CHATUI_PORT": "`server.port`.",
    "GRADIO_SERVER_NAME": "`server.host` when `CHATUI_HOST` is unset (Gradio's own variable).",
    "GRADIO_SERVER_PORT": "`server.port` when `CHATUI_PORT` is unset (Gradio's own variable).",
    "CHATUI_SECRET": "Key that encrypts each browser's identity token in its localStorage. Unset: a random key kept in `.chatui_secret` beside the SQLite file. Set the same value on every replica. Secret: environment only.",
    "CHATUI_REPLICA_ID": "Name of this replica behind a proxy: sent as the `X-Chatui-Replica` response header when set, and the folder of its feedback files (default: hostname-pid). Unique per replica.",
    "PORT": "`server.port` when `CHATUI_PORT` is unset.",
    "CHATUI_ADMINS": "Comma-separated Hugging Face user names who may open the feedback dashboard when login is on.",
    "CHATUI_ADMIN_TOKEN": "Without login: the secret (16+ characters) that unlocks the Feedback tab; unset, nobody sees it. Secret: environment only.",
    "SPACE_AUTHOR_NAME": "Set by Spaces: the owner, who may always open the dashboard.",
    "HF_TOKEN": "Hub token: feedback dataset pushes, and the default `api_key_env` of remote models. Secret: environment only.",
    "GRADIO_ANALYTICS_ENABLED": "`app.py` sets `False` unless it is set.",
    "GRADIO_ANALYTICS_CACHE_FREQUENCY": "Events between Gradio's monitoring summaries; the app sets 10000 unless it is set (the default 1 costs CPU on every event).",
    "GRADIO_IS_E2E_TEST": "Gradio's own: keeps a closed session's state 1 s instead of an hour; honoured as Gradio does.",
    "GRADIO_TEMP_DIR": "Gradio's upload folder (default: `<tmp>/gradio`); attached files are read only from there (Gradio's own variable).",
}
_ENV_READ = re.compile(
    r"""(?:\benviron|\benv|\bgetenv)\s*(?:\.get\(|\.setdefault\(|\.pop\(|\[|\()\s*["']([A-Z][A-Z0-9_]*)["']""")

SECTIONS_TITLE = {
    "": "Top level",
    "models[]": "`models[]` — one entry per model",
    "models[].parameters": "`models[].parameters` — sampling defaults",
    "models[].engine": "`models[].engine` — vLLM engine (type: vllm)",
}


# --- rendering helpers -----------------------------------------------------------------------

def _submodel(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the BaseModel inside `annotation`, whether it is a list of them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if typing.get_origin(annotation) is list:
        (inner,) = typing.get_args(annotation) or (None,)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner, True
    return None, False


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        name = " or ".join(_type_name(a) for a in rest)
        return f"{name}, optional" if len(rest) < len(args) else name
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "section"
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _bounds(metadata: list[Any], is_list: bool = False) -> str:
    parts = []
    for m in metadata:
        if isinstance(m, at.Ge):
            parts.append(f"≥ {m.ge:g}" if isinstance(m.ge, float) else f"≥ {m.ge}")
        elif isinstance(m, at.Gt):
            parts.append(f"> {m.gt:g}" if isinstance(m.gt, float) else f"> {m.gt}")
        elif isinstance(m, at.Le):
            parts.append(f"≤ {m.le:g}" if isinstance(m.le, float) else f"≤ {m.le}")
        elif isinstance(m, at.Lt):
            parts.append(f"< {m.lt:g}" if isinstance(m.lt, float) else f"< {m.lt}")
        elif isinstance(m, at.MinLen) and m.min_length:
            unit = "item" if is_list else "character"
            parts.append("non-empty" if m.min_length == 1 and not is_list
                         else f"at least {m.min_length} {unit}{'s' if m.min_length > 1 else ''}")
        elif isinstance(m, at.MaxLen):
            parts.append(f"at most {m.max_length} {'items' if is_list else 'characters'}")
    return ", ".join(parts)


def _value(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, (list, tuple)):
        return "`[]`" if not value else "`[" + ", ".join(map(str, value)) + "]`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    return f"`{value}`"


def _default(field: Any, key: str) -> str:
    if key == "default_model":
        return "first model"
    if field.default is not PydanticUndefined:
        return _value(field.default)
    if field.default_factory is not None:
        return _value(field.default_factory())
    return "**required**"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _tables(model: type[BaseModel], prefix: str, out: list[tuple[str, list[list[str]]]]) -> None:
    rows: list[list[str]] = []
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub, is_list = _submodel(field.annotation)
        if sub is not None:
            child = f"{key}[]" if is_list else key
            nested.append((sub, f"{child}."))
            type_ = f"list of `{child}` entries" if is_list else f"section `{child}`"
        else:
            type_ = _type_name(field.annotation)
        bounds = _bounds(field.metadata, typing.get_origin(field.annotation) is list)
        if bounds:
            type_ = f"{type_} ({bounds})"
        desc = field.description or FALLBACK_DESCRIPTIONS.get(key, "")
        rows.append([f"`{key}`", type_, _default(field, key), desc])
    out.append((prefix.rstrip("."), rows))
    for sub, sub_prefix in nested:
        _tables(sub, sub_prefix, out)


def settings_tables() -> list[tuple[str, list[list[str]]]]:
    out: list[tuple[str, list[list[str]]]] = []
    _tables(Settings, "", out)
    return out


def env_vars_in_source(root: Path = ROOT) -> list[str]:
    """Names the code reads from the environment (chatui/, backends/, app.py), sorted."""
    found: set[str] = set()
    files = [root / "app.py", *sorted((root / "chatui").rglob("*.py")),
             *sorted((root / "backends").rglob("*.py"))]
    for path in files:
        if path.name == "config_docs.py" or not path.is_file():
            continue
        found.update(_ENV_READ.findall(path.read_text(encoding="utf-8")))
    return sorted(found)


def render(root: Path = ROOT) -> str:
    """The Markdown that goes between the README markers (no trailing marker)."""
    lines = [f"<!-- generated from chatui/config.py; regenerate: {REGENERATE} -->", "",
             "Keys of `spaces.yaml` (unknown keys are an error). Sections are optional; "
             "`models` is required.", ""]
    for section, rows in settings_tables():
        title = SECTIONS_TITLE.get(section, f"`{section}`")
        lines += [f"### {title}", "", "| key | type | default | description |",
                  "|---|---|---|---|"]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    used = env_vars_in_source(root)
    names = [n for n in ENV_DOCS if n in used]
    names += [n for n in used if n not in ENV_DOCS]
    lines += ["### Environment variables", "",
              "They override `spaces.yaml`. Secrets (tokens, API keys) are only ever read from "
              "the environment: each remote model names its own in `api_key_env`.", "",
              "| variable | effect |", "|---|---|"]
    lines += [f"| `{n}` | {_cell(ENV_DOCS.get(n, '(undocumented)'))} |" for n in names]
    lines.append("")
    return "\n".join(lines)


def block(root: Path = ROOT) -> str:
    return f"{START}\n{render(root)}{END}"


def readme_block(text: str) -> str | None:
    """The current block in README text (markers included), or None."""
    m = re.search(re.escape(START) + r".*?" + re.escape(END), text, re.S)
    return m.group(0) if m else None


def write_readme(path: Path, root: Path = ROOT) -> bool:
    """Replace the block in `path` (or append a section with it). True if the file changed."""
    text = path.read_text(encoding="utf-8")
    new_block = block(root)
    current = readme_block(text)
    if current is not None:
        updated = text.replace(current, new_block)
    else:
        updated = text.rstrip("\n") + "\n\n## Configuration reference\n\n" + new_block + "\n"
    if updated == text:
        return False
    path.write_text(updated, encoding="utf-8")
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="README", type=Path,
                       help="update the block between the config-reference markers in this file")
    group.add_argument("--check", metavar="README", type=Path,
                       help="exit 1 if the block in this file is out of date")


def run(args: argparse.Namespace) -> int:
    if args.write:
        changed = write_readme(args.write)
        print(f"{args.write}: {'updated' if changed else 'already up to date'}")
        return 0
    if args.check:
        current = readme_block(args.check.read_text(encoding="utf-8"))
        if current != block():
            print(f"{args.check}: configuration reference is out of date; run: {REGENERATE}",
                  file=sys.stderr)
            return 1
        print(f"{args.check}: configuration reference is up to date")
        return 0
    sys.stdout.write(block() + "\n")
    return 0
