"""Experiments as DVC lists them, and the comparison of their headline metrics (``lure exp show``).

``dvc exp show --json`` nests the workspace, each commit (baseline) and each experiment of a commit, with their
``params.yaml`` and every metrics file. :func:`experiments_from_exp_show` flattens that into :class:`Experiment` s,
skipping queued, running and failed ones (their files are not their results). :func:`compare` then picks each
stage's declared headline metrics (``StageDef.headline``) and the parameters that differ between the experiments,
and marks the best value of each metric that has a direction. Rendering is the CLI's (``lure.display``).
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lure.layout import metrics_file
from lure.registry import StageDef


@dataclass(frozen=True)
class Experiment:
    """One row of ``dvc exp show``: its name, git revision, ``params.yaml`` data and metrics by stage name."""

    name: str
    rev: str
    params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    kind: str = "experiment"  # workspace, commit or experiment


def dvc_exp_show(cwd: Path | None = None, *, all_commits: bool = True) -> Any:
    """``dvc exp show --json`` of the project in ``cwd`` (every commit's experiments with ``all_commits``, else the
    workspace, HEAD and HEAD's experiments); raises with DVC's message on failure."""
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else [])],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )
    if shown.returncode != 0:
        raise RuntimeError(f"dvc exp show failed: {shown.stderr.strip() or shown.stdout.strip()}")
    return json.loads(shown.stdout)


def metrics_at(rev: str, stage: str, cwd: Path | None = None) -> Any:
    """A stage's whole metrics file as the experiment or commit ``rev`` holds it (``workspace``: the file on disk);
    None where it has none.

    Why: ``dvc exp show --json`` keeps numbers only and drops lists (a distribution such as an evaluation's
    ``top1_group_share``), so a reader that needs them reads the file from git.
    """
    path = metrics_file(stage)
    if rev == "workspace":
        file = (cwd or Path.cwd()) / path
        return json.loads(file.read_text()) if file.is_file() else None
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=False, cwd=cwd)
    return json.loads(shown.stdout) if shown.returncode == 0 else None


def _rows(obj: Any, kind: str) -> Iterable[tuple[dict[str, Any], str]]:
    """Every (row, kind) of the exp-show tree whose run finished (or that has no executor: workspace, commits)."""
    if isinstance(obj, list):
        for value in obj:
            yield from _rows(value, kind)
        return
    if not isinstance(obj, dict):
        return
    state = (obj.get("executor") or {}).get("state")
    if state not in (None, "success"):  # queued, running or failed: its files are not (yet) its results
        return
    data = obj.get("data")
    if isinstance(data, dict) and "params" in data:
        yield obj, kind
    for key, value in obj.items():
        if key == "experiments":
            yield from _rows(value, "experiment")
        elif key == "revs":
            yield from _rows(value, kind)


def experiments_from_exp_show(shown: Any) -> list[Experiment]:
    """The finished experiments of ``dvc exp show --json``, in DVC's order (workspace, then each commit and its
    experiments). Metrics are keyed by stage name (``metrics/train-sft.json`` → ``train-sft``)."""
    found: list[Experiment] = []
    for row, kind in _rows(shown, "commit"):
        data = row["data"]
        rev = str(data.get("rev") or row.get("rev") or "")
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        metrics = {
            Path(path).stem: (entry or {}).get("data")
            for path, entry in (data.get("metrics") or {}).items()
            if (entry or {}).get("data") is not None
        }
        row_kind = "workspace" if rev == "workspace" else kind
        name = row.get("name") or data.get("name") or (rev if row_kind == "workspace" else rev[:7])
        found.append(Experiment(str(name), rev, params, metrics, row_kind))
    return found


def flatten_params(params: Any, prefix: str = "", *, index_lists: bool = False) -> dict[str, Any]:
    """``{"method": {"tau": 0.5}}`` → ``{"method.tau": 0.5}``; lists stay values, or with ``index_lists`` each
    entry gets its index (``{"share": [0.1, 0.9]}`` → ``{"share.0": 0.1, "share.1": 0.9}``)."""
    if isinstance(params, dict):
        items: Iterable[tuple[Any, Any]] = params.items()
    elif index_lists and isinstance(params, list):
        items = enumerate(params)
    else:
        return {prefix.rstrip("."): params}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten_params(value, f"{prefix}{key}.", index_lists=index_lists))
    return out


def changed_params(experiments: Sequence[Experiment]) -> list[str]:
    """Dotted parameters whose value is not the same in every experiment (missing counts as a value)."""
    flat = [flatten_params(e.params) for e in experiments]
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]


@dataclass(frozen=True)
class MetricRow:
    """One headline metric across experiments: values (None where absent) and the index of the best one."""

    name: str
    better: str | None
    values: list[float | None]
    best: int | None


def _better(a: float, b: float, better: str) -> bool:
    return a > b if better == "higher" else a < b


def headline_rows(
    experiments: Sequence[Experiment],
    stages: dict[str, StageDef],
    patterns: Sequence[str] = (),
) -> list[MetricRow]:
    """Headline metrics ``<stage>/<label>`` of every experiment, in pipeline order, filtered by shell-style
    ``patterns`` (any match keeps a metric). The best value is marked only when two or more experiments differ."""
    order: dict[str, str | None] = {}
    per_experiment: list[dict[str, float]] = []
    for experiment in experiments:
        values: dict[str, float] = {}
        for stage_name, stage in stages.items():
            data = experiment.metrics.get(stage_name)
            if data is None:
                continue
            for item in stage.headline_values(data):
                name = f"{stage_name}/{item.label}"
                order.setdefault(name, item.better)
                values[name] = item.value
        per_experiment.append(values)
    rows = []
    for name, better in order.items():
        if patterns and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        values = [v.get(name) for v in per_experiment]
        present = [(i, x) for i, x in enumerate(values) if x is not None]
        best = None
        if better and len({x for _, x in present}) > 1:
            best = present[0][0]
            for i, x in present[1:]:
                if _better(x, values[best], better):  # type: ignore[arg-type]
                    best = i
        rows.append(MetricRow(name, better, values, best))
    return rows
