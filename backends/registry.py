"""Build a backend from its spec. Imports are lazy: vllm or llama_cpp load only when used."""

from __future__ import annotations

import importlib

from .base import Backend
from .spec import ModelSpec

BACKEND_TYPES: dict[str, str] = {
    "llamacpp": "backends.llamacpp:LlamaCppBackend",
    "tgi": "backends.remote:RemoteBackend",
    "openai": "backends.remote:RemoteBackend",
    "vllm": "backends.vllm:VllmBackend",
}


def create_backend(spec: ModelSpec) -> Backend:
    target = BACKEND_TYPES[spec.type]
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    backend = cls.from_spec(spec)
    # Set here once for every type (and on a pool, which splits its members' streams).
    backend.reasoning_tags = tuple(spec.reasoning_tags) if spec.reasoning_tags else None
    return backend
