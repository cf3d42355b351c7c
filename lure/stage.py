"""What every ``stages/<name>.py`` shares: load and check the spec, restrict it, time the work, write metrics.

A stage module stays a few lines long::

    with run_stage("prepare") as st:
        st.metrics.update(prepare(st.spec.data, st.spec.seed, Path(PREPARED)))
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lure.io import write_json
from lure.layout import PARAMS, metrics_file, stage_run_file
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


def open_spec(stage: str, params_file: str = PARAMS) -> tuple[SpecView, StageDef]:
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


def file_digest(path: str) -> str:
    """sha256 of a file's bytes: ties an execution record to the metrics file that execution wrote."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@contextmanager
def run_stage(name: str, *, write_metrics: bool = True, record_run: bool = True) -> Iterator[StageRun]:
    """Run a stage body; on success write ``metrics/<name>.json`` (with wall time) atomically, then the stage's
    execution record (:func:`stage_run_file`; ``record_run=False`` for ``track``, which consumes the records)."""
    started = time.time()
    t0 = time.perf_counter()
    view, definition = open_spec(name)
    run = StageRun(name=name, spec=view, definition=definition)
    try:
        yield run
    except KeyboardInterrupt as exc:  # Ctrl-C: one line (a training's says where it resumes) and 130, no traceback
        fail(str(exc) or f"{name} interrupted; `dvc repro` runs it again", code=130)
    if not is_main_process():
        return
    if write_metrics:
        run.metrics["wall_time_s"] = round(time.perf_counter() - t0, 3)
        write_json(metrics_file(name), run.metrics)
    if record_run:
        record = {"stage": name, "started_at": round(started, 3), "ended_at": round(time.time(), 3)}
        record["metrics_sha256"] = file_digest(metrics_file(name)) if write_metrics else None
        write_json(stage_run_file(name), record)
    err_console.print(f"{name}: done in {time.perf_counter() - t0:.1f} s", style="dim", highlight=False)
