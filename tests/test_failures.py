"""What a user is left with when something fails: `lure exp run` restores params.yaml and dvc.yaml byte for byte,
the validate stage puts back params.yaml's field descriptions after `dvc exp run -S`, a stage run by a python
without lure's dependencies says how to activate the environment, and Ctrl-C ends a stage with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lure import cli
from lure.pipeline.generate import render_dvc_yaml
from lure.spec.dump import dump_spec
from lure.spec.load import validate_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"method": None, "baselines": [], "abpo": None, "eval": {"models": ["random", "popularity"], "bootstrap": 50}}
runner = CliRunner()


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with params.yaml (as `lure spec use` writes it, plus a hand-written comment and CRLF line ends, which
    a text round trip would not keep) and its dvc.yaml; the code is linked from the repository."""
    for name in ("lure", "stages", "prompts"):
        (tmp_path / name).symlink_to(ROOT / name)
    spec = validate_spec(SPEC)
    params = ("# my note: keep this\n" + dump_spec(spec)).replace("\n", "\r\n")
    (tmp_path / "params.yaml").write_bytes(params.encode())
    (tmp_path / "dvc.yaml").write_text(render_dvc_yaml(spec, tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in ("params.yaml", "dvc.yaml")}


def fake_dvc(code: int, calls: list[list[str]]):
    """Stands in for `dvc exp run`: applies the -S overrides to params.yaml with DVC's own writer, then exits."""

    def run(args: list[str]) -> int:
        from dvc.utils.hydra import apply_overrides

        calls.append(args)
        overrides = [args[i + 1] for i, a in enumerate(args) if a == "-S"]
        apply_overrides("params.yaml", overrides)
        return code

    return run


def test_rejected_value_never_reaches_dvc(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before, calls = snapshot(project), []
    monkeypatch.setattr(cli, "_run", fake_dvc(0, calls))
    result = runner.invoke(cli.app, ["exp", "run", "-S", "eval.bootstrap=abc"])
    assert result.exit_code == 2 and "eval.bootstrap" in result.output
    assert calls == [] and snapshot(project) == before


@pytest.mark.parametrize(
    "override",
    ["eval.bootstrap=60", "eval.models=[popularity]"],  # the same shape; a new shape (dvc.yaml regenerated)
)
def test_failed_dvc_run_leaves_both_files_byte_identical(
    project: Path, monkeypatch: pytest.MonkeyPatch, override: str
) -> None:
    before, calls = snapshot(project), []
    monkeypatch.setattr(cli, "_run", fake_dvc(1, calls))
    result = runner.invoke(cli.app, ["exp", "run", "-S", override])
    assert result.exit_code == 1, result.output
    assert len(calls) == 1 and override in calls[0]
    assert snapshot(project) == before


def test_interrupted_run_restores_and_exits_130(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(project)

    def interrupted(args: list[str]) -> int:
        fake_dvc(0, [])(args)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    result = runner.invoke(cli.app, ["exp", "run", "-S", "eval.bootstrap=60"])
    assert result.exit_code == 130 and "interrupted" in result.output
    assert snapshot(project) == before


def test_successful_run_keeps_the_new_value(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_run", fake_dvc(0, []))
    result = runner.invoke(cli.app, ["exp", "run", "-S", "eval.bootstrap=60"])
    assert result.exit_code == 0, result.output
    assert "bootstrap: 60" in (project / "params.yaml").read_text()


# ---------------------------------------------------------------- the validate stage after `dvc exp run -S`


def test_validate_restores_the_layout_dvc_changed(tmp_path: Path) -> None:
    from dvc.utils.hydra import apply_overrides

    from stages.validate import restore_layout, same_values

    spec = validate_spec(SPEC)
    path = tmp_path / "params.yaml"
    path.write_text(dump_spec(spec))
    apply_overrides(str(path), ["eval.bootstrap=60"])  # DVC's own writer: flow lists become block lists
    changed = path.read_text()
    assert "  models:\n  - random\n  - popularity\n" in changed and "bootstrap: 60" in changed
    assert restore_layout(path) is True
    expected = dump_spec(validate_spec({**SPEC, "eval": {**SPEC["eval"], "bootstrap": 60}}))
    assert path.read_text() == expected and same_values(changed, expected)
    assert restore_layout(path) is False  # already in dump_spec's layout


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (("bootstrap: 50", "bootstrap: 50.0"), "50 and 50.0 are different values to DVC"),
        (("  bootstrap: 50\n", ""), "a field left out: writing it would add a param"),
    ],
)
def test_validate_leaves_a_file_whose_values_would_change(tmp_path: Path, edit: tuple[str, str], why: str) -> None:
    from stages.validate import restore_layout

    path = tmp_path / "params.yaml"
    text = dump_spec(validate_spec(SPEC)).replace("ks: [5, 10, 20]", "ks:\n  - 5\n  - 10\n  - 20")
    assert edit[0] in text
    text = text.replace(*edit)
    path.write_text(text)
    assert restore_layout(path) is False, why  # both files are valid specs (pydantic takes 50.0 for an int)
    assert path.read_text() == text


# ---------------------------------------------------------------- a python without lure's dependencies


def test_missing_packages_are_found_without_importing_them() -> None:
    from stages import missing_packages

    assert missing_packages(("json", "no_such_package_lure_test")) == ["no_such_package_lure_test"]


def test_stage_run_by_a_bare_python_says_how_to_activate(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    bare = tmp_path / "bare" / "bin" / "python"
    proc = subprocess.run([str(bare), "-m", "stages.validate"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line, no traceback
    assert f"not importable by {bare}" in proc.stderr and "pandas" in proc.stderr
    assert "`source .venv/bin/activate` (or `make repro`)" in proc.stderr


# ---------------------------------------------------------------- Ctrl-C and resuming


def test_ctrl_c_in_a_stage_is_one_line_and_exit_130(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lure.stage import run_stage

    with pytest.raises(SystemExit) as exit_info, run_stage("prepare"):
        raise KeyboardInterrupt
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "error: prepare interrupted; `dvc repro` runs it again\n"
    assert not (project / "metrics").exists()


def test_tied_embedding_is_not_reported_missing_but_a_missing_weight_is() -> None:
    from torch.nn.modules.module import _IncompatibleKeys

    from lure.llm.model import build_tiny_llama
    from lure.llm.tokenizer import train_tokenizer
    from lure.train.finetune import quiet_tied_missing_keys, tied_parameter_names

    tok = train_tokenizer(["one title", "another title"], vocab_size=300)
    model = build_tiny_llama(tok, hidden=16, layers=1, heads=2, seed=0)
    assert tied_parameter_names(model) == {
        "lm_head.weight": {"lm_head.weight", "model.embed_tokens.weight"},
        "model.embed_tokens.weight": {"lm_head.weight", "model.embed_tokens.weight"},
    }
    reported: list[list[str]] = []

    class Trainer:
        def _issue_warnings_after_load(self, load_result) -> None:
            reported.append(load_result.missing_keys)

    trainer = Trainer()
    trainer.model = model
    quiet_tied_missing_keys(trainer)
    for missing in (["lm_head.weight"], ["model.norm.weight", "lm_head.weight"], sorted(tied_parameter_names(model))):
        trainer._issue_warnings_after_load(_IncompatibleKeys(missing, []))
    assert reported == [[], ["model.norm.weight"], ["lm_head.weight", "model.embed_tokens.weight"]]


TRAIN_SCRIPT = """\
import os, signal, sys
# A pytest-xdist worker ignores SIGINT and its children inherit that; a shell's Ctrl-C reaches the default handler.
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path

import pandas as pd
from transformers import TrainerCallback

from lure.llm.data import sft_dataset
from lure.llm.model import build_tiny_llama
from lure.llm.tokenizer import train_tokenizer
from lure.spec.train import TrainSpec
from lure.stage import run_stage
from lure.train.finetune import fine_tune

titles = {i: f"Title number {w}" for i, w in enumerate(["one", "two", "three", "four", "five", "six"])}
windows = pd.DataFrame(
    {"user_id": [i % 4 for i in range(24)], "history": [[(i + j) % 6 for j in range(3)] for i in range(24)],
     "item_id": [(i + 3) % 6 for i in range(24)]}
)
tok = train_tokenizer(list(titles.values()), vocab_size=300)
model = build_tiny_llama(tok, hidden=16, layers=1, heads=2, seed=0)
train = TrainSpec(epochs=2, batch_size=4, checkpoint_steps=3, max_samples=None, course_points=0)
stop_at = int(sys.argv[1])


class CtrlC(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == stop_at:
            os.kill(os.getpid(), signal.SIGINT)  # what the terminal sends on Ctrl-C


with run_stage("validate", write_metrics=False):
    fine_tune(model, tok, sft_dataset(windows, titles, tok), train, 0, Path("out"), Path("work"), callbacks=[CtrlC()])
"""


@pytest.mark.slow  # two tiny fine-tuning runs in subprocesses (~30 s)
def test_ctrl_c_in_training_then_resume(project: Path) -> None:
    (project / "train_script.py").write_text(TRAIN_SCRIPT)
    run = [sys.executable, "train_script.py"]
    interrupted = subprocess.run([*run, "4"], cwd=project, capture_output=True, text=True, timeout=600)
    assert interrupted.returncode == 130, interrupted.stderr
    assert "Traceback" not in interrupted.stderr
    last = interrupted.stderr.strip().splitlines()[-1]
    assert last == "error: training interrupted at step 4 of 12; `dvc repro` resumes from work/checkpoint-3"
    assert (project / "work" / "checkpoint-3").is_dir()
    assert not list((project / "work").rglob("README.md")), "no model card in the checkpoint folder"

    resumed = subprocess.run([*run, "0"], cwd=project, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoint-3 (in work)" in resumed.stderr
    assert "missing keys" not in resumed.stderr, resumed.stderr
    assert not (project / "work").exists() and (project / "out" / "config.json").is_file()
    assert not list((project / "out").rglob("README.md"))


def test_dvc_exp_run_set_param_keeps_the_layout_and_a_clean_status(offline_copy: Path) -> None:
    """Through DVC: the re-dumped params.yaml is what the experiment commits, and DVC sees no change afterwards."""
    from lure.io import read_yaml
    from tests.conftest import dvc, run

    root = offline_copy
    out = dvc("exp", "run", "-S", "eval.bootstrap=30", cwd=root)
    assert "params.yaml: rewrote its field descriptions and layout (values unchanged)" in out.stderr, out.stderr
    after = (root / "params.yaml").read_text()
    assert read_yaml(root / "params.yaml")["eval"]["bootstrap"] == 30
    # the spec names a plugin of the project's, importable there only
    redump = "import sys; from lure.spec.dump import dump_spec; from lure.spec.load import load_spec; "
    redump += "sys.stdout.write(dump_spec(load_spec('params.yaml')))"
    assert run([sys.executable, "-c", redump], root).stdout == after
    status = dvc("status", cwd=root).stdout
    assert "up to date" in status, status
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], root).stdout.split()
    (named,) = [r for r in refs if not r.startswith("refs/exps/exec/")]
    assert run(["git", "show", f"{named}:params.yaml"], root).stdout == after
