"""The MLflow view of a pipeline execution (``lure.tracking``, ``stages/track.py``).

Unit tests on hand-made inputs: the run's name, the headline selection, which stages ran (execution records), the
loss curves read from a Trainer log history, and what :func:`log_pipeline_run` writes to a local SQLite store.

End to end (slow): a real MLflow server on a loopback port receives one run per pipeline execution of a copy of the
offline project (conftest.py), with tracking switched on: the first `dvc repro` re-runs validate and track only, so
its run must still carry every stage's headline metrics and mark every other stage cached; and a copy of the LLM
project logs its training stages' loss curves.
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lure.io import write_json
from lure.registry import Headline, StageDef
from lure.tracking import (
    RUN_NAME_LIMIT,
    Execution,
    changed_params,
    headline_metrics,
    loss_curves,
    pipeline_start,
    run_name,
    short_value,
    stage_executions,
    stage_records,
)
from tests.conftest import (
    PROBE_SPEC,
    ROOT,
    SMALL_LLM_WORLD,
    SMALL_OFFLINE,
    copy_project,
    dvc,
    lure,
    ran,
    spec_text,
    tool_env,
)

REV = "0123456789abcdef0123456789abcdef01234567"

# ---------------------------------------------------------------- the run's name


def test_an_experiment_run_is_named_after_the_experiment() -> None:
    assert run_name(exp_name="boot-30", spec_name="world", changed={"eval.bootstrap": 30}, rev=REV) == "boot-30"
    assert run_name(exp_name="x" * 80, spec_name="world", changed={}, rev=REV) == "x" * RUN_NAME_LIMIT


def test_a_workspace_run_is_named_after_its_spec_changes_and_commit() -> None:
    assert run_name(exp_name=None, spec_name="world", changed={"method.tau": 0.3}, rev=REV) == (
        "world method.tau=0.3 @0123456"
    )
    assert run_name(exp_name=None, spec_name="coat", changed={}, rev=REV) == "coat @0123456"
    assert (
        run_name(exp_name="", spec_name="world", changed={"method.tau": 0.3}, rev="unknown") == "world method.tau=0.3"
    )


def test_changes_that_do_not_fit_are_counted() -> None:
    changed = {
        "eval.bootstrap": 30,
        "eval.models": ["als", "bpr"],
        "method.groups": 5,
        "method.tau": 0.3,
        "train.learning_rate": 0.0003,
    }
    # budget 59 - len("world") - len(" @0123456") - 1 = 44: "eval.bootstrap=30,eval.models=[als,bpr],+3" is 42
    name = run_name(exp_name=None, spec_name="world", changed=changed, rev=REV)
    assert name == "world eval.bootstrap=30,eval.models=[als,bpr],+3 @0123456"
    assert len(name) <= RUN_NAME_LIMIT
    assert run_name(exp_name=None, spec_name="world", changed=dict(reversed(changed.items())), rev=REV) != name
    long = {"data.source.raw_dir": "/" + "d" * 60}
    assert run_name(exp_name=None, spec_name="world", changed=long, rev=REV) == "world 1_params_changed @0123456"


def test_changed_params_against_the_committed_spec() -> None:
    base = {"a.x": 1, "a.y": [1], "b.c": 2, "tracking.enabled": False}
    current = {"a.x": 1, "a.y": [1, 2], "b": None, "tracking.enabled": True, "z": 0.5}
    assert changed_params(current, base) == {"a.y": [1, 2], "b": None, "z": 0.5}  # tracking.* is not named
    assert list(changed_params({"z": 1, "a": 2}, {})) == ["a", "z"]


def test_short_values() -> None:
    assert [short_value(v) for v in (None, True, False, ["sft", "bpr"], 0.3, 1e-05, "a b", {"k": 1})] == [
        "null",
        "true",
        "false",
        "[sft,bpr]",
        "0.3",
        "1e-05",
        "a_b",
        "{k:1}",
    ]


# ---------------------------------------------------------------- what each stage contributes

REPORT = StageDef(
    name="llm-report",
    params=(),
    headline=(Headline("comparison.*.ndcg_at_10.diff", "{0}.ndcg@10_diff", "higher"),),
)
PREPARE = StageDef(name="prepare", params=(), headline=(Headline("users", "users"), Headline("gini", "gini")))
TRAIN = StageDef(
    name="train-x",
    params=(),
    outs=("data/llm/x",),
    headline=(Headline("final_loss", "final_loss", "lower"),),
)
VALIDATE = StageDef(name="validate", params=(), has_metrics=False)
PAIRS = StageDef(name="pairs", params=(), headline=(Headline("pairs", "pairs"),))
TRACK = StageDef(name="track", params=(), has_metrics=False)

STAGE_METRICS = {
    "llm-report": {
        "comparison": {
            "gdrt_vs_sft": {"ndcg_at_10": {"diff": 0.25, "p": 0.1}},
            "gdrt_vs_popularity": {"ndcg_at_10": {"diff": -0.5, "p": 0.01}},
        },
        "bootstrap": 50,
        "wall_time_s": 2.0,
    },
    "prepare": {"users": 80, "density": 0.1, "data_fingerprint": "abc", "wall_time_s": 1.5},
    "train-x": {"final_loss": 1.25, "steps": 10, "wall_time_s": 4.0},
    "pairs": {"pairs": 7, "wall_time_s": 0.5},
}

HISTORY = [
    {
        "loss": 2.0,
        "grad_norm": 1.5,
        "learning_rate": 0.001,
        "epoch": 0.5,
        "step": 5,
        "gdrt_q_0": 0.25,
        "gdrt_q_1": 0.75,
    },
    {"loss": 1.0, "epoch": 1.0, "step": 10, "gdrt_loss_1": float("nan"), "flag": True},
    {"train_runtime": 3.0, "train_loss": 1.5, "step": 10, "epoch": 1.0, "total_flos": 1e9},
    {"eval_loss": 1.2, "step": 10},
]


def test_only_declared_headline_metrics_are_selected() -> None:
    stages = [VALIDATE, PREPARE, REPORT, PAIRS, TRACK, StageDef(name="absent", params=(), headline=PAIRS.headline)]
    metrics = {k: v for k, v in STAGE_METRICS.items() if k != "pairs"}
    assert headline_metrics(stages, metrics) == {
        "prepare.users": 80.0,  # gini is declared but absent: skipped
        "llm-report.gdrt_vs_popularity.ndcg_at_10_diff": -0.5,  # keys matched by * in sorted order
        "llm-report.gdrt_vs_sft.ndcg_at_10_diff": 0.25,
    }
    assert list(headline_metrics(stages, metrics)) == [  # pipeline order
        "prepare.users",
        "llm-report.gdrt_vs_popularity.ndcg_at_10_diff",
        "llm-report.gdrt_vs_sft.ndcg_at_10_diff",
    ]
    assert list(headline_metrics(stages, metrics, lead="llm-report")) == [  # logged first: compare view's default
        "llm-report.gdrt_vs_popularity.ndcg_at_10_diff",
        "llm-report.gdrt_vs_sft.ndcg_at_10_diff",
        "prepare.users",
    ]


def test_loss_curves_from_a_trainer_log_history() -> None:
    assert loss_curves(HISTORY) == [
        ("gdrt_q_0", 0.25, 5),
        ("gdrt_q_1", 0.75, 5),
        ("grad_norm", 1.5, 5),
        ("learning_rate", 0.001, 5),
        ("loss", 2.0, 5),
        ("loss", 1.0, 10),  # NaN group loss and the boolean are skipped; the summary row (train_runtime) too
        ("eval_loss", 1.2, 10),
    ]


def _record(stage: str, started: float, ended: float, metrics: str | None) -> dict:
    digest = hashlib.sha256(Path(metrics).read_bytes()).hexdigest() if metrics else None
    return {"stage": stage, "started_at": started, "ended_at": ended, "metrics_sha256": digest}


def test_stages_with_a_matching_execution_record_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, metrics in STAGE_METRICS.items():
        write_json(f"metrics/{name}.json", metrics)
    write_json(".lure/stage-runs/prepare.json", _record("prepare", 100.0, 101.5, "metrics/prepare.json"))
    write_json(".lure/stage-runs/validate.json", _record("validate", 99.0, 99.5, None))
    write_json(".lure/stage-runs/train-x.json", _record("train-x", 102.0, 106.0, "metrics/train-x.json"))
    write_json("metrics/train-x.json", {**STAGE_METRICS["train-x"], "final_loss": 9.0})  # replaced since: cached
    Path("data/llm/x").mkdir(parents=True)
    Path("data/llm/x/log_history.json").write_text(json.dumps(HISTORY))
    stages = [VALIDATE, PREPARE, TRAIN, PAIRS, TRACK]

    executions = stage_executions(stages)
    assert executions == {"validate": Execution(99.0, 99.5), "prepare": Execution(100.0, 101.5)}
    metrics = {s: json.loads(Path(f"metrics/{s}.json").read_text()) for s in ("prepare", "train-x", "pairs")}
    records = {r.name: r for r in stage_records(stages, metrics, executions)}
    assert list(records) == ["validate", "prepare", "train-x", "pairs"]  # track has no child run
    assert {n: r.status for n, r in records.items()} == {
        "validate": "ran",
        "prepare": "ran",
        "train-x": "cached",
        "pairs": "cached",
    }
    assert records["validate"].wall_time_s == 0.5 and records["validate"].headline == {}  # from its record
    assert records["prepare"].wall_time_s == 1.5 and records["prepare"].headline == {"users": 80.0}
    assert records["train-x"].headline == {"final_loss": 9.0} and records["train-x"].curves == loss_curves(HISTORY)
    assert records["pairs"].curves == [] and records["pairs"].execution is None
    assert pipeline_start(list(records.values()), default=500.0) == 99.0
    assert pipeline_start([records["pairs"]], default=500.0) == 500.0

    write_json(".lure/stage-runs/pairs.json", {"stage": "pairs", "ended_at": 1.0})
    with pytest.raises(ValueError, match=r"stage-runs/pairs.json: .*'started_at'"):
        stage_executions(stages)


def test_the_stage_runner_leaves_an_execution_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lure.pipeline.generate import render_dvc_yaml
    from lure.spec.dump import dump_spec
    from lure.spec.load import validate_spec
    from lure.stage import run_stage

    monkeypatch.chdir(tmp_path)
    spec = validate_spec(SMALL_OFFLINE)
    Path("params.yaml").write_text(dump_spec(spec))
    Path("dvc.yaml").write_text(render_dvc_yaml(spec, ROOT))  # code deps and plot templates are the repository's
    before = time.time()
    with run_stage("pairs") as st:
        st.metrics["pairs"] = 3
    with run_stage("validate", write_metrics=False):
        pass
    with run_stage("track", write_metrics=False, record_run=False):
        pass
    after = time.time()
    record = json.loads(Path(".lure/stage-runs/pairs.json").read_text())
    assert before - 0.01 <= record["started_at"] <= record["ended_at"] <= after + 0.01
    assert record["metrics_sha256"] == hashlib.sha256(Path("metrics/pairs.json").read_bytes()).hexdigest()
    assert json.loads(Path(".lure/stage-runs/validate.json").read_text())["metrics_sha256"] is None
    assert not Path(".lure/stage-runs/track.json").exists()
    stages = [VALIDATE, PAIRS, TRACK]
    assert set(stage_executions(stages)) == {"validate", "pairs"}


def test_log_pipeline_run_writes_the_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local SQLite store: the parent's span and metrics, metrics.json, the child runs' status, span and curves."""
    from mlflow import MlflowClient

    from lure.tracking import StageRecord, log_pipeline_run

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    Path("reports/tables").mkdir(parents=True)
    Path("reports/tables/t.md").write_text("| a |\n")
    records = [
        StageRecord("validate", "ran", wall_time_s=0.5, execution=Execution(1_000_000.0, 1_000_000.5)),
        StageRecord(
            "train-x",
            "ran",
            {"final_loss": 1.0},
            4.0,
            Execution(1_000_001.0, 1_000_005.0),
            loss_curves(HISTORY),
        ),
        StageRecord("prepare", "cached", {"users": 80.0}, 1.5),
    ]
    before = time.time()
    run_id = log_pipeline_run(
        experiment="unit",
        run_name="world method.tau=0.3 @0123456",
        params={"method.tau": 0.3, "eval.models": ["als"]},
        headline={"prepare.users": 80.0, "train-x.final_loss": 1.0},
        metric_tree=STAGE_METRICS,
        records=records,
        artifacts=[Path("reports/tables"), Path("reports/missing")],
        tags={"git_rev": REV},
        started_at=1_000_000.0,
    )
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(run_id)
    assert parent.info.run_name == "world method.tau=0.3 @0123456" and parent.info.status == "FINISHED"
    assert parent.info.start_time == 1_000_000_000 and parent.info.end_time >= int(before * 1000)
    assert parent.data.metrics == {"prepare.users": 80.0, "train-x.final_loss": 1.0}
    assert parent.data.params == {"method.tau": "0.3", "eval.models": "['als']"}
    assert parent.data.tags["git_rev"] == REV
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(experiment.tags["mlflow.sharedViewState.lure"])
    assert view == {"selectedColumns": ["metrics.`prepare.users`", "metrics.`train-x.final_loss`"]}
    tree = json.loads(Path(client.download_artifacts(run_id, "metrics.json", str(tmp_path))).read_text())
    assert tree == STAGE_METRICS
    assert [f.path for f in client.list_artifacts(run_id, "reports/tables")] == ["reports/tables/t.md"]

    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'", order_by=["start_time"]
    )
    by_name = {c.info.run_name: c for c in children}
    assert set(by_name) == {"validate", "train-x", "prepare"}
    assert {n: c.data.tags["lure.status"] for n, c in by_name.items()} == {
        "validate": "ran",
        "train-x": "ran",
        "prepare": "cached",
    }
    train = by_name["train-x"]
    assert (train.info.start_time, train.info.end_time) == (1_000_001_000, 1_000_005_000)
    assert train.data.metrics["final_loss"] == 1.0 and train.data.metrics["wall_time_s"] == 4.0
    loss = client.get_metric_history(train.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in loss) == [(5, 2.0), (10, 1.0)]
    assert [m.value for m in client.get_metric_history(train.info.run_id, "gdrt_q_1")] == [0.75]
    cached = by_name["prepare"]
    assert cached.info.start_time == cached.info.end_time and cached.data.metrics == {"users": 80.0, "wall_time_s": 1.5}


