"""A read-only view of the spec that lets a stage read only the fields it declared.

DVC decides what to re-run from the ``params:`` each stage lists in ``dvc.yaml``. If a stage read a field it did
not list, changing that field would leave the stage's outputs silently stale. The view makes that mistake an
immediate error instead of a wrong result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel


class UndeclaredParamError(AttributeError):
    """A stage read a spec field that is not among its declared params."""


class SpecView:
    """Attribute access into a spec, allowed only on declared paths (and the sections leading to them)."""

    __slots__ = ("_declared", "_model", "_path", "_stage")

    def __init__(self, model: BaseModel, declared: Iterable[str], stage: str, path: str = "") -> None:
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_declared", frozenset(declared))
        object.__setattr__(self, "_stage", stage)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        model = self._model
        if name not in type(model).model_fields:
            raise AttributeError(f"spec has no field {self._join(name)!r}")
        path = self._join(name)
        value = getattr(model, name)
        if any(path == d or path.startswith(d + ".") for d in self._declared):
            return value
        if isinstance(value, BaseModel) and any(d.startswith(path + ".") for d in self._declared):
            return SpecView(value, self._declared, self._stage, path)
        if isinstance(value, Mapping) and any(d.startswith(path + ".") for d in self._declared):
            # a mapping of named entries (abpo.variants): only the entries declared whole are visible
            return {k: v for k, v in value.items() if f"{path}.{k}" in self._declared}
        raise UndeclaredParamError(
            f"stage {self._stage!r} read spec field {path!r}, which it does not declare; add it to the stage's "
            f"params in lure/pipeline/stages.py (declared: {', '.join(sorted(self._declared)) or 'nothing'})"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("the spec is read-only")

    def _join(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def __repr__(self) -> str:
        return f"SpecView(stage={self._stage!r}, path={self._path or '<root>'!r})"
