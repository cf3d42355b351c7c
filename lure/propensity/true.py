"""The true exposure propensity: only the simulated world knows it (``truth/exposure_prob.npy``)."""

from __future__ import annotations

import numpy as np

from lure.layout import Prepared
from lure.propensity.data import PropensityData
from lure.registry import PROPENSITY_MODELS, Definition
from lure.spec.propensity import TrueModel


class TruePropensity:
    """pi(u,i) = 1 - prod_t (1 - pi_t(u,i))  (docs/world.md: marginal exposure over u's whole log).

    pi_t is the logging policy's inclusion probability at u's step t, so this is P(u was shown i at least once):
    the exposure propensity IPS needs, not P(observed) (which also contains the click). For validation only.
    """

    name = "true"

    def fit(self, data: PropensityData) -> TruePropensity:
        path = Prepared(data.prepared_dir).exposure_prob
        if not path.exists():
            raise FileNotFoundError(
                f"propensity model 'true' needs {path}, which only the simulated world has (data.source.name: world); "
                "use 'logistic' or 'popularity' on other datasets"
            )
        prob = np.load(path)
        if prob.ndim != 2 or prob.shape[1] != data.n_items or prob.shape[0] < data.n_user_slots:
            raise ValueError(
                f"{path}: shape {prob.shape} does not cover {data.n_user_slots} users x {data.n_items} items"
            )
        self.prob_ = prob
        return self

    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        return self.prob_[user_ids, item_ids].astype(np.float64)


PROPENSITY_MODELS.add(
    Definition("true", lambda spec, seed: TruePropensity(), spec=TrueModel, reads=("propensity.model",))
)
