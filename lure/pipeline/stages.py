"""Declarations of every DVC stage: what it reads from the spec, which files it depends on and what it writes.

This is the one place that knows the pipeline's shape. ``lure.pipeline.generate`` turns it into ``dvc.yaml``;
``lure.stage`` uses it to restrict each stage to the spec fields declared here. To add a stage, add a
:class:`StageDef` to :func:`pipeline_stages` and a thin module ``stages/<name>.py``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lure.spec.model import Spec, section_names

SPEC_OK = ".lure/spec.ok"
PREPARED = "data/prepared"
PROPENSITY_DIR = "data/propensity"
PROPENSITY_MODEL = f"{PROPENSITY_DIR}/model.joblib"
PAIRS_DIR = "data/pairs"
PAIRS = f"{PAIRS_DIR}/pairs.parquet"
ZOO_DIR = "data/zoo"
EVALUATE_DIR = "reports/evaluate"
TABLES_DIR = "reports/tables"
MLFLOW_RUN = "reports/mlflow_run.json"
LLM_DIR = "data/llm"
LLM_BASE = f"{LLM_DIR}/base"
GDRT_GROUPS = f"{LLM_DIR}/gdrt-groups"
ITEM_RELEVANCE = f"{LLM_DIR}/item-relevance"
LLM_REPORT_DIR = "reports/llm"

#: Methods that fine-tune the causal LM (one ``train-<method>`` stage each); other baselines are zoo models.
LLM_METHODS = ("sft", "gdrt")

# Library code every stage runs through; a change here re-runs every stage that executes it.
COMMON_CODE = ("lure/stage.py", "lure/io.py")


# Spec fields each zoo model reads besides eval.topk (its builder in lure.models.zoo reads exactly these).
ZOO_MODEL_PARAMS: dict[str, tuple[str, ...]] = {
    "random": (),
    "popularity": (),
    "itemknn": ("eval.itemknn",),
    "als": ("eval.als", "eval.threads"),
    "bpr": ("eval.bpr",),
    "sasrec": ("eval.sasrec", "eval.threads"),
}


def zoo_dir(model: str) -> str:
    return f"{ZOO_DIR}/{model}"


def llm_model_dir(method: str) -> str:
    return f"{LLM_DIR}/{method}"


def llm_eval_dir(name: str) -> str:
    return f"{LLM_DIR}/eval/{name}"


def llm_evaluated(spec: Spec) -> list[str]:
    """Recommenders evaluated on the window test split: the method under study, then the baselines, in spec order."""
    return [spec.method.name, *spec.baselines]


def llm_trained(spec: Spec) -> list[str]:
    """Fine-tuned LLM methods the pipeline needs: those evaluated, plus SFT when it scores relevance (Eq. 2/3)."""
    needed = [m for m in llm_evaluated(spec) if m in LLM_METHODS]
    uses_sft = spec.eval.llm.fairness_scorer == "sft" or (
        spec.method.name == "gdrt" and spec.method.relevance_model == "sft"
    )
    if uses_sft and "sft" not in needed:
        needed.insert(0, "sft")
    return sorted(needed, key=LLM_METHODS.index)  # sft before gdrt: GDRT may group tokens with the SFT model


def metrics_file(stage: str) -> str:
    return f"metrics/{stage}.json"


def read_dep_metrics(stage: StageDef) -> dict[str, Any]:
    """The metrics files ``stage`` declares as deps, as {stage name: content}; never an undeclared file."""
    from lure.io import read_json

    return {Path(p).stem: read_json(p) for p in stage.deps if p.startswith("metrics/") and Path(p).is_file()}


@dataclass(frozen=True)
class StageDef:
    """One DVC stage. ``params`` are dotted spec paths (a section name declares the whole section)."""

    name: str
    params: tuple[str, ...]
    code: tuple[str, ...] = ()
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    uncached_outs: tuple[str, ...] = ()
    has_metrics: bool = True
    plots: tuple[str, ...] = ()
    module: str = ""
    args: tuple[str, ...] = ()
    launcher: tuple[str, ...] = ("python",)

    @property
    def module_name(self) -> str:
        return self.module or f"stages.{self.name}"

    @property
    def script(self) -> str:
        """The stage's own source file (a code dependency of the stage)."""
        return self.module_name.replace(".", "/") + ".py"

    @property
    def cmd(self) -> str:
        return " ".join([*self.launcher, "-m", self.module_name, *self.args])

    @property
    def metrics(self) -> str | None:
        return metrics_file(self.name) if self.has_metrics else None


