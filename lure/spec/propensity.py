"""The ``propensity`` section: exposure propensities (LURE §2.1, §3); the model is a discriminated union.

Formulas and the reasoning behind each default: ``docs/propensity.md``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lure.spec.base import Section


class LogisticModel(Section):
    """LURE §3: P(observed | u, i) by logistic regression on user/item/time features, prior-corrected."""

    name: Literal["logistic"] = Field("logistic", description="Propensity model (LURE §3 features).")
    negative_ratio: int = Field(
        4, ge=1, le=100, description="Unobserved pairs sampled per observed pair when fitting the logistic model."
    )
    c: float = Field(
        1.0, gt=0.0, le=1e6, description="Inverse L2 regularisation strength C of the logistic model (scikit-learn)."
    )
    max_fit_pairs: int = Field(
        2_000_000,
        ge=1_000,
        le=100_000_000,
        description="Cap on observed + sampled pairs in the logistic fit; above it observed pairs are subsampled "
        "(and the prior correction accounts for it).",
    )


class PopularityModel(Section):
    """p_i = (n_i / max n)^eta (Yang et al. 2018)."""

    name: Literal["popularity"] = Field("popularity", description="Propensity model (item popularity power law).")
    eta: float = Field(0.5, ge=0.0, le=5.0, description="Exponent eta of p_i = (n_i / max n)^eta.")


class TrueModel(Section):
    """The world's marginal exposure probabilities (validation only; needs data.source.name 'world')."""

    name: Literal["true"] = Field("true", description="Propensity model (the world's truth; validation only).")


#: The ``propensity.model`` choice: one member per model of ``lure.registry.PROPENSITY_MODELS``.
PropensityModelSpec = Annotated[LogisticModel | PopularityModel | TrueModel, Field(discriminator="name")]


class PropensitySpec(Section):
    """How P(observed | u, i) is estimated for inverse propensity scoring (LURE §3)."""

    model: PropensityModelSpec = Field(
        default_factory=LogisticModel,
        description="Propensity model and its parameters: 'logistic' (LURE §3 features), 'popularity' "
        "(p_i = (n_i/max n)^eta, Yang et al. 2018) or 'true' (the world's marginal exposure probabilities; "
        "validation only).",
    )
    clip_min: float = Field(
        1e-3, gt=0.0, le=1.0, description="Lower clip of propensities (caps IPS weights at 1/clip_min)."
    )
    clip_max: float = Field(1.0, gt=0.0, le=1.0, description="Upper clip of propensities.")
    calibration_bins: int = Field(
        10, ge=2, le=100, description="Equal-frequency bins of predicted propensity in the calibration table."
    )
    metrics_sample: int = Field(
        200_000,
        ge=1_000,
        le=10_000_000,
        description="Random (user, item) pairs scored for the calibration and (world only) truth metrics.",
    )

    @model_validator(mode="after")
    def _clip_order(self) -> PropensitySpec:
        if self.clip_min >= self.clip_max:
            raise ValueError(f"clip_min must be < clip_max, got {self.clip_min} >= {self.clip_max}")
        return self
