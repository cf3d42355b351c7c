"""The root experiment spec: the single source of truth for every parameter of every stage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import Field, StringConstraints, create_model, model_validator

from lure.spec.abpo import AbpoSpec
from lure.spec.base import STRUCTURAL_KEY, Section
from lure.spec.calibrate import CalibrateSpec
from lure.spec.data import DataSpec
from lure.spec.eval import EvalSpec
from lure.spec.exposynth import ExposynthSpec
from lure.spec.judge import MAR_RATING_SOURCES, JudgeSpec, SimulatedJudgeSpec
from lure.spec.llm import ModelSpec
from lure.spec.method import BaselineName, Method
from lure.spec.pairs import PairsSpec
from lure.spec.propensity import PropensitySpec
from lure.spec.reclaif import ReclaifSpec, is_simulated
from lure.spec.tables import TablesSpec
from lure.spec.tracking import TrackingSpec
from lure.spec.train import TrainSpec


class Spec(Section):
    """An experiment: which data, which method under study, which baselines, and how everything is evaluated."""

    seed: int = Field(0, ge=0, le=2**31 - 1, description="Master random seed of every stage.")
    data: DataSpec = Field(default_factory=DataSpec, description="Dataset source, world generator, bins, splits.")
    propensity: PropensitySpec = Field(default_factory=PropensitySpec, description="Propensity estimation.")
    pairs: PairsSpec = Field(default_factory=PairsSpec, description="Matched item pairs.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="Causal LM of the generative recommenders.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Fine-tuning of the generative recommenders.")
    method: Method | None = Field(
        default_factory=lambda: {"name": "gdrt"},
        description="The method under study (null with no baselines: offline evaluation only, no LLM stage).",
    )
    baselines: list[BaselineName] = Field(
        default_factory=lambda: ["sft", "sasrec", "popularity"],
        description="Methods the method under study is compared with (one training stage each).",
        json_schema_extra={STRUCTURAL_KEY: True},
    )
    eval: EvalSpec = Field(default_factory=EvalSpec, description="Offline evaluation.")
    judge: JudgeSpec | None = Field(
        default_factory=JudgeSpec,
        description="RecJudge-X, the pairwise LLM judge of the matched pairs (LURE §2.1; null = no judge stages).",
    )
    calibrate: CalibrateSpec | None = Field(
        default_factory=CalibrateSpec,
        description="Calib-Link, the isotonic map from the judge's RJS to the IPS recall lift (LURE §2.3; null = "
        "no calibrate stage; needs the judge).",
    )
    exposynth: ExposynthSpec | None = Field(
        default_factory=ExposynthSpec,
        description="ExpoSynth, exposure-controlled synthetic interactions, and the augment loop that re-trains the "
        "zoo on real + synthetic interactions (LURE §2.2; null = neither stage; needs item genres).",
    )
    reclaif: ReclaifSpec | None = Field(
        default_factory=ReclaifSpec,
        description="RecLAIF: a recommender distilled from a teacher, then iterative DPO on judge-preferred pairs "
        "(null = no reclaif stages; the simulated teacher and judge need the world, a model teacher and judge run "
        "anywhere).",
    )
    abpo: AbpoSpec | None = Field(
        default_factory=AbpoSpec,
        description="ABPO: continual updates of the SFT recommender from logged bandit feedback, next to the methods "
        "it is compared with (null = no banditlog and abpo stages; needs the LLM stages: a method under study).",
    )
    tables: TablesSpec = Field(default_factory=TablesSpec, description="Paper tables.")
    tracking: TrackingSpec = Field(default_factory=TrackingSpec, description="MLflow tracking.")
    plugins: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.]*$")]] = Field(
        default_factory=list,
        description="Python modules imported before validation; each registers definitions (a training method in "
        "lure.registry.METHODS, an analysis in ANALYSES, ...) exactly as the built-in ones do (docs/pipeline.md).",
        json_schema_extra={STRUCTURAL_KEY: True},
    )

    @model_validator(mode="after")
    def _judge_fits_data(self) -> Spec:
        world = self.data.source.name == "world"
        if self.judge is not None and isinstance(self.judge.backend, SimulatedJudgeSpec) and not world:
            raise ValueError(
                f"judge.backend 'simulated' answers from the world's true relevance, but data.source is "
                f"{self.data.source.name!r}: set judge.backend to a real judge ('openai' or 'transformers') or judge "
                "to null"
            )
        if (
            self.judge is not None
            and self.judge.validity is not None
            and self.data.source.name not in MAR_RATING_SOURCES
        ):
            raise ValueError(
                f"judge.validity needs ratings collected missing at random ({', '.join(MAR_RATING_SOURCES)}); "
                f"data.source is {self.data.source.name!r}: set judge.validity to null"
            )
        if self.calibrate is not None:
            if self.judge is None:
                raise ValueError("calibrate maps the judge's RJS to recall: it needs the judge section (or null)")
            if self.calibrate.reference not in self.eval.models:
                raise ValueError(
                    f"calibrate.reference {self.calibrate.reference!r} is not among eval.models {self.eval.models}"
                )
            if self.calibrate.k not in self.eval.ks:
                raise ValueError(f"calibrate.k {self.calibrate.k} is not among eval.ks {self.eval.ks}")
            if self.calibrate.estimator in ("ips", "truth") and not world:
                raise ValueError(
                    f"calibrate.estimator {self.calibrate.estimator!r} needs the world (the IPS normaliser or the "
                    f"truth); on {self.data.source.name!r} use 'snips' or 'ips_global_sn'"
                )
        return self

    @model_validator(mode="after")
    def _exposynth_fits(self) -> Spec:
        if self.exposynth is None:
            return self
        target = self.exposynth.target
        if target is not None and len(target) != self.data.bins.n_pop_bins:
            raise ValueError(
                f"exposynth.target has {len(target)} weights; it needs one per popularity bin "
                f"(data.bins.n_pop_bins = {self.data.bins.n_pop_bins})"
            )
        missing = [m for m in self.exposynth.models or () if m not in self.eval.models]
        if missing:
            raise ValueError(
                f"exposynth.models {missing} are not among eval.models {self.eval.models}: the augment stage "
                "compares each re-trained model with its zoo stage's results"
            )
        return self

    @model_validator(mode="after")
    def _reclaif_fits(self) -> Spec:
        if self.reclaif is None:
            return self
        simulated = [f"reclaif.{r}" for r in ("teacher", "judge") if is_simulated(getattr(self.reclaif, r))]
        if simulated and self.data.source.name != "world":
            raise ValueError(
                f"{' and '.join(simulated)}: the simulated roles answer from the world's truth, but data.source is "
                f"{self.data.source.name!r}: give them a model (name: openai or transformers; docs/reclaif.md)"
            )
        if self.reclaif.history > self.data.splits.history_max:
            raise ValueError(
                f"reclaif.history {self.reclaif.history} exceeds data.splits.history_max "
                f"{self.data.splits.history_max}: the windows hold no longer history"
            )
        return self

    @model_validator(mode="after")
    def _baselines(self) -> Spec:
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"baselines must not repeat, got {self.baselines}")
        if self.method is None:
            if self.baselines:
                raise ValueError(
                    f"baselines need a method under study to compare with; got method null, baselines {self.baselines}"
                )
            return self
        if self.method.name in self.baselines:
            raise ValueError(
                f"baselines must not contain the method under study ({self.method.name!r}); got {self.baselines}"
            )
        return self

    @model_validator(mode="after")
    def _abpo_fits(self) -> Spec:
        if self.abpo is None:
            return self
        if self.method is None:
            raise ValueError(
                "abpo updates the SFT recommender, which the LLM stages train only with a method under study: set "
                "method (e.g. {name: gdrt}) or abpo to null"
            )
        return self


def spec_model(plugins: Sequence[str] = ()) -> type[Spec]:
    """The spec model for a spec naming ``plugins``: :class:`Spec`, with the ``method`` union (and the names
    ``baselines`` accepts) extended by the methods those modules register with a spec class of their own.

    Built-in methods are members of the static union; a plugin method joins it here, so it is validated, described
    and rejected with the same messages as a built-in one (docs/pipeline.md, "Adding a method as a plugin").
    """
    from lure.registry import METHODS, load_plugins

    if not plugins:
        return Spec
    load_plugins(plugins)
    added = [d for d in METHODS.registered_by(plugins) if d.spec is not None]
    if not added:
        return Spec
    builtin = get_args(get_args(Method)[0])
    members = Union[(*builtin, *(d.spec for d in added))]
    # a baseline has no section of its own, so only methods without parameters can be one (as SFT; not GDRT)
    parameter_free = [d.name for d in added if set(d.spec.model_fields) == {"name"}]
    names = Literal[(*get_args(BaselineName), *parameter_free)]  # type: ignore[valid-type]
    return create_model(  # type: ignore[no-any-return]
        "Spec",
        __base__=Spec,
        method=(Annotated[members, Field(discriminator="name")] | None, Spec.model_fields["method"]),
        baselines=(list[names], Spec.model_fields["baselines"]),
    )


def section_names() -> list[str]:
    """Top-level keys of the spec, in declaration order."""
    return list(Spec.model_fields)


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The effective spec (defaults filled in) as plain YAML/JSON-able data."""
    return spec.model_dump(mode="json")
