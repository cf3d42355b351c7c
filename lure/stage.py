"""What every ``stages/<name>.py`` shares: load and check the spec, restrict it, time the work, write metrics.

A stage module stays a few lines long::

    with run_stage("prepare") as st:
        st.metrics.update(prepare(st.spec.data, st.spec.seed, Path(PREPARED)))
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from lure.io import write_json
from lure.layout import metrics_file
from lure.pipeline.stages import read_dep_metrics
from lure.registry import StageDef
from lure.spec.load import SpecError, load_spec
from lure.spec.view import SpecView

err_console = Console(stderr=True)


@dataclass
class StageRun:
    name: str
    spec: Any  # SpecView; typed loosely so stage code reads naturally (st.spec.data.source.n_users)
    definition: StageDef
    metrics: dict[str, Any] = field(default_factory=dict)

    def dep_metrics(self) -> dict[str, Any]:
        return read_dep_metrics(self.definition)


def is_main_process() -> bool:
    """False on the non-zero ranks of a data-parallel launch (``accelerate launch`` sets RANK): they write nothing."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def open_spec(stage: str, params_file: str = "params.yaml") -> tuple[SpecView, StageDef]:
    """Validate params.yaml, refuse a dvc.yaml generated for another pipeline shape, and restrict the view."""
    from lure.pipeline.generate import shape_mismatch
    from lure.pipeline.stages import pipeline_stages

    try:
        spec = load_spec(params_file)
    except SpecError as exc:
        fail(str(exc))
    problem = shape_mismatch(spec)
    if problem:
        fail(problem)
    try:
        stages = {s.name: s for s in pipeline_stages(spec)}
    except ValueError as exc:
        fail(str(exc))
    if stage not in stages:
        fail(f"no stage named {stage!r} in this pipeline (have: {', '.join(stages)})")
    return SpecView(spec, stages[stage].params, stage), stages[stage]


@contextmanager
def run_stage(name: str, *, write_metrics: bool = True) -> Iterator[StageRun]:
    """Run a stage body; on success write ``metrics/<name>.json`` (with wall time) atomically."""
    t0 = time.perf_counter()
    view, definition = open_spec(name)
    run = StageRun(name=name, spec=view, definition=definition)
    yield run
    if write_metrics and is_main_process():
        run.metrics["wall_time_s"] = round(time.perf_counter() - t0, 3)
        write_json(metrics_file(name), run.metrics)