# ---------------------------------------------------------------- end to end: DVC, the track stage, a server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture()
def mlflow_server(tmp_path: Path):
    port = free_port()
    store = tmp_path / "server"
    store.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}", "--artifacts-destination", str(store / "art"),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=store, env=tool_env(),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("mlflow server exited during start-up") from None
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("mlflow server did not start in 120 s")
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def tags(run: dict) -> dict:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def metrics(run: dict) -> dict:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}


# The offline project's declared headline metrics (lure/pipeline/stages.py); zoo-* and probe declare none.
OFFLINE_HEADLINE = {
    "prepare.users": ("prepare", "users"),
    "prepare.items": ("prepare", "items"),
    "prepare.interactions": ("prepare", "interactions"),
    "prepare.head_share": ("prepare", "head_share"),
    "propensity.ece": ("propensity", "ece"),
    "pairs.pairs": ("pairs", "pairs"),
    "pairs.smd_log_pop_after": ("pairs", "smd_log_pop_after"),
    "evaluate.snips_error_ratio": ("evaluate", "summary.snips_error_ratio"),
    "evaluate.ips_error_ratio.logistic": ("evaluate", "summary.by_propensity.logistic.ips_error_ratio"),
    "evaluate.ips_error_ratio.popularity": ("evaluate", "summary.by_propensity.popularity.ips_error_ratio"),
    "evaluate.ips_error_ratio.true": ("evaluate", "summary.by_propensity.true.ips_error_ratio"),
    "evaluate.kendall_naive_recall_at_10": ("evaluate", "summary.kendall_tau_naive_recall_at_10"),
    "evaluate.kendall_snips_recall_at_10": ("evaluate", "summary.kendall_tau_snips_recall_at_10"),
    "tables.cells_filled": ("tables", "cells_filled"),
    "tables.world_cells_filled": ("tables", "world.filled"),
}


