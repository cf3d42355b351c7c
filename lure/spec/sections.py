"""Spec sections owned by the evaluation and training stages.

They start small (later issues add fields as their stages arrive) but each field is already validated,
described and constrained, because users set them from the command line with ``dvc exp run -S``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lure.spec.base import Section, structural

MethodName = Literal["gdrt", "sft"]
BaselineName = Literal["sft", "gdrt", "sasrec", "popularity", "random", "itemknn", "als", "bpr"]


class JudgeSpec(Section):
    """The pairwise LLM judge (RecJudge-X). Secrets never live here: only the *name* of the env variable."""

    backend: Literal["local", "openai"] = Field(
        "local", description="'local': an in-process judge; 'openai': any OpenAI-compatible endpoint."
    )
    model: str = Field("local", min_length=1, description="Model name sent to the backend.")
    base_url: str | None = Field(
        None, description="Endpoint of an OpenAI-compatible server (required for backend 'openai')."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Name of the environment variable that holds the API key (the key itself is never in a spec).",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature of the judge.")
    max_concurrency: int = Field(8, ge=1, le=256, description="Judge requests in flight at once.")
    max_retries: int = Field(5, ge=0, le=20, description="Retries with exponential backoff on network faults.")
    timeout_s: float = Field(60.0, gt=0.0, le=3600.0, description="Timeout of one judge request in seconds.")

    @model_validator(mode="after")
    def _endpoint(self) -> JudgeSpec:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (an OpenAI-compatible endpoint)")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        return self


class ExpoSynthSpec(Section):
    """Exposure-controlled synthetic interactions (LURE ExpoSynth)."""

    synth_ratio: float = Field(
        0.2, ge=0.0, le=1.0, description="Synthetic interactions added, as a fraction of real interactions."
    )
    tail_share: float = Field(
        0.5, ge=0.0, le=1.0, description="Target share of synthetic interactions on tail-bin items."
    )


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


class CalibrateSpec(Section):
    """Calib-Link: monotone map from judge score to IPS recall."""

    method: Literal["isotonic"] = Field("isotonic", description="Calibration map family.")
    increasing: bool = Field(True, description="Constrain the map to be non-decreasing.")


class TrackingSpec(Section):
    """MLflow tracking. The server URI comes from MLFLOW_TRACKING_URI (may hold credentials), never from here."""

    enabled: bool = Field(True, description="Log one MLflow run per pipeline execution that produced results.")
    experiment: str = Field(
        "lure", min_length=1, max_length=200, description="MLflow experiment the runs are logged to."
    )
    log_artifacts: bool = Field(True, description="Attach tables and plots to the MLflow run.")
