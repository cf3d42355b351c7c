"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint through the official ``AsyncOpenAI``.

Requests go through the client's ``post("/chat/completions", ...)`` with the body built here (see
:meth:`OpenAIBackend.params`). Retries are the client's own, and only the client's (``max_retries``, ``timeout``;
docs/requests.md lists what it retries): a second loop here would multiply attempts and hide the count. Every
attempt is counted through an ``httpx`` request hook on the client's connection pool, attributed to the request
that made it through a context variable set for the duration of its ``complete`` call (the runner's workers are
separate tasks, each with its own context), so the ledger sees retries of failed requests too.

The key is read from the environment variable the config names, at :meth:`OpenAIBackend.prepare` (before the first
request, with an error naming the variable when it is unset), and lives only in the client object: every error
message passes through :meth:`OpenAIBackend.redact`, which removes it.
"""

from __future__ import annotations

import asyncio
import os
from contextvars import ContextVar
from typing import Any

from lure.registry import BACKENDS, Definition
from lure.requests.backends.base import Backend, BackendError
from lure.requests.ledger import Prices
from lure.requests.models import ChatRequest, Response, TokenLogprob, TopLogprob, Usage
from lure.spec.requests import OpenAIConfig

#: Sent as the key when ``api_key_env`` is null (a local server that checks none); the client refuses no key.
NO_KEY = "no-key"
_REDACTED = "[redacted]"

#: The attempt counter of the request running in the current task (None outside a request).
_ATTEMPTS: ContextVar[list[int] | None] = ContextVar("lure_requests_attempts", default=None)


class MissingAPIKeyError(RuntimeError):
    """The environment variable that should hold the API key is unset or empty."""


async def _count_attempt(_request: Any) -> None:
    """httpx request hook: one more transport attempt for the request of this task."""
    counter = _ATTEMPTS.get()
    if counter is not None:
        counter[0] += 1


class OpenAIBackend(Backend):
    """Chat completions from ``config.base_url`` with ``config.model``."""

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self.prices = Prices(config.price_prompt_per_million, config.price_completion_per_million)
        self._key: str | None = None
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def identity(self) -> dict[str, Any]:
        base_url = self.config.key_base_url or self.config.base_url.rstrip("/")
        return {"backend": "openai", "base_url": base_url, "model": self.config.model}

    def api_key(self) -> str:
        """The key from the configured environment variable; a clear error naming the variable when it is unset."""
        name = self.config.api_key_env
        if name is None:
            return NO_KEY
        value = os.environ.get(name, "")
        if not value:
            raise MissingAPIKeyError(
                f"environment variable {name} is not set: it must hold the API key for {self.config.base_url} "
                f"(the backend's api_key_env names it; set api_key_env to null for an endpoint that needs no key)"
            )
        return value

    async def prepare(self) -> None:
        self._key = self.api_key()

    def redact(self, text: str) -> str:
        if self._key and self._key != NO_KEY:
            text = text.replace(self._key, _REDACTED)
        return text

    def _client_for_loop(self) -> Any:
        """The client of the running event loop (its connection pool belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import openai

            if self._key is None:
                self._key = self.api_key()
            self._client = openai.AsyncOpenAI(
                api_key=self._key,
                base_url=self.config.base_url,
                max_retries=self.config.max_retries,
                timeout=self.config.timeout,
                http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [_count_attempt]}),
            )
            self._loop = loop
        return self._client

    def params(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of ``request`` (optional fields only when set), sent as it is: through the client's
        ``post`` (its documented route for parameters its types do not list, such as a JSON-mode ``schema``), which
        goes through the same retries, timeout and authentication as ``chat.completions.create`` and skips that
        method's conversion of the arguments (a third of the client's CPU time per request)."""
        params: dict[str, Any] = {
            "model": self.config.model,
            "messages": [m.model_dump() for m in request.messages],
            "temperature": request.temperature,
            "top_p": request.top_p,
            self.config.max_tokens_field: request.max_tokens,
        }
        response_format = request.wire_response_format()
        if response_format is not None:
            params["response_format"] = response_format
        if request.logprobs:
            params["logprobs"] = True
            if request.top_logprobs:
                params["top_logprobs"] = request.top_logprobs
        if request.seed is not None:
            params["seed"] = request.seed
        return params

    async def complete(self, request: ChatRequest) -> Response:
        from openai.types.chat import ChatCompletion

        client = self._client_for_loop()
        counter = [0]
        token = _ATTEMPTS.set(counter)
        try:
            completion = await client.post("/chat/completions", cast_to=ChatCompletion, body=self.params(request))
            return _response(completion, request, attempts=counter[0])
        except Exception as exc:  # noqa: BLE001 - the client retried what it retries; the rest is this request's error
            raise BackendError(self.redact(f"{type(exc).__name__}: {exc}"), attempts=counter[0]) from None
        finally:
            _ATTEMPTS.reset(token)

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.close()
        self._client, self._loop = None, None


def _response(completion: Any, request: ChatRequest, attempts: int) -> Response:
    """A Response from the client's ``ChatCompletion`` (a body that parsed as JSON but is not one raises)."""
    choices = getattr(completion, "choices", None)
    if not choices:
        raise ValueError(f"the response has no choices: {str(completion)[:200]}")
    choice = choices[0]
    text = choice.message.content or ""
    logprobs = None
    if request.logprobs:
        content = choice.logprobs.content if choice.logprobs is not None else None
        logprobs = tuple(
            TokenLogprob(
                token=t.token,
                logprob=t.logprob,
                top=tuple(TopLogprob(token=c.token, logprob=c.logprob) for c in (t.top_logprobs or ())),
            )
            for t in content or ()
        )
    usage = completion.usage
    return Response(
        text=text,
        finish_reason=choice.finish_reason,
        logprobs=logprobs,
        usage=None
        if usage is None
        else Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens),
        attempts=attempts,
    )


BACKENDS.add(
    Definition(
        "openai",
        build=OpenAIBackend,
        spec=OpenAIConfig,
        description="Any OpenAI-compatible chat-completions endpoint, through the official openai client.",
    )
)