def read_metric(root: Path, stage: str, path: str) -> float:
    node = json.loads((root / "metrics" / f"{stage}.json").read_text())
    for part in path.split("."):
        node = node[part]
    return float(node)


@pytest.mark.slow
def test_baseline_and_experiment_runs_reach_the_server(offline_copy: Path, mlflow_server: str) -> None:
    root = offline_copy
    spec = {**PROBE_SPEC, "tracking": {"enabled": True, "experiment": "lure-test"}}
    (root / "specs" / "test.yaml").write_text(spec_text(spec))
    lure("spec", "use", "specs/test.yaml", cwd=root)
    env = tool_env(MLFLOW_TRACKING_URI=mlflow_server)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    first = dvc("repro", cwd=root, env=env).stdout
    assert ran(first) == ["validate", "track"], first
    workspace_metrics = {p.stem: json.loads(p.read_text()) for p in (root / "metrics").glob("*.json")}
    dvc("repro", cwd=root, env=env)  # a no-op: must not log a third run
    subprocess.run(["git", "add", "-A"], cwd=root, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=root, env=env, check=True)
    second = dvc("exp", "run", "-n", "boot-30", "-S", "eval.bootstrap=30", cwd=root, env=env).stdout
    assert set(ran(second)) == {"validate", "evaluate", "probe", "tables", "track"}, second

    exp = api(mlflow_server, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=lure-test")["experiment"]
    search = {"experiment_ids": [exp["experiment_id"]], "max_results": 100}
    runs = api(mlflow_server, "/api/2.0/mlflow/runs/search", search)["runs"]
    parents = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    assert len(parents) == 2, [r["info"]["run_name"] for r in parents]
    by_name = {r["info"]["run_name"]: r for r in parents}
    # the committed params.yaml matches no file under specs/ (test.yaml now enables tracking): the source's name;
    # tracking.* is left out of the name, so nothing else changed
    workspace_name = f"world @{head.stdout.strip()[:7]}"
    assert set(by_name) == {workspace_name, "boot-30"}
    assert tags(by_name[workspace_name])["dvc_exp_name"] == "workspace"
    assert tags(by_name["boot-30"])["dvc_exp_name"] == "boot-30"
    params = {n: {p["key"]: p["value"] for p in r["data"]["params"]} for n, r in by_name.items()}
    assert params[workspace_name]["eval.bootstrap"] == "50" and params["boot-30"]["eval.bootstrap"] == "30"
    assert params[workspace_name]["data.source.n_users"] == "80"
    for r in by_name.values():
        t = tags(r)
        assert len(t["git_rev"]) == 40 and len(t["spec_hash"]) == 16 and len(t["data_fingerprint"]) == 16
        # only the headline metrics, also those of stages that did not re-run
        assert set(metrics(r)) == set(OFFLINE_HEADLINE)
    for key, (stage, path) in OFFLINE_HEADLINE.items():
        assert metrics(by_name[workspace_name])[key] == pytest.approx(read_metric(root, stage, path)), key
    assert tags(by_name[workspace_name])["spec_hash"] != tags(by_name["boot-30"])["spec_hash"]
    assert tags(by_name[workspace_name])["data_fingerprint"] == tags(by_name["boot-30"])["data_fingerprint"]
    assert tags(by_name["boot-30"])["lure.changed_params"] == "eval.bootstrap=30"
    # committed with tracking on, params.yaml is specs/test.yaml: the experiment's baseline is recognised by content
    assert tags(by_name[workspace_name])["lure.spec"] == "world" and tags(by_name["boot-30"])["lure.spec"] == "test"

    expected_ran = {workspace_name: {"validate"}, "boot-30": {"validate", "evaluate", "probe", "tables"}}
    stages = {"validate", "prepare", "propensity", "pairs", "zoo-random", "zoo-popularity", "evaluate", "probe"}
    for name, parent in by_name.items():
        pid = parent["info"]["run_id"]
        children = [r for r in runs if tags(r).get("mlflow.parentRunId") == pid]
        status = {tags(c)["stage"]: tags(c)["lure.status"] for c in children}
        assert status == {s: "ran" if s in expected_ran[name] else "cached" for s in (*stages, "tables")}, name
        ran_children = [c for c in children if tags(c)["lure.status"] == "ran"]
        # the parent spans the pipeline: from the first stage that ran (validate) to after the last child
        assert int(parent["info"]["start_time"]) == min(int(c["info"]["start_time"]) for c in ran_children)
        assert int(parent["info"]["end_time"]) >= max(int(c["info"]["end_time"]) for c in children)
        for c in children:
            m = metrics(c)
            assert "wall_time_s" in m, tags(c)["stage"]
            if tags(c)["lure.status"] == "cached":
                assert c["info"]["start_time"] == c["info"]["end_time"]
        prepare = next(c for c in children if tags(c)["stage"] == "prepare")
        assert metrics(prepare) == {
            "users": read_metric(root, "prepare", "users"),
            "items": read_metric(root, "prepare", "items"),
            "interactions": read_metric(root, "prepare", "interactions"),
            "head_share": pytest.approx(read_metric(root, "prepare", "head_share")),
            "wall_time_s": read_metric(root, "prepare", "wall_time_s"),
        }
    run_id = by_name[workspace_name]["info"]["run_id"]
    arts = api(mlflow_server, f"/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=reports/tables")
    assert any(f["path"].endswith(".md") for f in arts.get("files", []))
    tree_url = f"{mlflow_server}/get-artifact?path=metrics.json&run_uuid={run_id}"
    with urllib.request.urlopen(tree_url, timeout=30) as resp:
        assert json.loads(resp.read()) == workspace_metrics
    record = json.loads((root / "reports" / "mlflow_run.json").read_text())  # the last track: the experiment's
    assert record["run_name"] == "boot-30" and record["run_id"] == by_name["boot-30"]["info"]["run_id"]
    assert {s for s, status in record["stages"].items() if status == "ran"} == expected_ran["boot-30"]
    assert not any((root / ".lure" / "stage-runs").glob("*.json")), "track consumes the execution records"


@pytest.mark.slow
def test_training_stages_log_their_loss_curves(llm_project: tuple[Path, str], tmp_path: Path) -> None:
    root = copy_project(llm_project[0], tmp_path / "proj")
    (root / "specs" / "test.yaml").write_text(spec_text({**SMALL_LLM_WORLD, "tracking": {"enabled": True}}))
    lure("spec", "use", "specs/test.yaml", cwd=root)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = dvc("repro", cwd=root, env=tool_env(MLFLOW_TRACKING_URI=store)).stdout
    assert ran(out) == ["validate", "track"], out
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    run_id = json.loads((root / "reports" / "mlflow_run.json").read_text())["run_id"]
    parent = client.get_run(run_id)
    assert parent.data.metrics["llm-eval-gdrt.ndcg_at_10"] == read_metric(root, "llm-eval-gdrt", "ndcg_at_10")
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'", max_results=100
    )
    by_stage = {c.data.tags["stage"]: c for c in children}
    for method in ("sft", "gdrt"):
        history = json.loads((root / "data" / "llm" / method / "log_history.json").read_text())
        logged = [(row["step"], row["loss"]) for row in history if "loss" in row]
        child = by_stage[f"train-{method}"]
        assert child.data.tags["lure.status"] == "cached"
        curve = client.get_metric_history(child.info.run_id, "loss")
        assert len(logged) >= 2 and sorted(m.step for m in curve) == [step for step, _ in logged]
        assert [m.value for m in sorted(curve, key=lambda m: m.step)] == pytest.approx([loss for _, loss in logged])
    q = client.get_metric_history(by_stage["train-gdrt"].info.run_id, "gdrt_q_0")  # GDRT's group weights
    assert q and all(0.0 <= m.value <= 1.0 and not math.isnan(m.value) for m in q)
    assert "gdrt_q_0" not in by_stage["train-sft"].data.metrics
