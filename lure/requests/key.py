"""The cache key of a request: sha256 of canonical JSON of everything that decides the answer.

Covered: the backend's identity (backend name, base URL, model, and whatever else the backend says changes its
answers, such as a local model's dtype), the full messages, every sampling and output parameter (temperature,
top_p, max_tokens, response_format with its schema, logprobs, top_logprobs, seed), the caller's template hash, the
sample index and :data:`SCHEMA_VERSION`. Not covered, on purpose: the API key, retries and timeouts (they change
how an answer is obtained, not which answer is asked for), and prices.

Canonical JSON: keys sorted, no whitespace, UTF-8 as is; floats as Python writes them after pydantic coerced them,
so ``temperature: 1`` and ``temperature: 1.0`` give the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from lure.requests.models import ChatRequest

#: Bump when the meaning of a stored answer changes (what a Response holds, how a backend derives it): every old
#: entry then misses and is asked again, while the store keeps it.
SCHEMA_VERSION = 1


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, compact separators, non-ASCII kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def request_payload(request: ChatRequest) -> dict[str, Any]:
    """The request as plain JSON data (field names, ``schema`` spelled as on the wire)."""
    return request.model_dump(mode="json", by_alias=True)


def cache_key(identity: Mapping[str, Any], request: ChatRequest) -> str:
    """Hex sha256 of ``{"schema", "backend": identity, "request"}`` in canonical JSON."""
    document = {"schema": SCHEMA_VERSION, "backend": dict(identity), "request": request_payload(request)}
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
