"""MLflow logging of one pipeline execution: params, every metric of the pipeline, artifacts, tags, stage runs.

Imported only by the ``track`` stage and the CLI: MLflow adds seconds of import time, which the other stages
should not pay.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

EXPS_MARKER = os.sep + os.path.join(".dvc", "tmp", "exps") + os.sep
_ILLEGAL = re.compile(r"[^A-Za-z0-9_\-. /]")


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


def split_metrics(metrics: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, float], dict[str, str]]:
    """Flatten nested metrics: numbers become MLflow metrics, strings (fingerprints, names) become tags."""
    numbers: dict[str, float] = {}
    strings: dict[str, str] = {}
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            n, s = split_metrics(value, path + ".")
            numbers.update(n)
            strings.update(s)
        elif isinstance(value, bool) or isinstance(value, (int, float)):
            numbers[metric_name(path)] = float(value)
        elif isinstance(value, str):
            strings[metric_name(path)] = value
    return numbers, strings


def git_rev(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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


def log_pipeline_run(
    *,
    experiment: str,
    params: Mapping[str, Any],
    stage_metrics: Mapping[str, Mapping[str, Any]],
    artifacts: list[Path],
    tags: Mapping[str, str],
    run_name: str | None = None,
) -> str:
    """Log one parent run (all params/metrics/artifacts/tags) and a child run per stage with its wall time."""
    import mlflow

    root = repo_root()
    local_store = "MLFLOW_TRACKING_URI" not in os.environ  # read first: set_tracking_uri also exports it
    mlflow.set_tracking_uri(tracking_uri(root))
    if local_store:
        artifact_root = (root / ".mlflow" / "artifacts").as_uri()
        if _with_retries(lambda: mlflow.get_experiment_by_name(experiment)) is None:
            try:
                _with_retries(lambda: mlflow.create_experiment(experiment, artifact_location=artifact_root))
            except Exception:  # noqa: BLE001 - created concurrently by a sibling queue worker
                pass
    mlflow.set_experiment(experiment)
    numbers, strings = {}, {}
    for stage, values in stage_metrics.items():
        n, s = split_metrics(values, f"{stage}.")
        numbers.update(n)
        strings.update(s)
    flat_params = {metric_name(k): _param_value(v) for k, v in params.items()}

    def _log() -> str:
        with mlflow.start_run(run_name=run_name) as parent:
            mlflow.set_tags({**tags, **strings})
            mlflow.log_params(flat_params)
            if numbers:
                mlflow.log_metrics(numbers)
            for path in artifacts:
                if path.is_dir():
                    mlflow.log_artifacts(str(path), artifact_path=str(path))
                elif path.is_file():
                    mlflow.log_artifact(str(path), artifact_path=str(path.parent))
            for stage, values in stage_metrics.items():
                wall = values.get("wall_time_s")
                with mlflow.start_run(run_name=stage, nested=True):
                    mlflow.set_tag("stage", stage)
                    if isinstance(wall, (int, float)):
                        mlflow.log_metric("wall_time_s", float(wall))
            return parent.info.run_id

    return _with_retries(_log)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (list, dict)) else str(value)
    return text[:6000]
