"""Building blocks shared by every spec section.

Every section subclasses :class:`Section` so unknown keys are rejected and values are immutable once validated.
A field that changes the *shape* of the pipeline (which stages exist) is declared with :func:`structural`; the
pipeline generator embeds a hash of those fields in ``dvc.yaml`` so a ``dvc exp run -S`` that changes one stops
before any stage runs on a stale graph.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

STRUCTURAL_KEY = "structural"


class Section(BaseModel):
    """Base of every spec section: no unknown keys, no mutation, validated defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class AttentionShape(Section):
    """Base of sections that size a multi-head attention model: ``heads`` must divide ``hidden``."""

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> AttentionShape:
        if self.hidden % self.heads:  # type: ignore[attr-defined]
            raise ValueError(f"heads must divide hidden, got hidden={self.hidden}, heads={self.heads}")  # type: ignore[attr-defined]
        return self


#: The marker of a mapping field whose *keys* decide the stages (one stage per entry) but whose entries' contents
#: are ordinary parameters (``abpo.variants``: a new method is a new stage; a method's switch re-runs that stage).
STRUCTURAL_KEYS = "keys"


def structural(default: Any = ..., *, description: str, keys_only: bool = False, **kwargs: Any) -> Any:
    """A field whose value changes which stages the pipeline has (needs ``lure exp run``, not ``dvc exp run``);
    ``keys_only``: of a mapping, only the keys do."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[STRUCTURAL_KEY] = STRUCTURAL_KEYS if keys_only else True
    return Field(default, description=description, json_schema_extra=extra, **kwargs)