def plugin_stages(spec: Spec) -> list[StageDef]:
    """Stages contributed by the modules named in ``spec.plugins`` (each defines ``stages(spec) -> list[StageDef]``).

    This is how a researcher adds a method without touching this file: a module on the Python path, named in the
    spec, whose stages run between ``prepare`` and ``tables`` and are validated, generated and tracked like ours.
    """
    found: list[StageDef] = []
    for name in spec.plugins:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"plugins: cannot import {name!r}: {exc}") from None
        build = getattr(module, "stages", None)
        if not callable(build):
            raise ValueError(f"plugins: module {name!r} has no function stages(spec) -> list[StageDef]")
        found.extend(build(spec))
    return found


ACCELERATE_CONFIG = "accelerate/multi_gpu.yaml"


def train_launcher(processes: int) -> tuple[str, ...]:
    """``python`` for one process; ``accelerate launch`` (data-parallel, config in the repository) for several."""
    if processes == 1:
        return ("python",)
    return ("accelerate", "launch", "--config_file", ACCELERATE_CONFIG, "--num_processes", str(processes))


def llm_stages(spec: Spec) -> list[StageDef]:
    """Base model, fine-tuning (SFT, GDRT), Eq. 2 item relevance, window evaluation of every recommender, report."""
    trained = llm_trained(spec)
    evaluated = llm_evaluated(spec)
    llm_code = ("lure/llm", "lure/train", "prompts")
    scorer = llm_model_dir("sft") if spec.eval.llm.fairness_scorer == "sft" else LLM_BASE
    stages = [
        StageDef(
            name="llm-base",
            module="stages.llm_base",
            params=("seed", "model", "eval.llm.attribution_samples"),
            code=llm_code,
            deps=(PREPARED,),
            outs=(LLM_BASE,),
        )
    ]
    for method in trained:
        deps: tuple[str, ...] = (PREPARED, LLM_BASE)
        params: tuple[str, ...] = ("seed", "model", "train")
        if method == "gdrt":
            deps = (*deps, GDRT_GROUPS)
            params = (*params, "method.tau")
            relevance_from = llm_model_dir("sft") if spec.method.relevance_model == "sft" else LLM_BASE
            stages.append(
                StageDef(
                    name="gdrt-groups",
                    module="stages.gdrt_groups",
                    params=("seed", "model", "train.max_samples", "method.groups", "method.grouping",
                            "method.relevance_model"),
                    code=llm_code,
                    deps=(PREPARED, LLM_BASE, relevance_from),
                    outs=(GDRT_GROUPS,),
                )
            )
        stages.append(
            StageDef(
                name=f"train-{method}",
                module="stages.train",
                args=(method,),
                launcher=train_launcher(spec.train.processes),
                params=params,
                code=llm_code,
                deps=deps,
                outs=(llm_model_dir(method),),
            )
        )
    stages.append(
        StageDef(
            name="llm-relevance",
            module="stages.llm_relevance",
            params=("model", "eval.llm.fairness_scorer", "eval.llm.fairness_groups", "eval.llm.rank_batch"),
            code=llm_code,
            deps=(PREPARED, LLM_BASE, scorer),
            outs=(ITEM_RELEVANCE,),
        )
    )
    for name in evaluated:
        model_deps = (LLM_BASE, llm_model_dir(name)) if name in LLM_METHODS else ()
        extra = ("model",) if name in LLM_METHODS else ("eval.threads", *ZOO_MODEL_PARAMS.get(name, ()))
        stages.append(
            StageDef(
                name=f"llm-eval-{name}",
                module="stages.llm_eval",
                args=(name,),
                params=("seed", "eval.llm", *extra),
                code=(*llm_code, "lure/models"),
                deps=(PREPARED, ITEM_RELEVANCE, *model_deps),
                outs=(llm_eval_dir(name),),
            )
        )
    plot = ("lure/plots/base.py", "lure/plots/llm.py")
    stages.append(
        StageDef(
            name="llm-report",
            module="stages.llm_report",
            params=("seed", "data.source", "data.amazon_category", "method.name", "baselines", "eval.llm"),
            code=("lure/llm/evaluate.py", *plot),
            deps=(metrics_file("llm-base"), *(llm_eval_dir(n) for n in evaluated),
                  *(metrics_file(f"llm-eval-{n}") for n in evaluated)),
            outs=(LLM_REPORT_DIR,),
            plots=tuple(f"plots/llm/{name}.{ext}" for name in ("attribution", "top1_groups", "course")
                        for ext in ("csv", "png")),
        )
    )
    return stages


