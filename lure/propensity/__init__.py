"""Exposure propensity models for inverse propensity scoring (LURE §3) and how well they match the truth.

Models (one class each, formula in the docstring; ``docs/propensity.md`` has the derivations):

* ``logistic``   -- LURE §3: P(observed | u, i) from user frequency, item popularity, item age bin, hour,
                    weekday and user-genre entropy; fitted against sampled unobserved pairs, prior-corrected.
* ``popularity`` -- p_i = (n_i / max n)^eta (Yang et al. 2018).
* ``true``       -- the simulated world's marginal exposure probability (validation only).

Entry points: :func:`fit_propensity` (fits on ``splits/holdout_train.parquet``) returns a
:class:`FittedPropensity` (clipped, checked, saveable); :func:`propensity_metrics` / :func:`propensity_report`
score it.
"""

from lure.propensity.data import PropensityData
from lure.propensity.fitted import FittedPropensity, MissingPropensityError, fit_propensity, make_model
from lure.propensity.logistic import LogisticPropensity
from lure.propensity.metrics import propensity_metrics, propensity_report
from lure.propensity.popularity import PopularityPropensity
from lure.propensity.true import TruePropensity

__all__ = [
    "FittedPropensity",
    "LogisticPropensity",
    "MissingPropensityError",
    "PopularityPropensity",
    "PropensityData",
    "TruePropensity",
    "fit_propensity",
    "make_model",
    "propensity_metrics",
    "propensity_report",
]
