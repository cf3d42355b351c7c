"""The worked plugin example of docs/pipeline.md (examples/focal_sft.py): its loss by hand, its place in the spec and
the stage graph, and (slow) a DVC pipeline that trains and evaluates it next to a built-in baseline."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lure.pipeline.stages import pipeline_stages
from lure.spec.load import SpecError, validate_spec
from tests.conftest import SMALL_LLM_WORLD, copy_project, dvc, lure, spec_text

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "examples.focal_sft"
SPEC = {
    "plugins": [PLUGIN],
    "method": {"name": "focal-sft", "gamma": 2.0},
    "baselines": ["popularity"],
    "eval": {"llm": {"fairness_scorer": "base"}},
    "abpo": None,  # ABPO updates the SFT model, which this spec does not train
}


def test_focal_loss_by_hand() -> None:
    torch = pytest.importorskip("torch")
    from examples.focal_sft import focal_loss

    # one row of 3 positions over a 2-token vocabulary; position 0 is the prompt (label -100), positions 1, 2 the title
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [0.0, 0.0]]])
    labels = torch.tensor([[-100, 0, 1]])
    # shifted: logits[0] predicts label 0 (p = 1/2), logits[1] predicts label 1 (p = 1/(3+1) = 1/4); logits[2] unused
    p = [0.5, 0.25]
    for gamma in (0.0, 2.0):
        expected = -sum((1 - q) ** gamma * math.log(q) for q in p) / 2
        assert focal_loss(logits, labels, gamma).item() == pytest.approx(expected, rel=1e-6)
    nll = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:])  # gamma 0 is SFT's token-mean NLL
    assert focal_loss(logits, labels, 0.0).item() == pytest.approx(nll.item(), rel=1e-6)


def test_plugin_method_joins_the_spec_and_the_stage_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    spec = validate_spec(SPEC)
    assert spec.method.name == "focal-sft" and spec.method.gamma == 2.0
    names = [s.name for s in pipeline_stages(spec)]
    assert "train-focal-sft" in names and "llm-eval-focal-sft" in names and "train-sft" not in names
    train = next(s for s in pipeline_stages(spec) if s.name == "train-focal-sft")
    assert "method.gamma" in train.params and train.cmd == "python -m stages.train focal-sft"
    from lure.pipeline.generate import stage_entry

    assert "examples/focal_sft.py" in stage_entry(train)["deps"], "editing the plugin must re-run its stages"
    with pytest.raises(SpecError, match=r"method.gamma: .*must be >= 0"):
        validate_spec({**SPEC, "method": {"name": "focal-sft", "gamma": -1}})
    with pytest.raises(SpecError, match="does not match any of the expected tags: 'gdrt', 'sft'"):
        validate_spec({**SPEC, "plugins": []})  # without the plugin the name is unknown


@pytest.mark.slow
def test_plugin_method_runs_in_a_dvc_pipeline(llm_project: tuple[Path, str], tmp_path: Path) -> None:
    # On a copy of the LLM project built once per run (conftest.py): switching the method under study to the plugin
    # re-runs what it changes (the data, the zoo and the base model are reused).
    root = copy_project(llm_project[0], tmp_path / "proj")
    llm_eval = {**SMALL_LLM_WORLD["eval"]["llm"], "fairness_scorer": "base"}
    spec = {**SMALL_LLM_WORLD, **SPEC, "eval": {**SMALL_LLM_WORLD["eval"], "llm": llm_eval}}
    (root / "examples").mkdir()
    (root / "examples" / "focal_sft.py").write_text((ROOT / "examples" / "focal_sft.py").read_text())
    (root / "specs" / "focal.yaml").write_text(spec_text(spec))
    lure("spec", "use", "specs/focal.yaml", cwd=root)
    out = dvc("repro", cwd=root, timeout=900)
    assert "Running stage 'train-focal-sft'" in out.stdout
    assert "Running stage 'prepare'" not in out.stdout and "Running stage 'llm-base'" not in out.stdout, out.stdout
    import json

    report = json.loads((root / "metrics" / "llm-report.json").read_text())
    assert "focal-sft" in json.dumps(report) and "popularity" in json.dumps(report)
    train = json.loads((root / "metrics" / "train-focal-sft.json").read_text())
    assert train["steps"] > 0 and math.isfinite(train["train_loss"])
