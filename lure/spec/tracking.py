"""The ``tracking`` section: where and how each pipeline execution is logged to MLflow."""

from __future__ import annotations

from pydantic import Field

from lure.spec.base import Section


class TrackingSpec(Section):
    """MLflow tracking. The server URI comes from MLFLOW_TRACKING_URI (may hold credentials), never from here."""

    enabled: bool = Field(True, description="Log one MLflow run per pipeline execution that produced results.")
    experiment: str = Field(
        "lure", min_length=1, max_length=200, description="MLflow experiment the runs are logged to."
    )
    log_artifacts: bool = Field(True, description="Attach tables and plots to the MLflow run.")
