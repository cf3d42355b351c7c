"""The one request layer every LLM call of the harness goes through (judge, RecLAIF teacher and judge).

* :class:`ChatRequest` / :class:`Response` (``models``): what is asked and what comes back;
* backends (``backends``): ``openai`` (any OpenAI-compatible endpoint), ``transformers`` (in-process Hugging Face
  model), ``simulated`` (a Python function), configured by :data:`BackendConfig` (``config``) and built with
  :func:`build_backend`;
* :class:`ResponseCache` (``cache``): append-only SQLite store of answers by :func:`cache_key` (``key``);
* :func:`run_requests` (``runner``): cache, bounded concurrency, progress, one status per request, and the
  :class:`Ledger` (``ledger``) of tokens, attempts and estimated cost;
* :class:`LlamaCppServer` (``llamacpp``): llama.cpp's OpenAI-compatible server as a context manager, a local
  endpoint for the ``openai`` backend (llama-cpp-python is an optional extra, ``make local-judge``).

Importing this package loads neither ``openai`` nor ``torch``/``transformers``: a backend imports its client when
it first sends. See docs/requests.md.
"""

from lure.requests.backends import Backend, BackendError, build_backend
from lure.requests.cache import ResponseCache
from lure.requests.key import SCHEMA_VERSION, cache_key
from lure.requests.ledger import Ledger, Prices
from lure.requests.llamacpp import LlamaCppServer, LlamaCppServerError, LlamaCppStartupTimeout, find_gguf
from lure.requests.models import (
    ChatRequest,
    JsonObjectFormat,
    JsonSchema,
    JsonSchemaFormat,
    Message,
    Response,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from lure.requests.runner import RunResult, arun_requests, run_requests
from lure.spec.requests import BackendConfig, OpenAIConfig, SimulatedConfig, TransformersConfig

__all__ = [
    "SCHEMA_VERSION",
    "Backend",
    "BackendConfig",
    "BackendError",
    "ChatRequest",
    "JsonObjectFormat",
    "JsonSchema",
    "JsonSchemaFormat",
    "Ledger",
    "LlamaCppServer",
    "LlamaCppServerError",
    "LlamaCppStartupTimeout",
    "Message",
    "OpenAIConfig",
    "Prices",
    "Response",
    "ResponseCache",
    "RunResult",
    "SimulatedConfig",
    "TokenLogprob",
    "TopLogprob",
    "TransformersConfig",
    "Usage",
    "arun_requests",
    "build_backend",
    "cache_key",
    "find_gguf",
    "run_requests",
]
