"""spaces.yaml, validated. The one config file; environment variables override it.

Secrets (HF_TOKEN, endpoint keys) are never read from the file: only from the environment.
A bad file raises `ConfigError` with one line naming the offending key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from backends.spec import ModelSpec

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "spaces.yaml"


class ConfigError(Exception):
    """One clear line about what is wrong in the config."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebSearchSettings(_Section):
    enabled: bool = Field(True, description="Show the 'Search the web' toggle.")
    provider: str = Field("ddgs", description="ddgs or searxng.")
    searxng_url: str | None = Field(None, description="SearXNG base URL (provider: searxng).")
    max_results: int = Field(8, ge=1, le=20, description="Pages to fetch per search.")
    region: str = Field("wt-wt", description="ddgs region.")
    safesearch: str = Field("moderate", description="ddgs safesearch: on, moderate, off.")
    cache_ttl: float = Field(3600.0, ge=0, description="Seconds a query's results are cached.")
    search_timeout: float = Field(5.0, gt=0, description="Seconds for the search engine call.")
    page_timeout: float = Field(3.5, gt=0, description="Seconds per page fetch.")
    deadline: float = Field(6.0, gt=0, description="Seconds for all page fetches together.")
    max_page_bytes: int = Field(2_000_000, ge=10_000, description="Bytes read per page at most.")
    max_redirects: int = Field(5, ge=0, le=20)
    allow_private_addresses: bool = Field(
        False, description="Allow fetching loopback/private addresses (tests only!).")
    allow_domains: list[str] = Field(default_factory=list, description="If set, only these domains.")
    block_domains: list[str] = Field(default_factory=list, description="Never fetch these domains.")
    chunk_chars: int = Field(800, ge=100, description="Target passage size in characters.")
    max_passages: int = Field(6, ge=1, le=30, description="Passages put into the prompt at most.")
    context_fraction: float = Field(
        0.5, gt=0, le=0.9, description="Share of the model context the sources may use.")


class StorageSettings(_Section):
    url: str = Field(
        "sqlite:///data/chatui.db",
        description="Database (env CHATUI_DATABASE_URL): sqlite:///PATH (relative) or "
                    "sqlite:////ABS/PATH, or postgresql://USER:PASSWORD@HOST:PORT/DB for "
                    "several replicas (keep the password in the environment). Unset: "
                    "sqlite:/// + db_path; when set it wins over db_path.")
    db_path: str = Field("data/chatui.db", description="SQLite file (env CHATUI_DB_PATH).")
    feedback_repo: str | None = Field(
        None, description="Hub dataset repo that receives feedback JSONL (CommitScheduler).")
    feedback_every_minutes: float = Field(5.0, gt=0)
    feedback_folder: str | None = Field(
        None, description="Local folder pushed to the Hub (default: feedback/ beside the database, "
                          "so it lives in the same volume).")

    @model_validator(mode="after")
    def _url_or_path(self) -> StorageSettings:
        # db_path alone keeps working; a sqlite URL also sets db_path (the feedback folder
        # and the export CLI default live beside the file).
        if "url" not in self.model_fields_set:
            self.url = f"sqlite:///{self.db_path}"
        elif self.url.startswith("sqlite:///") and len(self.url) > len("sqlite:///"):
            self.db_path = self.url[len("sqlite:///"):]
        elif not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB")
        return self


class SpaceSettings(_Section):
    title: str = "Chat UI"
    emoji: str = "💬"
    colorFrom: str = "yellow"
    colorTo: str = "purple"
    short_description: str = "Chat with open LLMs, rate answers, export training data"
    suggested_hardware: str = "cpu-basic"
    hf_oauth: bool = False
    license: str = "apache-2.0"


class LimitsSettings(_Section):
    max_message_chars: int = Field(16_000, ge=1, description="Longest user message accepted.")
    max_system_prompt_chars: int = Field(8_000, ge=0,
                                         description="Longest system prompt accepted.")
    messages_per_minute: int = Field(20, ge=1, description="Per user.")
    max_turns: int = Field(200, ge=1, description="Messages in one conversation at most.")
    max_concurrent_per_user: int = Field(2, ge=1)
    generation_timeout: float = Field(300.0, gt=0, description="Seconds one answer may take.")
    login_required: bool = False