def pipeline_stages(spec: Spec) -> list[StageDef]:
    """The stages this spec needs, in execution order; ``validate`` first, ``track`` last."""
    every_section = tuple(section_names())
    plot = ("lure/plots/base.py",)
    science: list[StageDef] = [
        StageDef(
            name="prepare",
            params=("seed", "data"),
            code=("lure/data", *plot, "lure/plots/popularity.py"),
            outs=(PREPARED,),
            plots=("plots/prepare/popularity.csv", "plots/prepare/popularity.png"),
        ),
        StageDef(
            name="propensity",
            params=("seed", "propensity"),
            code=("lure/propensity", *plot, "lure/plots/calibration.py"),
            deps=(PREPARED,),
            outs=(PROPENSITY_DIR,),
            plots=("plots/propensity/calibration.csv", "plots/propensity/calibration.png"),
        ),
        StageDef(
            name="pairs",
            params=("seed", "pairs"),
            code=("lure/pairs.py", "lure/propensity"),
            deps=(PREPARED, PROPENSITY_DIR),
            outs=(PAIRS_DIR,),
        ),
    ]
    zoo = [
        StageDef(
            name=f"zoo-{model}",
            module="stages.zoo",
            args=(model,),
            params=("seed", "eval.topk", *ZOO_MODEL_PARAMS[model]),
            code=("lure/models",),
            deps=(PREPARED, PAIRS_DIR),
            outs=(zoo_dir(model),),
        )
        for model in spec.eval.models
    ]
    science.extend(zoo)
    science.append(
        StageDef(
            name="evaluate",
            params=("seed", "eval.models", "eval.ks", "eval.bootstrap", "eval.confidence"),
            code=("lure/estimators.py", "lure/propensity", *plot, "lure/plots/estimates.py"),
            deps=(PREPARED, PROPENSITY_DIR, *(zoo_dir(m) for m in spec.eval.models)),
            outs=(EVALUATE_DIR,),
            plots=("plots/evaluate/estimates.csv", "plots/evaluate/estimates.png"),
        )
    )
    science.extend(llm_stages(spec))
    science.extend(plugin_stages(spec))
    result_metrics = tuple(s.metrics for s in science if s.metrics)
    tables = StageDef(
        name="tables",
        params=("tables",),
        code=("lure/tables",),
        deps=result_metrics,
        outs=(TABLES_DIR,),
    )
    track = StageDef(
        name="track",
        params=every_section,
        code=("lure/tracking.py",),
        deps=(*result_metrics, tables.metrics or "", TABLES_DIR, *(p for s in science for p in s.plots)),
        uncached_outs=(MLFLOW_RUN,),
        has_metrics=False,
    )
    validate = StageDef(
        name="validate",
        params=every_section,
        code=("lure/spec", "lure/pipeline", "lure/data/fetch.py"),
        uncached_outs=(SPEC_OK,),
        has_metrics=False,
    )
    return [validate, *science, tables, track]
