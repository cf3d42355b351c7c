"""Request backends, one module each, registered in ``lure.registry.BACKENDS`` the way plugins register theirs:
``openai`` (any OpenAI-compatible endpoint), ``transformers`` (a Hugging Face model in this process) and
``simulated`` (a Python function). :func:`build_backend` builds one from its config."""

from __future__ import annotations

from lure.registry import BACKENDS
from lure.requests.backends.base import Backend, BackendError
from lure.spec.requests import BackendConfigBase


def build_backend(config: BackendConfigBase) -> Backend:
    """The backend ``config`` describes (its ``name`` looked up in ``BACKENDS``); nothing is loaded or sent yet."""
    name = getattr(config, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"a backend config needs a name, got {type(config).__name__}")
    backend = BACKENDS.get(name).build(config)
    if not isinstance(backend, Backend):
        raise TypeError(f"backend {name!r} built {type(backend).__name__}, not a lure.requests Backend")
    return backend


__all__ = ["Backend", "BackendError", "build_backend"]
