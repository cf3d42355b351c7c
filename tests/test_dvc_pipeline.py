"""End to end through DVC: repro, no-op, `-S` re-running only what declares a field, structural changes,
bad values that must not cost any output, and a parallel queue of two experiments."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import SMALL_WORLD, dvc, lure, make_project, run, tool_env

pytestmark = pytest.mark.slow

# A plugin stage that declares method.tau: the mechanism under test (no built-in stage of this issue reads it).
PROBE_PLUGIN = '''\
from lure.io import write_json
from lure.pipeline.stages import StageDef


def stages(spec):
    return [StageDef(name="probe", params=("method.tau",), outs=("probe/tau.json",), module="probe_plugin")]


if __name__ == "__main__":
    from lure.stage import run_stage

    with run_stage("probe") as st:
        write_json("probe/tau.json", {"tau": st.spec.method.tau})
        st.metrics["tau"] = st.spec.method.tau
'''
PROBE_SPEC = SMALL_WORLD + "plugins: [probe_plugin]\n"


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def skipped(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Stage '") and "didn't change" in line}


def values_of(obj: object, key: str) -> list[object]:
    """Every value stored under ``key`` anywhere in a JSON document (dvc exp show nests deeply)."""
    if isinstance(obj, dict):
        return [v for k, v in obj.items() if k == key and not isinstance(v, dict)] + [
            x for v in obj.values() for x in values_of(v, key)
        ]
    if isinstance(obj, list):
        return [x for v in obj for x in values_of(v, key)]
    return []


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    files = [p for d in ("data/prepared", "metrics", "reports/tables") for p in (root / d).rglob("*") if p.is_file()]
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in files}


@pytest.fixture(scope="module")
def built_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per module (a full pipeline run); each test works on its own copy."""
    root = make_project(tmp_path_factory.mktemp("probe") / "proj", PROBE_SPEC, {"probe_plugin.py": PROBE_PLUGIN})
    first = dvc("repro", cwd=root)
    zoo = {"zoo-random", "zoo-popularity"}
    llm = {"llm-base", "gdrt-groups", "train-gdrt", "llm-relevance", "llm-eval-gdrt", "llm-eval-popularity",
           "llm-report"}  # SMALL_WORLD: GDRT scored by the base model, popularity baseline, no SFT stage
    expected = {"validate", "prepare", "propensity", "pairs", *zoo, "evaluate", *llm, "probe", "tables", "track"}
    assert ran(first.stdout) == expected, first.stdout
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "baseline results"], root)
    return root


