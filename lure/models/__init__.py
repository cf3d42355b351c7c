"""Recommenders: the classic baseline zoo (random, popularity, ItemKNN, ALS, BPR) behind one interface."""

from lure.models.zoo import (
    MODELS,
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
    "MODELS",
    "ALSRecommender",
    "BPRRecommender",
    "ItemKNNRecommender",
    "PopularityRecommender",
    "RandomRecommender",
    "Recommender",
    "build_model",
    "interaction_matrix",
    "score_pairs",
    "top_k",
]