class ServerSettings(_Section):
    host: str = Field("0.0.0.0", description="Bind address (env CHATUI_HOST or GRADIO_SERVER_NAME).")
    port: int = Field(7860, description="Port (env CHATUI_PORT, GRADIO_SERVER_PORT or PORT).")
    concurrency_limit: int = Field(64, ge=1, description="Answers generated at once (all users).")
    max_threads: int = Field(80, ge=1, description="Events Gradio runs at once (answers and "
                             "other queued events together; at least `concurrency_limit`) and "
                             "its worker threads.")
    heartbeat_seconds: float = Field(
        3.0, gt=0, description="How often an answer being written is saved with its text so far.")
    stale_after_seconds: float = Field(
        20.0, gt=0, description="An answer not saved for this long is shown as interrupted (its "
                                "replica died).")


class RenderSettings(_Section):
    image_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts whose https images may show inline in the chat (e.g. "
                    "`upload.wikimedia.org`, `*.example.org`); also allowed by the "
                    "Content-Security-Policy. Any other image is shown as a link: loading it "
                    "would tell that host who reads the chat and what the model put in the URL.")

    @field_validator("image_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        from .sanitize import valid_host_pattern

        hosts = [h.strip().lower() for h in hosts]
        bad = [h for h in hosts if not valid_host_pattern(h)]
        if bad:
            raise ValueError(f"not a host name or *.domain pattern: {bad[0]!r}")
        return hosts


# -- arena (issue 12): side-by-side battles between two anonymous models --------------------
class ArenaSettings(_Section):
    enabled: bool = Field(False, description="Show the Arena tab: one prompt, two anonymous "
                                             "models side by side, the user votes.")
    models: list[str] = Field(
        default_factory=list, description="Names (from `models`) that take part; empty: all of "
                                          "them. At least two are needed.")
    weight_undersampled: float = Field(
        1.0, ge=0, le=4, description="Pairs with fewer battles are picked more often: weight "
                                     "(1 + battles of the pair) ** -this. 0: uniform.")
    min_vote_seconds: float = Field(
        3.0, ge=0, description="Exports drop battle votes cast sooner than this after the last "
                               "token (a vote faster than reading is noise).")


# -- attachments (issue 13): documents for every model, images for `vision: true` models --
class AttachmentSettings(_Section):
    enabled: bool = Field(True, description="Accept files (documents, and images for vision "
                                            "models) with a message.")
    max_files_per_message: int = Field(5, ge=1, le=20, description="Files sent with one message.")
    max_document_bytes: int = Field(20_000_000, ge=1_000, description="Largest document file.")
    max_documents_per_conversation: int = Field(
        10, ge=1, description="Documents attached to one conversation at most.")
    max_pdf_pages: int = Field(500, ge=1, description="Pages of a PDF read at most (refused above).")
    max_document_chars: int = Field(
        3_000_000, ge=1_000, description="Extracted text kept per document at most (refused above).")
    chunk_chars: int = Field(800, ge=100, description="Target passage size in characters.")
    max_passages: int = Field(6, ge=1, le=30, description="Document passages put into the prompt.")
    context_fraction: float = Field(
        0.4, gt=0, le=0.9, description="Share of the model context document passages may use.")
    max_image_bytes: int = Field(10_000_000, ge=1_000, description="Largest image file.")
    max_images_per_message: int = Field(4, ge=1, le=16, description="Images sent with one message.")
    max_image_pixels: int = Field(
        40_000_000, ge=10_000, description="Width × height above which an image is refused "
                                           "(decompression bombs).")
    image_max_side: int = Field(
        2048, ge=64, description="Images are scaled down to fit this many pixels per side "
                                 "when re-encoded.")
    image_types: list[str] = Field(
        default_factory=lambda: ["png", "jpeg", "webp", "gif"],
        description="Image formats accepted (as detected from the bytes, not the file name).")


class ConversationsSettings(_Section):
    """Issue 11: how a new chat starts and is named."""
    examples: list[str] = Field(
        default_factory=lambda: ["Explain how a transformer model works, simply.",
                                 "Write a Python function that checks if a word is a palindrome.",
                                 "Plan a three-day trip to Lisbon.",
                                 "What are good questions to ask in a job interview?"],
        max_length=8, description="Example prompts an empty chat offers; one click sends one.")
    auto_titles: bool = Field(
        True, description="The model writes a short title for a new chat after its first "
                          "answer (env CHATUI_AUTO_TITLES=0 turns it off); else its first words.")

    @field_validator("examples")
    @classmethod
    def _examples_short(cls, v: list[str]) -> list[str]:
        v = [e.strip() for e in v if isinstance(e, str) and e.strip()]
        if any(len(e) > 500 for e in v):
            raise ValueError("each example prompt must be at most 500 characters")
        return v


class Settings(_Section):
    models: list[ModelSpec] = Field(..., min_length=1)
    default_model: str | None = None
    websearch: WebSearchSettings = Field(default_factory=WebSearchSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    space: SpaceSettings = Field(default_factory=SpaceSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    render: RenderSettings = Field(default_factory=RenderSettings,
                                   description="What chat messages may show; see `render` below.")
    attachments: AttachmentSettings = Field(
        default_factory=AttachmentSettings,
        description="Files sent with messages (documents; images for vision models); see "
                    "`attachments` below.")
    arena: ArenaSettings = Field(default_factory=ArenaSettings)
    conversations: ConversationsSettings = Field(default_factory=ConversationsSettings)

    @model_validator(mode="after")
    def _check_models(self) -> Settings:
        names = [m.name for m in self.models]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate model name(s): {', '.join(sorted(dupes))}")
        if self.default_model is None:
            self.default_model = names[0]
        elif self.default_model not in names:
            raise ValueError(f"default_model {self.default_model!r} is not one of {names}")
        return self

    @model_validator(mode="after")
    def _check_arena(self) -> Settings:
        names = [m.name for m in self.models]
        unknown = [n for n in self.arena.models if n not in names]
        if unknown:
            raise ValueError(f"arena.models: {unknown[0]!r} is not one of {names}")
        if self.arena.enabled and len(set(self.arena.models or names)) < 2:
            raise ValueError("arena.enabled needs at least two models")
        return self

    def model(self, name: str | None) -> ModelSpec:
        for m in self.models:
            if m.name == (name or self.default_model):
                return m
        raise KeyError(name)


def _env_overrides(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """CHATUI_ENDPOINT_URL puts a remote model first; CHATUI_MODEL picks the default."""
    raw = dict(raw)
    url = env.get("CHATUI_ENDPOINT_URL")
    if url:
        kind = env.get("CHATUI_ENDPOINT_TYPE", "openai")
        name = env.get("CHATUI_ENDPOINT_MODEL") or env.get("CHATUI_MODEL") or "remote"
        remote = {"name": name, "type": kind, "endpoint_url": url,
                  # Every user sees the description: name the kind of server, never its URL.
                  "description": f"Remote model ({kind} endpoint)"}
        urls = [u.strip() for u in url.split(",") if u.strip()]
        if len(urls) > 1:  # "http://a/v1,http://b/v1": several servers of one model
            del remote["endpoint_url"]
            remote["endpoint_urls"] = urls
        if env.get("CHATUI_ENDPOINT_MODEL"):
            remote["model_id"] = env["CHATUI_ENDPOINT_MODEL"]
        models = [m for m in raw.get("models") or [] if isinstance(m, dict) and m.get("name") != name]
        raw["models"] = [remote, *models]
        raw["default_model"] = name
    elif env.get("CHATUI_MODEL"):
        raw["default_model"] = env["CHATUI_MODEL"]
    storage = dict(raw.get("storage") or {})
    if env.get("CHATUI_DB_PATH"):
        storage["db_path"] = env["CHATUI_DB_PATH"]
    if env.get("CHATUI_DATABASE_URL"):
        storage["url"] = env["CHATUI_DATABASE_URL"]
    if env.get("CHATUI_FEEDBACK_REPO"):
        storage["feedback_repo"] = env["CHATUI_FEEDBACK_REPO"]
    if storage:
        raw["storage"] = storage
    if env.get("CHATUI_AUTO_TITLES"):
        conversations = dict(raw.get("conversations") or {})
        conversations["auto_titles"] = env["CHATUI_AUTO_TITLES"].strip().lower() not in (
            "0", "false", "no", "off")
        raw["conversations"] = conversations
    server = dict(raw.get("server") or {})
    # Gradio's own variables work as for any Gradio app; ours win when both are set.
    host = env.get("CHATUI_HOST") or env.get("GRADIO_SERVER_NAME")
    if host:
        server["host"] = host
    port = env.get("CHATUI_PORT") or env.get("GRADIO_SERVER_PORT") or env.get("PORT")
    if port:
        server["port"] = port
    if server:
        raw["server"] = server
    return raw


def _format_error(err: ValidationError, path: Path) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {loc}: {first['msg']}{more}"


def load_settings(path: str | os.PathLike | None = None,
                  env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    path = Path(path or env.get("CHATUI_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (set CHATUI_CONFIG)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping with a 'models' key")
    try:
        return Settings.model_validate(_env_overrides(raw, env))
    except ValidationError as e:
        raise ConfigError(_format_error(e, path)) from None
