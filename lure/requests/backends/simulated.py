"""The ``simulated`` backend: a Python function answers (the simulated world's judge plugs in here). No network,
no model, no tokens: usage is zero, so a simulated run costs nothing in the ledger."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from lure.registry import BACKENDS, Definition
from lure.requests.backends.base import Backend
from lure.requests.ledger import Prices
from lure.requests.models import ChatRequest, Response, Usage
from lure.spec.requests import SimulatedConfig


class SimulatedBackend(Backend):
    """Answers with ``function(request)``; ``model`` labels the answers in the cache key."""

    def __init__(
        self, function: Callable[[ChatRequest], str], model: str = "simulated", prices: Prices | None = None
    ) -> None:
        self.function = function
        self.model = model
        self.prices = prices or Prices()

    @property
    def identity(self) -> dict[str, Any]:
        name = f"{getattr(self.function, '__module__', '?')}:{getattr(self.function, '__qualname__', '?')}"
        return {"backend": "simulated", "base_url": None, "model": self.model, "function": name}

    async def complete(self, request: ChatRequest) -> Response:
        text = self.function(request)
        if not isinstance(text, str):
            raise TypeError(f"the simulated function returned {type(text).__name__}, not str")
        return Response(text=text, finish_reason="stop", usage=Usage(prompt_tokens=0, completion_tokens=0), attempts=1)


def import_callable(path: str) -> Callable[..., Any]:
    """The object a ``module:attribute`` path names (attributes may be dotted)."""
    module_name, _, attribute = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{path} is not callable")
    return target


def build(config: SimulatedConfig) -> SimulatedBackend:
    prices = Prices(config.price_prompt_per_million, config.price_completion_per_million)
    return SimulatedBackend(import_callable(config.function), config.model, prices)


BACKENDS.add(Definition("simulated", build=build, spec=SimulatedConfig, description="A Python function answers."))
