"""The root experiment spec: the single source of truth for every parameter of every stage."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from lure.spec.base import STRUCTURAL_KEY, Section
from lure.spec.data import DataSpec
from lure.spec.eval import EvalSpec
from lure.spec.llm import ModelSpec, TrainSpec
from lure.spec.propensity import PairsSpec, PropensitySpec
from lure.spec.sections import BaselineName, CalibrateSpec, ExpoSynthSpec, JudgeSpec, Method, TrackingSpec
from lure.spec.tables import TablesSpec


class Spec(Section):
    """An experiment: which data, which method under study, which baselines, and how everything is evaluated."""

    seed: int = Field(0, ge=0, le=2**31 - 1, description="Master random seed of every stage.")
    data: DataSpec = Field(default_factory=DataSpec, description="Dataset source, world generator, bins, splits.")
    propensity: PropensitySpec = Field(default_factory=PropensitySpec, description="Propensity estimation.")
    pairs: PairsSpec = Field(default_factory=PairsSpec, description="Matched item pairs.")
    judge: JudgeSpec = Field(default_factory=JudgeSpec, description="Pairwise LLM judge.")
    exposynth: ExpoSynthSpec = Field(default_factory=ExpoSynthSpec, description="Synthetic interactions.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="Causal LM of the generative recommenders.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Fine-tuning of the generative recommenders.")
    method: Method = Field(default_factory=lambda: {"name": "gdrt"}, description="The method under study.")
    baselines: list[BaselineName] = Field(
        default_factory=lambda: ["sft", "sasrec", "popularity"],
        description="Methods the method under study is compared with (one training stage each).",
        json_schema_extra={STRUCTURAL_KEY: True},
    )
    eval: EvalSpec = Field(default_factory=EvalSpec, description="Offline evaluation.")
    calibrate: CalibrateSpec = Field(default_factory=CalibrateSpec, description="Calib-Link calibration.")
    tables: TablesSpec = Field(default_factory=TablesSpec, description="Paper tables.")
    tracking: TrackingSpec = Field(default_factory=TrackingSpec, description="MLflow tracking.")
    plugins: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.]*$")]] = Field(
        default_factory=list,
        description="Python modules that add stages (each defines stages(spec) -> list[StageDef]).",
        json_schema_extra={STRUCTURAL_KEY: True},
    )

    @model_validator(mode="after")
    def _baselines(self) -> Spec:
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"baselines must not repeat, got {self.baselines}")
        if self.method.name in self.baselines:
            raise ValueError(
                f"baselines must not contain the method under study ({self.method.name!r}); got {self.baselines}"
            )
        return self


def section_names() -> list[str]:
    """Top-level keys of the spec, in declaration order."""
    return list(Spec.model_fields)


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The effective spec (defaults filled in) as plain YAML/JSON-able data."""
    return spec.model_dump(mode="json")
