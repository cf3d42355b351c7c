"""MLflow view of one pipeline execution: a parent run that spans the stages that ran and carries each stage's
headline metrics, the full metric tree as one artifact, and a child run per stage (ran or cached, its loss curves).

Why this shape: MLflow's runs table, compare view and metric charts are only readable with a few metrics per run,
so only the metrics each stage declares as its headline (``StageDef.headline``) become MLflow metrics; everything
else is in ``metrics.json``. The parts that decide what is logged (run name, headline selection, stage status, loss
curves) are plain functions, tested without MLflow or DVC; :func:`log_pipeline_run` only writes them.

Imported only by the ``track`` stage: MLflow adds seconds of import time, which the other stages should not pay.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lure.io import parse_yaml, read_json
from lure.layout import LOG_HISTORY, PARAMS, STAGE_RUNS_DIR, stage_run_file
from lure.spec.load import SpecError, load_spec, spec_hash, validate_spec
from lure.spec.model import Spec
from lure.stage import file_digest

if TYPE_CHECKING:
    from lure.registry import StageDef

EXPS_MARKER = os.sep + os.path.join(".dvc", "tmp", "exps") + os.sep
_ILLEGAL = re.compile(r"[^A-Za-z0-9_\-. /]")
#: Longest run name: MLflow's runs table and chart legends cut longer names.
RUN_NAME_LIMIT = 59
#: Spec sections left out of a run's name: they say where results are logged, not what they are.
NAME_IGNORES = ("tracking",)
#: Keys of a Trainer log-history row that are not curves: the x axis, and the end-of-training summary's figures.
NOT_CURVES = frozenset({"step", "epoch", "total_flos", "train_runtime", "train_samples_per_second"})
SUMMARY_KEY = "train_runtime"  # present only in the summary row Trainer appends when training ends

#: Experiment tag that makes MLflow's UI open the experiment on its runs table (model training), not on traces.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
#: A view of the runs table with the headline metrics as columns, stored as an experiment tag the way MLflow's UI
#: stores a shared view (``mlflow.sharedViewState.<key>``): ``#/experiments/<id>/runs?viewStateShareKey=lure``.
SHARED_VIEW_KEY = "lure"
SHARED_VIEW_TAG = f"mlflow.sharedViewState.{SHARED_VIEW_KEY}"

Status = Literal["ran", "cached"]


def repo_root(start: Path | None = None) -> Path:
    """The user's repository, also from inside a DVC queue/temp workspace (``<repo>/.dvc/tmp/exps/...``)."""
    here = str((start or Path.cwd()).resolve())
    if EXPS_MARKER in here:
        return Path(here.split(EXPS_MARKER, 1)[0])
    return Path(here)


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set (a team server), else a SQLite store inside the repository."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    db = repo_root(root) / ".mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def metric_name(name: str) -> str:
    """MLflow-legal metric/param key: ``ndcg@10`` → ``ndcg_at_10``; other illegal characters → ``_``."""
    return _ILLEGAL.sub("_", name.replace("@", "_at_"))


# ---------------------------------------------------------------- the run's name


def git(root: Path, *args: str) -> str | None:
    """stdout of ``git <args>`` in ``root``, or None when git or the revision is missing (a fresh repository)."""
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout


def git_rev(root: Path) -> str:
    """The commit this execution starts from: DVC's baseline for an experiment (also in a queue worker), else HEAD."""
    baseline = os.environ.get("DVC_EXP_BASELINE_REV")
    if baseline:
        return baseline
    out = git(root, "rev-parse", "HEAD")
    return out.strip() if out else "unknown"


def committed_spec(root: Path, rev: str) -> Spec | None:
    """``params.yaml`` as committed at ``rev`` (the baseline the run's name is relative to); None when absent."""
    text = git(root, "show", f"{rev}:{PARAMS}") if rev != "unknown" else None
    if text is None:
        return None
    source = f"{rev[:7]}:{PARAMS}"
    try:
        return validate_spec(parse_yaml(text, source), source)
    except (SpecError, ValueError):  # a commit from before a spec change: no baseline to name changes against
        return None


def spec_file_name(spec: Spec, specs_dir: Path) -> str | None:
    """The name of the spec file under ``specs_dir`` that validates to ``spec`` (``world`` for specs/world.yaml).

    ``lure spec use`` does not record which file it activated, so the file is recognised by content (the effective
    spec's hash); files that do not validate any more are skipped.
    """
    wanted = spec_hash(spec)
    for path in sorted(specs_dir.glob("*.yaml")):
        try:
            if spec_hash(load_spec(path)) == wanted:
                return path.stem
        except (SpecError, ValueError, OSError):
            continue
    return None


