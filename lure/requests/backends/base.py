"""The one interface every backend implements: ``async def complete(request) -> Response``.

A backend answers one request at a time and raises on failure; the runner (``lure.requests.runner``) bounds the
concurrency, consults the cache, turns exceptions into ``error`` responses and keeps the ledger. A backend that
batches (``transformers``) gathers concurrent ``complete`` calls itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from lure.requests.ledger import Prices
from lure.requests.models import ChatRequest, Response


class BackendError(RuntimeError):
    """A request failed. The message is already redacted; ``attempts`` counts the transport attempts it took."""

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class Backend(ABC):
    """An LLM that answers chat requests."""

    #: Price per million tokens, for the ledger's estimated cost.
    prices: Prices = Prices()

    @property
    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What the cache key records of the backend: ``backend``, ``base_url``, ``model`` and anything else that
        changes its answers. Never a secret."""

    async def prepare(self) -> None:  # noqa: B027 - an optional hook: most backends need no check
        """Check the configuration before the first request is sent (the runner calls it only when something is
        to be sent, so a fully cached run needs no credentials). Raises with a clear message; sends nothing."""

    @abstractmethod
    async def complete(self, request: ChatRequest) -> Response:
        """Answer ``request`` (an ``ok`` Response with ``attempts`` set), or raise."""

    def redact(self, text: str) -> str:
        """``text`` without any secret this backend holds (error messages pass through it)."""
        return text

    async def aclose(self) -> None:  # noqa: B027 - an optional hook: most backends hold nothing per loop
        """Release what is bound to the running event loop (connections, worker tasks); the backend stays usable
        and makes new ones in a later run."""
