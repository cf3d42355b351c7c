"""What goes into the request layer and what comes out: :class:`ChatRequest` and :class:`Response`.

Both are frozen pydantic models. A request holds everything that decides its answer (messages, sampling and output
parameters, the sample index, the hash of the template that rendered it), because the cache key is computed from
it (``lure.requests.key``): a parameter that is not a field here could change an answer without changing its key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Message(_Frozen):
    """One chat turn."""

    role: Literal["system", "user", "assistant"]
    content: str


class JsonObjectFormat(_Frozen):
    """JSON mode: ``{"type": "json_object"}``, optionally with a JSON schema the server constrains the output to
    (``{"type": "json_object", "schema": {...}}``, the form llama.cpp's server reads)."""

    type: Literal["json_object"] = "json_object"
    json_schema: dict[str, Any] | None = Field(None, alias="schema")


class JsonSchema(_Frozen):
    """The ``json_schema`` member of OpenAI's structured-output format."""

    name: str = Field(min_length=1, max_length=64)
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(_Frozen):
    """Structured outputs: ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`` (OpenAI)."""

    type: Literal["json_schema"] = "json_schema"
    json_schema: JsonSchema


#: ``response_format`` of a request: JSON mode (with or without a schema) or OpenAI's structured outputs.
ResponseFormat = Annotated[JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


class ChatRequest(_Frozen):
    """One chat completion to obtain. Every field is part of the cache key.

    ``sample`` tells apart repeated draws of the same prompt (sampling at ``temperature`` > 0): two requests that
    differ only in ``sample`` are two answers, each cached on its own. ``template_hash`` is the caller's hash of the
    prompt template (and of anything else that gives the answer its meaning, such as the answer schema's version),
    so a changed template never reuses old answers even where it renders the same messages.
    """

    messages: tuple[Message, ...] = Field(min_length=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=1_000_000)
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int = Field(0, ge=0, le=20)
    seed: int | None = None
    sample: int = Field(0, ge=0)
    template_hash: str = ""

    @model_validator(mode="after")
    def _top_needs_logprobs(self) -> ChatRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs=True")
        return self

    def wire_response_format(self) -> dict[str, Any] | None:
        """``response_format`` as the OpenAI wire format spells it (``schema``, not the field name)."""
        if self.response_format is None:
            return None
        return self.response_format.model_dump(by_alias=True, exclude_none=True)


class TopLogprob(_Frozen):
    """One of the most likely tokens at a position."""

    token: str
    logprob: float


class TokenLogprob(_Frozen):
    """The generated token at one position, its log-probability and the ``top_logprobs`` most likely tokens."""

    token: str
    logprob: float
    top: tuple[TopLogprob, ...] = ()


class Usage(_Frozen):
    """Tokens the backend reported for one answer."""

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class Response(_Frozen):
    """The outcome of one request: ``ok`` with the answer, or ``error`` with a message, never both.

    ``cached`` says the answer came from the cache (``usage`` is then what it cost when it was obtained);
    ``attempts`` counts the transport attempts made for it in this run (client retries included where the backend
    can see them; 0 for a cached answer). ``logprobs`` is None unless the request asked for them.
    """

    status: Literal["ok", "error"] = "ok"
    text: str | None = None
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    usage: Usage | None = None
    error: str | None = None
    cached: bool = False
    attempts: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _one_outcome(self) -> Response:
        if self.status == "ok" and (self.text is None or self.error is not None):
            raise ValueError("an ok response has a text and no error")
        if self.status == "error" and (self.error is None or self.text is not None):
            raise ValueError("an error response has an error message and no text")
        return self
