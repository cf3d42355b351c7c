"""The ``calibrate`` section: Calib-Link (LURE §2.3), which recall difference the judge's RJS is mapped to. Read by
stage ``calibrate``; :mod:`lure.calibrate` documents the fit.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lure.spec.base import Section


class CalibrateSpec(Section):
    """Calib-Link: an isotonic map g from RJS to Delta Recall^IPS relative to a reference model (LURE §2.3)."""

    reference: str = Field(
        "popularity",
        min_length=1,
        max_length=200,
        description="Recommender whose IPS recall is subtracted: Delta Recall^IPS_k = Recall^IPS_k - Recall^IPS_ref.",
    )
    k: int = Field(20, ge=1, le=1000, description="Cut-off K of Recall@K (LURE §4.2 uses IPS-Recall@20).")
    estimator: Literal["ips", "snips", "ips_global_sn", "truth"] = Field(
        "ips",
        description="Estimate of each model's recall (docs/evaluation.md): 'ips' needs the world's normaliser; "
        "'snips' and 'ips_global_sn' run on any dataset; 'truth' is the world's estimand (a check of g, not LURE).",
    )
