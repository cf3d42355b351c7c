"""Popularity propensity (Yang et al. 2018, "Unbiased Offline Recommender Evaluation for Missing-Not-At-Random
Implicit Feedback", RecSys): exposure grows as a power of the item's observed popularity, the same for every user.
"""

from __future__ import annotations

import numpy as np

from lure.propensity.data import PropensityData
from lure.registry import PROPENSITY_MODELS, Definition
from lure.spec.propensity import PopularityModel


class PopularityPropensity:
    """p_i = (n_i / max_j n_j)^eta  (Yang et al. 2018: propensity a power of popularity), n_i = training count.

    A relative score, not a probability: the most popular item gets 1, an item never interacted with 0 (the
    clip in ``FittedPropensity`` floors it at clip_min). eta = 0 gives 1 everywhere (no correction).
    """

    name = "popularity"

    def __init__(self, eta: float = 0.5):
        self.eta = float(eta)

    def fit(self, data: PropensityData) -> PopularityPropensity:
        counts = data.item_counts().astype(np.float64)
        self.item_prob_ = (counts / counts.max()) ** self.eta
        return self

    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        return self.item_prob_[item_ids]


PROPENSITY_MODELS.add(
    Definition(
        "popularity",
        lambda spec, seed: PopularityPropensity(spec.eta),
        spec=PopularityModel,
        reads=("propensity.model",),
    )
)
