"""Stage declarations → dvc.yaml, the staleness check, the shape check, and the declared-params guard."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lure.cli import app
from lure.pipeline.generate import diff_dvc_yaml, recorded_shape, render_dvc_yaml, shape_mismatch
from lure.pipeline.stages import pipeline_stages
from lure.spec.load import SpecError, leaf_paths, validate_spec
from lure.spec.model import Spec
from lure.spec.view import SpecView, UndeclaredParamError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_repository_dvc_yaml_is_what_the_generator_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # `lure spec check` compares against ./dvc.yaml
    result = runner.invoke(app, ["spec", "check"])
    assert result.exit_code == 0, result.output


def test_generated_params_are_exactly_the_declared_fields() -> None:
    import yaml

    spec = Spec()
    doc = yaml.safe_load(render_dvc_yaml(spec))
    declared = {s.name: list(s.params) for s in pipeline_stages(spec)}
    assert {name: entry["params"] for name, entry in doc["stages"].items()} == declared
    valid = set(leaf_paths()) | {f"abpo.variants.{n}" for n in spec.abpo.variants}  # a mapping's named entries
    for name, params in declared.items():
        assert set(params) <= valid, f"stage {name} declares unknown fields {set(params) - valid}"
    assert next(iter(doc["stages"])) == "validate" and list(doc["stages"])[-1] == "track"
    for name, entry in doc["stages"].items():
        if name != "validate":
            assert ".lure/spec.ok" in entry["deps"], f"{name} must run after validation"
        stage = next(s for s in pipeline_stages(spec) if s.name == name)
        assert entry["cmd"] == " ".join(["python -m", stage.module_name, *stage.args])
        assert (ROOT / entry["deps"][0 if name == "validate" else 1]).is_file(), "the stage's own script is a dep"


def test_stale_dvc_yaml_fails_check_with_a_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 3\n")
    result = runner.invoke(app, ["spec", "use", "params.yaml"])
    assert result.exit_code == 0
    assert runner.invoke(app, ["spec", "check"]).exit_code == 0
    text = (tmp_path / "dvc.yaml").read_text()
    (tmp_path / "dvc.yaml").write_text(text.replace("python -m stages.prepare", "python -m stages.prepare --fast"))
    result = runner.invoke(app, ["spec", "check"])
    assert result.exit_code == 1
    assert "dvc.yaml is stale" in result.output
    assert "-    cmd: python -m stages.prepare --fast" in result.output
    assert "+    cmd: python -m stages.prepare" in result.output


def test_shape_mismatch_names_the_structural_field(tmp_path: Path) -> None:
    spec = Spec()
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text(render_dvc_yaml(spec))
    assert recorded_shape(dvc_yaml)["method.name"] == "gdrt"
    assert shape_mismatch(spec, dvc_yaml) is None
    tau_changed = validate_spec({"method": {"name": "gdrt", "tau": 0.3}})
    assert shape_mismatch(tau_changed, dvc_yaml) is None, "a leaf like method.tau must not change the shape"
    reshaped = validate_spec({"baselines": ["sft"]})
    message = shape_mismatch(reshaped, dvc_yaml)
    assert message is not None and "baselines" in message and "lure exp run" in message
    assert diff_dvc_yaml(spec, dvc_yaml) == ""
    assert shape_mismatch(spec, tmp_path / "absent.yaml") is not None


def test_view_allows_declared_and_refuses_undeclared() -> None:
    view = SpecView(Spec(), ("seed", "data.source", "method.tau"), stage="probe")
    assert view.seed == 0
    assert view.data.source.n_users == 1000
    assert view.method.tau == 0.5
    with pytest.raises(UndeclaredParamError, match=r"stage 'probe' read spec field 'method.groups'"):
        _ = view.method.groups
    with pytest.raises(UndeclaredParamError, match="'data.bins'"):
        _ = view.data.bins
    with pytest.raises(UndeclaredParamError, match="'pairs'"):
        _ = view.pairs
    with pytest.raises(AttributeError, match="no field 'data.nope'"):
        _ = view.data.nope
    with pytest.raises(AttributeError, match="read-only"):
        view.seed = 3


def test_view_shows_only_the_declared_entries_of_a_mapping() -> None:
    view = SpecView(Spec(), ("abpo.variants.abpo", "abpo.rounds"), stage="abpo-abpo")
    assert list(view.abpo.variants) == ["abpo"]  # grpo's entry is not declared: invisible
    assert view.abpo.variants["abpo"].method == "abpo"
    with pytest.raises(UndeclaredParamError, match="'abpo.group_size'"):
        _ = view.abpo.group_size


def test_plugin_stages_join_the_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_plugin.py").write_text(
        "from lure.registry import ANALYSES, Definition, StageDef\n"
        "ANALYSES.add(Definition('mine', stages=lambda spec: [\n"
        "    StageDef(name='mine', params=('method.tau',), outs=('out/mine',), module='my_plugin')]))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = validate_spec({"plugins": ["my_plugin"]})
    names = [s.name for s in pipeline_stages(spec)]
    assert names[:2] == ["validate", "prepare"] and names[-4:] == ["abpo-report", "mine", "tables", "track"]
    import yaml

    doc = yaml.safe_load(render_dvc_yaml(spec))
    assert doc["stages"]["mine"]["cmd"] == "python -m my_plugin"
    assert "metrics/mine.json" in doc["stages"]["tables"]["deps"]
    with pytest.raises(SpecError, match="plugins: cannot import plugin module 'not_there'"):
        validate_spec({"plugins": ["not_there"]})


def test_a_stage_reading_an_undeclared_field_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real stage runner (as `python -m stages.X` uses it), not just the view: the violation is an error."""
    from lure.stage import run_stage

    (tmp_path / "sneaky_plugin.py").write_text(
        "from lure.registry import ANALYSES, Definition, StageDef\n"
        "ANALYSES.add(Definition('sneaky', stages=lambda spec: [\n"
        "    StageDef(name='sneaky', params=('method.tau',), module='sneaky_plugin')]))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text("plugins: [sneaky_plugin]\n")
    assert runner.invoke(app, ["spec", "use", "spec.yaml"]).exit_code == 0
    with run_stage("sneaky") as st:
        assert st.spec.method.tau == 0.5
    assert (tmp_path / "metrics" / "sneaky.json").is_file()
    (tmp_path / "metrics" / "sneaky.json").unlink()
    with pytest.raises(UndeclaredParamError, match="stage 'sneaky' read spec field 'pairs'"):
        with run_stage("sneaky") as st:
            _ = st.spec.pairs.per_user
    assert not (tmp_path / "metrics" / "sneaky.json").exists(), "a failed stage must not write its metrics"


def test_summary_prints_headlines_and_the_evaluation_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "prepare.json").write_text(json.dumps({"users": 10, "wall_time_s": 1.5}))
    stats = {"mean": 0.25, "ci_low": 0.2, "ci_high": 0.3}
    evaluation = {
        "pop": {"naive": {"recall_at_10": stats}, "ips": {"recall_at_10": {**stats, "mean": 0.125}}},
        "users": {"naive": {"evaluated": 10, "skipped": 0}},
        "summary": {"target": "truth", "snips_error_ratio": 0.2, "by_propensity": {"true": {"ips_error_ratio": 0.05}}},
    }
    (tmp_path / "metrics" / "evaluate.json").write_text(json.dumps(evaluation))
    result = runner.invoke(app, ["summary"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "snips_error_ratio ↓" in result.output and "ips_error_ratio.true ↓" in result.output
    assert "prepare" in result.output and "wall_time_s" not in result.output
    assert "0.2500" in result.output and "[0.200, 0.300]" in result.output and "0.1250" in result.output
    assert "users" not in result.output.split("offline evaluation")[1]


def _stages(**overrides):
    from lure.pipeline.stages import pipeline_stages
    from lure.spec.load import apply_overrides, validate_spec

    spec = validate_spec(apply_overrides({}, [f"{k}={v}" for k, v in overrides.items()]))
    return {s.name: s for s in pipeline_stages(spec)}


def test_llm_stage_graph_follows_the_spec() -> None:
    default = _stages()
    assert [n for n in default if n.startswith(("llm-", "train-", "gdrt-"))] == [
        "llm-base",
        "train-sft",
        "gdrt-groups",
        "train-gdrt",
        "llm-relevance",
        "llm-eval-gdrt",
        "llm-eval-sft",
        "llm-eval-sasrec",
        "llm-eval-popularity",
        "llm-pairs-gdrt",
        "llm-pairs-sft",
        "llm-report",
    ]
    # the judged pairs are scored by every fine-tuned recommender evaluated, never by a baseline of the zoo
    pairs = default["llm-pairs-sft"]
    assert pairs.cmd == "python -m stages.llm_pairs sft" and pairs.outs == ("data/llm/pairs/sft",)
    assert pairs.params == ("seed", "model", "data.splits.history_max", "eval.llm.rank_batch")
    assert set(pairs.deps) >= {"data/prepared", "data/pairs", "data/llm/base", "data/llm/sft"}
    assert "data/llm/pairs/gdrt" in default["llm-pairs-gdrt"].outs and "llm-pairs-sasrec" not in default
    # tau is read by GDRT training alone, so a tau sweep re-trains GDRT and re-evaluates, nothing upstream
    readers = sorted(n for n, s in default.items() if any(p in ("method.tau", "method") for p in s.params))
    assert readers == ["track", "train-gdrt", "validate"]
    assert "data/llm/sft" in default["gdrt-groups"].deps and "data/llm/sft" in default["llm-relevance"].deps
    # Eq. 3 and Eq. 2 scored by the base model, no SFT baseline: no SFT training at all
    lean = _stages(
        **{
            "method.name": "gdrt",
            "method.relevance_model": "base",
            "eval.llm.fairness_scorer": "base",
            "baselines": "[popularity]",
            "abpo": "null",  # ABPO updates the SFT model
        }
    )
    assert "train-sft" not in lean and "llm-eval-sft" not in lean
    assert {n for n in lean if n.startswith(("llm-", "train-", "gdrt-"))} == {
        "llm-base",
        "gdrt-groups",
        "train-gdrt",
        "llm-relevance",
        "llm-eval-gdrt",
        "llm-eval-popularity",
        "llm-pairs-gdrt",
        "llm-report",
    }
    assert "data/llm/base" in lean["gdrt-groups"].deps and "data/llm/sft" not in lean["gdrt-groups"].deps
    # SFT under study: no GDRT stages
    sft = _stages(**{"method.name": "sft", "baselines": "[popularity]"})
    assert "train-gdrt" not in sft and "gdrt-groups" not in sft and "llm-eval-sft" in sft
    assert "llm-pairs-sft" in sft and "llm-pairs-gdrt" not in sft
    # several processes: the training stages launch through accelerate with the repository's config
    multi = _stages(**{"train.processes": 4})
    assert multi["train-gdrt"].cmd.startswith(
        "accelerate launch --config_file accelerate/multi_gpu.yaml --num_processes 4 -m stages.train gdrt"
    )
    assert default["train-gdrt"].cmd == "python -m stages.train gdrt"


def test_no_method_under_study_means_no_llm_stage() -> None:
    """`method: null` with no baselines: the offline pipeline alone (the DVC tests' spec, tests/conftest.py)."""
    offline = _stages(
        **{
            "method": "null",
            "baselines": "[]",
            "eval.models": "[random, popularity]",
            "judge": "null",
            "calibrate": "null",
            "exposynth": "null",
            "reclaif": "null",
            "abpo": "null",
        }
    )
    assert list(offline) == [
        "validate",
        "prepare",
        "propensity",
        "pairs",
        "zoo-random",
        "zoo-popularity",
        "evaluate",
        "tables",
        "track",
    ]
    assert not any(p.startswith("data/llm") for s in offline.values() for p in (*s.deps, *s.outs))
    from tests.conftest import SMALL_OFFLINE

    assert [s.name for s in pipeline_stages(validate_spec(SMALL_OFFLINE))] == list(offline)


def test_dvc_reads_yaml_with_the_c_parser() -> None:
    """DVC parses params.yaml once per stage and dvc.lock twice on every `dvc repro`, with ruamel's "safe" loader.

    ruamel.yaml >= 0.19 no longer installs its C parser (ruamel.yaml.clib); in pure Python a no-op `dvc repro` of
    the default pipeline spends over a second parsing YAML (bench: dvc_repro_noop_s).
    """
    from ruamel.yaml import YAML

    parser = YAML(typ="safe").Parser
    assert parser.__module__ != "ruamel.yaml.parser", "ruamel.yaml.clib is missing: `make install` (requirements.lock)"


def test_summary_prints_the_language_bias_block_as_its_own_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    report = {
        "world": {"sft": {"ndcg_at_10": 0.0133}},
        "comparison": {},
        "language_bias": {"base": {"eq2_spearman_prior": 0.9167}, "sft": {"top1_top_prior_share": 0.176}},
    }
    (tmp_path / "metrics" / "llm-report.json").write_text(json.dumps(report))
    result = runner.invoke(app, ["summary"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "recommendation on language_bias" not in result.output  # not a dataset
    assert "language bias against the world's truth" in result.output
    assert "0.9167" in result.output and "0.1760" in result.output and "0.0133" in result.output
