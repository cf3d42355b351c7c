"""The ``tables`` section of the experiment spec: which papers' tables to render, where, and how precisely."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator

from lure.spec.base import Section

PaperId = Literal["lure", "gdrt", "reclaif", "abpo"]
PAPERS: tuple[PaperId, ...] = get_args(PaperId)


class TablesSpec(Section):
    """Rendering of the papers' published tables next to our numbers (``lure.tables``)."""

    papers: list[PaperId] = Field(
        default_factory=lambda: list(PAPERS),
        min_length=1,
        description="Papers whose published tables are rendered (every table of each listed paper), in this order.",
    )
    decimals: int = Field(
        4,
        ge=0,
        le=10,
        description="Decimal places shown for our values and for the difference (ours - paper); paper values are "
        "always shown exactly as printed.",
    )

    @field_validator("papers")
    @classmethod
    def _unique_papers(cls, papers: list[PaperId]) -> list[PaperId]:
        duplicates = sorted({p for p in papers if papers.count(p) > 1})
        if duplicates:
            raise ValueError(f"papers listed more than once: {duplicates}")
        return papers
