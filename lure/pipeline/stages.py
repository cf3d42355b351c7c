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

    @property
    def module_name(self) -> str:
        return self.module or f"stages.{self.name}"

    @property
    def script(self) -> str:
        """The stage's own source file (a code dependency of the stage)."""
        return self.module_name.replace(".", "/") + ".py"

    @property
    def cmd(self) -> str:
        return " ".join(["python -m", self.module_name, *self.args])

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
