"""End to end through DVC: repro, no-op, `-S` re-running only what declares a field, structural changes,
bad values that must not cost any output, a parallel queue of two experiments, and a plugin stage.

All on the offline pipeline of :data:`SMALL_OFFLINE` (no LLM stage): these are DVC mechanics. The pipeline is built
once per test run (``offline_project``); every test works on its own copy. That `dvc exp run -S method.tau=...`
re-trains GDRT only is checked on the LLM project (test_llm_pipeline.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import OFFLINE_STAGES, PROBE_SPEC, dvc, lure, ran, run, spec_text, tool_env

pytestmark = pytest.mark.slow


def skipped(output: str) -> set[str]:
    lines = output.splitlines()
    return {line.split("'")[1] for line in lines if line.startswith("Stage '") and "didn't change" in line}


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


def test_build_ran_every_stage_once_and_in_order(offline_build: tuple[Path, str]) -> None:
    offline_project, out = offline_build
    order = ran(out)
    assert sorted(order) == sorted(OFFLINE_STAGES | {"probe"}), out
    assert order[:2] == ["validate", "prepare"] and order[-2:] == ["tables", "track"], order
    assert order.index("propensity") < order.index("pairs") < order.index("zoo-random") < order.index("evaluate")
    assert not any(s.startswith(("llm-", "train-", "gdrt-")) for s in order), "method: null has no LLM stage"
    assert json.loads((offline_project / "probe" / "value.json").read_text()) == {"bootstrap": 50}


def test_repro_is_complete_then_a_noop(offline_copy: Path) -> None:
    root = offline_copy
    items = root / "data" / "prepared" / "items.parquet"
    assert items.is_file() and (root / "metrics" / "prepare.json").is_file()
    assert (root / "reports" / "tables").is_dir() and any((root / "reports" / "tables").glob("*.md"))
    assert (root / "metrics" / "evaluate.json").is_file() and (root / "metrics" / "probe.json").is_file()
    second = dvc("repro", cwd=root)
    assert ran(second.stdout) == [], second.stdout
    assert "up to date" in second.stdout.lower()


def test_set_param_reruns_only_declaring_stages(offline_copy: Path) -> None:
    root = offline_copy
    out = dvc("exp", "run", "-S", "eval.bootstrap=30", cwd=root).stdout
    assert "probe" in ran(out) and "track" in ran(out), out
    assert "prepare" not in ran(out) and "prepare" in skipped(out), out
    # eval.bootstrap is declared by evaluate and the probe plugin (and validate and track, which read everything);
    # tables depends on their metrics; the data, the propensities, the pairs and the zoo are reused
    assert set(ran(out)) == {"validate", "evaluate", "probe", "tables", "track"}, out
    assert {"propensity", "pairs", "zoo-random", "zoo-popularity"} <= skipped(out), out
    assert json.loads((root / "probe" / "value.json").read_text()) == {"bootstrap": 30}
    shown = json.loads(dvc("exp", "show", "--json", cwd=root).stdout)
    # probe metrics of the workspace (= the experiment's results), the baseline and the experiment
    probed = values_of(shown, "probed_bootstrap")
    assert set(probed) == {30, 50} and probed.count(50) == 1, probed
    assert {30, 50} <= set(values_of(shown, "bootstrap")), "the params of the baseline and the experiment"
    experiments = [e for row in shown for e in (row.get("experiments") or [])]
    assert len(experiments) == 1


def test_structural_set_param_stops_and_lure_exp_run_regenerates(offline_copy: Path) -> None:
    root = offline_copy
    before = snapshot(root)
    out = dvc("exp", "run", "-S", "eval.models=[random]", cwd=root, check=False)
    assert out.returncode != 0
    assert "lure exp run" in out.stdout + out.stderr and "eval.models" in out.stdout + out.stderr
    assert ran(out.stdout) == ["validate"], out.stdout
    assert snapshot(root) == before, "a refused experiment must not touch any output"
    run(["git", "checkout", "--", "params.yaml"], root)
    good = lure("exp", "run", "-S", "eval.models=[random]", cwd=root)
    assert "regenerated dvc.yaml" in good.stdout
    text = (root / "dvc.yaml").read_text()
    assert '"eval.models":["random"]' in text and "zoo-popularity" not in text
    assert lure("spec", "check", cwd=root).returncode == 0


def test_bad_value_fails_before_any_output_is_touched(offline_copy: Path) -> None:
    root = offline_copy
    before = snapshot(root)
    out = dvc("exp", "run", "-S", "data.source.n_users=5", cwd=root, check=False)
    assert out.returncode != 0
    assert "data.source.n_users: must be >= 10, got 5" in out.stdout + out.stderr
    assert snapshot(root) == before
    run(["git", "checkout", "--", "params.yaml"], root)
    (root / "params.yaml").write_text((root / "params.yaml").read_text() + "surprise: 1\n")
    out = dvc("repro", cwd=root, check=False)
    assert out.returncode != 0 and "surprise: unknown key" in out.stdout + out.stderr
    assert snapshot(root) == before
    run(["git", "checkout", "--", "params.yaml"], root)
    refused = lure("exp", "run", "-S", "eval.confidence=2", cwd=root, check=False)
    assert refused.returncode == 2 and "eval.confidence: must be < 1.0, got 2" in refused.stderr, refused.stderr
    assert snapshot(root) == before


def test_queue_of_two_runs_in_parallel(offline_copy: Path) -> None:
    root = offline_copy
    for bootstrap in ("20", "40"):
        dvc("exp", "run", "--queue", "-S", f"eval.bootstrap={bootstrap}", cwd=root)
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
    assert {20, 40} <= set(values_of(shown, "probed_bootstrap"))


def test_missing_raw_data_fails_in_validate_and_touches_nothing(offline_copy: Path, tmp_path: Path) -> None:
    root = offline_copy
    before = snapshot(root)
    spec = {**PROBE_SPEC, "data": {"source": {"name": "movielens-1m", "raw_dir": str(tmp_path / "empty")}}}
    (root / "specs" / "ml.yaml").write_text(spec_text(spec))
    lure("spec", "use", "specs/ml.yaml", cwd=root)
    out = dvc("repro", cwd=root, check=False, env=tool_env(LURE_OFFLINE="1"))
    assert out.returncode != 0
    message = out.stdout + out.stderr
    assert "data.source 'movielens-1m'" in message and "ratings.dat" in message, message
    assert ran(out.stdout) == ["validate"]
    assert snapshot(root) == before
