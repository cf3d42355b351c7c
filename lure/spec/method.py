"""The ``method`` section: the method under study, one member of a discriminated union per training method.

Each member is the spec class of a definition in ``lure.train.methods.METHODS`` (what it reads, how it trains, which
stages it adds); a plugin adds a member by registering a method with its own spec class (docs/pipeline.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lure.spec.base import Section, structural

#: Names ``baselines`` may list: the training methods without parameters of their own, and the zoo models
#: (``lure.registry.ZOO``). GDRT is compared by making it the method under study: its tau and groups live in
#: ``method``, which a baseline does not have.
BaselineName = Literal["sft", "sasrec", "popularity", "random", "itemknn", "als", "bpr"]


class GDRTMethod(Section):
    """GDRT: group-DRO over target-token groups (GDRT §3)."""

    name: Literal["gdrt"] = structural("gdrt", description="Method under study.")
    tau: float = Field(0.5, gt=0.0, le=10.0, description="Group-DRO temperature tau of Q = softmax(L/tau) (Eq. 5).")
    groups: int = Field(5, ge=2, le=50, description="Number G of token-relevance groups (K-means).")
    relevance_model: Literal["base", "sft"] = structural(
        "sft",
        description="Model that computes token relevance r(y_t) (Eq. 3): the base model or the SFT model (the "
        "tiny CPU model starts from random weights, so only its SFT checkpoint knows anything about titles).",
    )
    grouping: Literal["kmeans", "quantile"] = Field(
        "kmeans", description="Token grouping: K-means on r (§3) or equal-count bins by magnitude (footnote 1)."
    )


class SFTMethod(Section):
    """Plain supervised fine-tuning on next-item titles (the baseline GDRT improves on)."""

    name: Literal["sft"] = structural("sft", description="Method under study.")


Method = Annotated[GDRTMethod | SFTMethod, Field(discriminator="name")]
