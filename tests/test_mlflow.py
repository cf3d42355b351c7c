"""A real MLflow server on a loopback port receives one run per pipeline execution that produced results.

Works on a copy of the offline project built once per test run (conftest.py), with tracking switched on: the first
`dvc repro` re-runs validate and track only, so the run it logs must still carry every stage's metrics."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PROBE_SPEC, dvc, lure, ran, spec_text, tool_env

pytestmark = pytest.mark.slow


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


def test_baseline_and_experiment_runs_reach_the_server(offline_copy: Path, mlflow_server: str) -> None:
    root = offline_copy
    spec = {**PROBE_SPEC, "tracking": {"enabled": True, "experiment": "lure-test"}}
    (root / "specs" / "test.yaml").write_text(spec_text(spec))
    lure("spec", "use", "specs/test.yaml", cwd=root)
    env = tool_env(MLFLOW_TRACKING_URI=mlflow_server)
    first = dvc("repro", cwd=root, env=env).stdout
    assert "track" in ran(first) and "prepare" not in ran(first), first
    dvc("repro", cwd=root, env=env)  # a no-op: must not log a third run
    subprocess.run(["git", "add", "-A"], cwd=root, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=root, env=env, check=True)
    dvc("exp", "run", "-n", "boot-30", "-S", "eval.bootstrap=30", cwd=root, env=env)

    exp = api(mlflow_server, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=lure-test")["experiment"]
    search = {"experiment_ids": [exp["experiment_id"]], "max_results": 100}
    runs = api(mlflow_server, "/api/2.0/mlflow/runs/search", search)["runs"]

    def tags(r: dict) -> dict:
        return {t["key"]: t["value"] for t in r["data"].get("tags", [])}

    parents = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    children = [r for r in runs if "mlflow.parentRunId" in tags(r)]
    assert len(parents) == 2, [tags(r).get("dvc_exp_name") for r in parents]
    by_name = {tags(r)["dvc_exp_name"]: r for r in parents}
    assert set(by_name) == {"workspace", "boot-30"}
    params = {n: {p["key"]: p["value"] for p in r["data"]["params"]} for n, r in by_name.items()}
    assert params["workspace"]["eval.bootstrap"] == "50" and params["boot-30"]["eval.bootstrap"] == "30"
    assert params["workspace"]["data.source.n_users"] == "80"
    for r in by_name.values():
        t = tags(r)
        assert len(t["git_rev"]) == 40 and len(t["spec_hash"]) == 16 and len(t["data_fingerprint"]) == 16
        metrics = {m["key"]: m["value"] for m in r["data"]["metrics"]}
        # metrics of stages that did not re-run in the experiment are still there
        assert metrics["prepare.users"] > 0 and "prepare.wall_time_s" in metrics and "tables.cells" in metrics
        assert all(ch.isalnum() or ch in "_-. /" for key in metrics for ch in key)
    assert tags(by_name["workspace"])["spec_hash"] != tags(by_name["boot-30"])["spec_hash"]
    assert tags(by_name["workspace"])["data_fingerprint"] == tags(by_name["boot-30"])["data_fingerprint"]
    child_stages = {tags(c)["stage"] for c in children}
    assert {"prepare", "tables"} <= child_stages
    assert all(any(m["key"] == "wall_time_s" for m in c["data"]["metrics"]) for c in children)
    run_id = by_name["workspace"]["info"]["run_id"]
    arts = api(mlflow_server, f"/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=reports/tables")
    assert any(f["path"].endswith(".md") for f in arts.get("files", []))
