"""Recommenders: the classic baseline zoo (random, popularity, ItemKNN, ALS, BPR, SASRec) behind one interface."""

from typing import Any

from lure.models.zoo import (
    ZOO,
    ALSRecommender,
    BPRRecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    RandomRecommender,
    Recommender,
    build_model,
    interaction_matrix,
    score_pairs,
    top_k,
)

__all__ = [
    "ZOO",
    "ALSRecommender",
    "BPRRecommender",
    "ItemKNNRecommender",
    "PopularityRecommender",
    "RandomRecommender",
    "Recommender",
    "SASRecRecommender",
    "build_model",
    "interaction_matrix",
    "score_pairs",
    "top_k",
]


def __getattr__(name: str) -> Any:
    """``SASRecRecommender`` is imported lazily, so the other models never pay for importing torch."""
    if name == "SASRecRecommender":
        from lure.models.sasrec import SASRecRecommender

        return SASRecRecommender
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