@pytest.fixture()
def probe_project(built_probe: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "proj"
    shutil.copytree(built_probe, copy, symlinks=True)
    return copy


def test_repro_is_complete_then_a_noop(probe_project: Path) -> None:
    root = probe_project
    items = root / "data" / "prepared" / "items.parquet"
    assert items.is_file() and (root / "metrics" / "prepare.json").is_file()
    assert (root / "reports" / "tables").is_dir() and any((root / "reports" / "tables").glob("*.md"))
    second = dvc("repro", cwd=root)
    assert ran(second.stdout) == set(), second.stdout
    assert "up to date" in second.stdout.lower()


def test_set_param_reruns_only_declaring_stages(probe_project: Path) -> None:
    root = probe_project
    out = dvc("exp", "run", "-S", "method.tau=0.3", cwd=root).stdout
    assert "probe" in ran(out) and "track" in ran(out), out
    assert "prepare" not in ran(out) and "prepare" in skipped(out), out
    # GDRT: tau re-trains GDRT and re-evaluates it; the base model, the token groups, the item groups and the
    # baselines' evaluation are reused
    assert ran(out) == {"validate", "train-gdrt", "llm-eval-gdrt", "llm-report", "probe", "tables", "track"}, out
    assert {"llm-base", "gdrt-groups", "llm-relevance", "llm-eval-popularity"} <= skipped(out), out
    assert json.loads((root / "probe" / "tau.json").read_text()) == {"tau": 0.3}
    shown = json.loads(dvc("exp", "show", "--json", cwd=root).stdout)
    taus = values_of(shown, "tau")  # params and probe metrics of the workspace, the baseline and the experiment
    assert set(taus) == {0.3, 0.5} and taus.count(0.5) == 2, taus
    experiments = [e for row in shown for e in (row.get("experiments") or [])]
    assert len(experiments) == 1


def test_structural_set_param_stops_and_lure_exp_run_regenerates(probe_project: Path) -> None:
    root = probe_project
    before = snapshot(root)
    out = dvc("exp", "run", "-S", "baselines=[sft]", cwd=root, check=False)
    assert out.returncode != 0
    assert "lure exp run" in out.stdout + out.stderr and "baselines" in out.stdout + out.stderr
    assert ran(out.stdout) == {"validate"}, out.stdout
    assert snapshot(root) == before, "a refused experiment must not touch any output"
    run(["git", "checkout", "--", "params.yaml"], root)
    good = lure("exp", "run", "-S", "baselines=[sft]", cwd=root)
    assert "regenerated dvc.yaml" in good.stdout
    assert '"baselines":["sft"]' in (root / "dvc.yaml").read_text()
    assert lure("spec", "check", cwd=root).returncode == 0


def test_bad_value_fails_before_any_output_is_touched(probe_project: Path) -> None:
    root = probe_project
    before = snapshot(root)
    out = dvc("exp", "run", "-S", "data.world.n_users=5", cwd=root, check=False)
    assert out.returncode != 0
    assert "data.world.n_users: must be >= 10, got 5" in out.stdout + out.stderr
    assert snapshot(root) == before
    run(["git", "checkout", "--", "params.yaml"], root)
    (root / "params.yaml").write_text((root / "params.yaml").read_text() + "surprise: 1\n")
    out = dvc("repro", cwd=root, check=False)
    assert out.returncode != 0 and "surprise: unknown key" in out.stdout + out.stderr
    assert snapshot(root) == before
    run(["git", "checkout", "--", "params.yaml"], root)
    refused = lure("exp", "run", "-S", "judge.temperature=5", cwd=root, check=False)
    assert refused.returncode == 2 and "judge.temperature: must be <= 2.0, got 5" in refused.stderr


def test_queue_of_two_runs_in_parallel(probe_project: Path) -> None:
    root = probe_project
    for tau in ("0.2", "0.4"):
        dvc("exp", "run", "--queue", "-S", f"method.tau={tau}", cwd=root)
    dvc("queue", "start", "-j", "2", cwd=root)
    deadline = time.time() + 300
    status = ""
    while time.time() < deadline:
        status = dvc("queue", "status", cwd=root).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    dvc("queue", "stop", cwd=root, check=False)
    assert status.count("Success") == 2, status
    shown = json.loads(dvc("exp", "show", "--json", cwd=root).stdout)
    assert {0.2, 0.4} <= set(values_of(shown, "tau"))


def test_missing_raw_data_fails_in_validate_and_touches_nothing(probe_project: Path, tmp_path: Path) -> None:
    root = probe_project
    before = snapshot(root)
    spec = PROBE_SPEC.replace("data:\n", f"data:\n  source: movielens-1m\n  raw_dir: {tmp_path / 'empty'}\n")
    spec = spec.replace("  world: {n_users: 80, n_items: 60, activity_mean: 12, mar_fraction: 0.2, mar_exposures_per_user: 10}\n", "")
    (root / "specs" / "ml.yaml").write_text(spec)
    lure("spec", "use", "specs/ml.yaml", cwd=root)
    out = dvc("repro", cwd=root, check=False, env=tool_env(LURE_OFFLINE="1"))
    assert out.returncode != 0
    message = out.stdout + out.stderr
    assert "data.source 'movielens-1m'" in message and "ratings.dat" in message, message
    assert ran(out.stdout) == {"validate"}
    assert snapshot(root) == before