def changed_params(current: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened parameters of ``current`` whose value differs from (or is absent in) ``base``, sorted by key,
    without the sections in :data:`NAME_IGNORES`."""
    return {
        key: current[key]
        for key in sorted(current)
        if key.split(".", 1)[0] not in NAME_IGNORES and (key not in base or base[key] != current[key])
    }


def short_value(value: Any) -> str:
    """A parameter value as a run name shows it: YAML-like and without spaces (``0.3``, ``true``, ``[sft,bpr]``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(short_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{short_value(v)}" for k, v in value.items()) + "}"
    return str(value).replace(" ", "_")


def run_name(
    *, exp_name: str | None, spec_name: str, changed: Mapping[str, Any], rev: str, limit: int = RUN_NAME_LIMIT
) -> str:
    """The parent run's name: the DVC experiment's name when there is one; otherwise ``<spec> <changes> @<rev>``.

    ``<changes>`` are the changed parameters (``method.tau=0.3``) in key order, as many as fit in ``limit`` with
    ``+N`` for the rest; ``<rev>`` is the short git revision. Deterministic: the same spec, changes and commit give
    the same name.
    """
    if exp_name:
        return exp_name[:limit]
    head = spec_name[:24]
    tail = f" @{rev[:7]}" if rev and rev != "unknown" else ""
    budget = limit - len(head) - len(tail) - 1
    items = [f"{key}={short_value(value)}" for key, value in changed.items()]
    shown: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        candidate = ",".join([*shown, item]) + (f",+{rest}" if rest else "")
        if len(candidate) > budget:
            break
        shown.append(item)
    left = len(items) - len(shown)
    changes = ",".join([*shown, f"+{left}"]) if shown and left else ",".join(shown)
    if items and not shown:
        changes = f"{len(items)}_params_changed"[:budget]
    return " ".join(p for p in (head, changes) if p) + tail


# ---------------------------------------------------------------- what each stage contributes


def headline_metrics(
    stages: Sequence[StageDef], stage_metrics: Mapping[str, Any], lead: str | None = None
) -> dict[str, float]:
    """``{<stage>.<label>: value}`` (MLflow-legal names) of every stage's declared headline metrics: the ``lead``
    stage's first, then in pipeline order. The order is the logging order, and MLflow's compare view plots the first
    logged metric by default, so ``lead`` is the stage that evaluates the method under study."""
    found: dict[str, float] = {}
    for stage in sorted(stages, key=lambda s: s.name != lead):  # stable: the others keep the pipeline order
        if stage.name in stage_metrics:
            for value in stage.headline_values(stage_metrics[stage.name]):
                found[metric_name(f"{stage.name}.{value.label}")] = value.value
    return found


@dataclass(frozen=True)
class Execution:
    """When a stage ran, from its execution record (``lure.layout.stage_run_file``); unix seconds."""

    started_at: float
    ended_at: float


def stage_executions(stages: Sequence[StageDef]) -> dict[str, Execution]:
    """The stages that ran since the last tracked run: those with an execution record that belongs to the metrics
    file now in the workspace (same sha256; a stage without metrics file needs only the record).

    A stage DVC restored from its cache (or whose metrics a ``git checkout`` replaced) has no record, or one whose
    hash does not match, so it counts as cached.
    """
    found: dict[str, Execution] = {}
    for stage in stages:
        path = Path(stage_run_file(stage.name))
        if not path.is_file():
            continue
        record = read_json(path)
        try:
            started, ended = float(record["started_at"]), float(record["ended_at"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: an execution record needs numeric 'started_at' and 'ended_at'") from None
        digest = record.get("metrics_sha256")
        if stage.metrics is not None and not (Path(stage.metrics).is_file() and file_digest(stage.metrics) == digest):
            continue  # the metrics in the workspace are not the ones this execution wrote
        found[stage.name] = Execution(started, ended)
    return found


def clear_executions(runs_dir: Path = Path(STAGE_RUNS_DIR)) -> None:
    """Remove the execution records once tracked, so the next run counts only the stages that ran after it."""
    if runs_dir.is_dir():
        for path in runs_dir.glob("*.json"):
            path.unlink(missing_ok=True)


def log_history_file(stage: StageDef) -> Path | None:
    """The Trainer's log history among the stage's outputs (``<out>/log_history.json``: every ``train-*``)."""
    for out in stage.outs:
        path = Path(out) / LOG_HISTORY
        if path.is_file():
            return path
    return None


def loss_curves(log_history: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, int]]:
    """``(key, value, step)`` for every numeric entry of the Trainer's periodic logs: loss, learning rate, grad norm
    and, for GDRT, each group's loss and weight (``gdrt_loss_<g>``, ``gdrt_q_<g>``). Skips the end-of-training
    summary row (``train_runtime``), the axes (``step``, ``epoch``) and non-finite values."""
    curves: list[tuple[str, float, int]] = []
    for row in log_history:
        step = row.get("step")
        if not isinstance(step, int) or SUMMARY_KEY in row:
            continue
        for key in sorted(row):
            value = row[key]
            if key in NOT_CURVES or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                curves.append((metric_name(key), float(value), step))
    return curves


@dataclass
class StageRecord:
    """What one stage contributes to the MLflow view of this execution."""

    name: str
    status: Status
    headline: dict[str, float] = field(default_factory=dict)  # label (MLflow-legal) -> value
    wall_time_s: float | None = None
    execution: Execution | None = None
    curves: list[tuple[str, float, int]] = field(default_factory=list)


def stage_records(
    stages: Sequence[StageDef], stage_metrics: Mapping[str, Any], executions: Mapping[str, Execution]
) -> list[StageRecord]:
    """One record per stage (``track`` excluded): status, headline metrics, wall time, loss curves."""
    records = []
    for stage in stages:
        if stage.name == "track":
            continue
        metrics = stage_metrics.get(stage.name, {})
        execution = executions.get(stage.name)
        wall = metrics.get("wall_time_s") if isinstance(metrics, Mapping) else None
        if wall is None and execution is not None:
            wall = round(execution.ended_at - execution.started_at, 3)
        history = log_history_file(stage)
        records.append(
            StageRecord(
                name=stage.name,
                status="ran" if execution else "cached",
                headline={metric_name(v.label): v.value for v in stage.headline_values(metrics)},
                wall_time_s=float(wall) if isinstance(wall, int | float) else None,
                execution=execution,
                curves=loss_curves(read_json(history)) if history else [],
            )
        )
    return records


def pipeline_start(records: Sequence[StageRecord], default: float) -> float:
    """The earliest start of the stages that ran (unix seconds); ``default`` when none did."""
    starts = [r.execution.started_at for r in records if r.execution]
    return min(starts, default=default)


# ---------------------------------------------------------------- writing to MLflow


def shared_view(headline: Mapping[str, float]) -> str:
    """The runs-table view of :data:`SHARED_VIEW_TAG`: the headline metrics as columns, in logging order.

    MLflow's runs table shows no metric column until one is picked; this is the state its "share view" button
    stores (JSON; column ids are ``metrics.`<key>```), verified against MLflow 3.17's UI.
    """
    return json.dumps({"selectedColumns": [f"metrics.`{key}`" for key in headline]})


def _with_retries(fn: Any, attempts: int = 6) -> Any:
    """SQLite stores refuse concurrent writers ('database is locked') when queued experiments finish together."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if i == attempts - 1 or "locked" not in str(exc).lower():
                raise
            time.sleep(0.5 * 2**i)
    return None


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def log_pipeline_run(
    *,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    headline: Mapping[str, float],
    metric_tree: Mapping[str, Any],
    records: Sequence[StageRecord],
    artifacts: Sequence[Path],
    tags: Mapping[str, str],
    started_at: float,
) -> str:
    """Log the parent run (params, headline metrics, ``metrics.json``, artifacts, tags), from ``started_at`` to now,
    and one child run per stage record; returns the parent's run id."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    root = repo_root()
    local_store = "MLFLOW_TRACKING_URI" not in os.environ
    uri = tracking_uri(root)
    client = MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(uri)

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return _with_retries(lambda: fn(*args, **kwargs))

    found = call(client.get_experiment_by_name, experiment)
    if found is None:
        location = (root / ".mlflow" / "artifacts").as_uri() if local_store else None
        try:
            call(client.create_experiment, experiment, artifact_location=location)
        except Exception:  # noqa: BLE001 - created concurrently by a sibling queue worker
            pass
        found = call(client.get_experiment_by_name, experiment)
    exp_id = found.experiment_id
    if EXPERIMENT_KIND[0] not in found.tags:  # MLflow 3's UI opens other experiments on its GenAI (traces) pages
        call(client.set_experiment_tag, exp_id, *EXPERIMENT_KIND)
    view = shared_view(headline)
    if found.tags.get(SHARED_VIEW_TAG) != view:
        call(client.set_experiment_tag, exp_id, SHARED_VIEW_TAG, view)

    now_ms = _ms(time.time())
    parent = call(client.create_run, exp_id, start_time=_ms(started_at), tags=dict(tags), run_name=run_name)
    run_id = parent.info.run_id
    call(
        client.log_batch,
        run_id,
        metrics=[Metric(k, float(v), now_ms, 0) for k, v in headline.items()],
        params=[Param(metric_name(k), _param_value(v)) for k, v in params.items()],
    )
    call(client.log_dict, run_id, dict(metric_tree), "metrics.json")
    for path in artifacts:
        if path.is_dir():
            call(client.log_artifacts, run_id, str(path), artifact_path=str(path))
        elif path.is_file():
            call(client.log_artifact, run_id, str(path), artifact_path=str(path.parent))
    for record in records:
        start = _ms(record.execution.started_at) if record.execution else now_ms
        end = _ms(record.execution.ended_at) if record.execution else now_ms
        child_tags = {"mlflow.parentRunId": run_id, "stage": record.name, "lure.status": record.status}
        child = call(client.create_run, exp_id, start_time=start, tags=child_tags, run_name=record.name)
        metrics = [Metric(k, v, end, 0) for k, v in record.headline.items()]
        if record.wall_time_s is not None:
            metrics.append(Metric("wall_time_s", record.wall_time_s, end, 0))
        metrics += [Metric(k, v, end, step) for k, v, step in record.curves]
        call(client.log_batch, child.info.run_id, metrics=metrics)
        call(client.set_terminated, child.info.run_id, "FINISHED", end_time=end)
    call(client.set_terminated, run_id, "FINISHED", end_time=_ms(time.time()))
    return run_id


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (list, dict)) else str(value)
    return text[:6000]
