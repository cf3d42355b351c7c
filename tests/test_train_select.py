"""Checkpoint selection (GDRT §4.1.3): the saved model is the one of the epoch with the best validation metric, over
a resume too; ``select_best: false`` keeps the last; fractional epochs still end with an evaluation."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lure.spec.train import TrainSpec
from lure.train.finetune import fine_tune, last_checkpoint, sft_config
from lure.train.select import metric_k, selection_summary, validation_curve
from tests.test_finetune import TITLES, Crash, setup, windows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# 24 windows, batch 4: 6 steps per epoch
TINY = {"batch_size": 4, "learning_rate": 1e-2, "max_samples": None, "course_points": 0, "checkpoint_steps": 4}


def test_metric_k_and_the_trainer_settings_of_selection() -> None:
    assert metric_k("ndcg_at_5") == 5 and metric_k("hit_at_10") == 10
    on = sft_config(TrainSpec(), Path("/tmp/x"), seed=0, n_rows=100, select=True)
    assert on.load_best_model_at_end and on.metric_for_best_model == "ndcg_at_5" and on.greater_is_better
    assert on.save_strategy == "best" and on.eval_strategy == "no"
    off = sft_config(TrainSpec(), Path("/tmp/x"), seed=0, n_rows=100)
    assert not off.load_best_model_at_end and off.save_strategy == "steps" and off.save_steps == 200


def test_validation_curve_and_summary_from_a_log_history() -> None:
    history = [
        {"loss": 2.0, "step": 3, "epoch": 0.5},
        {"eval_ndcg_at_5": 0.1, "eval_hit_at_5": 0.2, "step": 6, "epoch": 1.0},
        {"eval_ndcg_at_5": 0.3, "eval_hit_at_5": 0.4, "step": 12, "epoch": 2.0},
        {"train_runtime": 1.0, "step": 12, "epoch": 2.0},
    ]
    assert validation_curve(history) == {
        "step": [6, 12],
        "epoch": [1.0, 2.0],
        "hit_at_5": [0.2, 0.4],
        "ndcg_at_5": [0.1, 0.3],
    }
    state = SimpleNamespace(log_history=history, best_metric=0.3, best_global_step=12, global_step=12)
    summary = selection_summary(state, "ndcg_at_5", 7, 1.23456)
    assert summary["selected_step"] == 12 and summary["selected_epoch"] == 2.0 and summary["selected_value"] == 0.3
    assert summary["samples"] == 7 and summary["seconds"] == 1.235 and summary["last_step"] == 12


class Recorder:
    """A fake validation ranking: the value of ``curve`` at the current step, and a copy of the weights it saw."""

    def __init__(self, curve: dict[int, float]) -> None:
        self.curve, self.step, self.weights = curve, 0, {}
        from transformers import TrainerCallback

        recorder = self

        class Step(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                recorder.step = state.global_step

        self.callback = Step()

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        assert not model.training, "validation runs in eval mode"
        self.weights[self.step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return {"ndcg_at_5": self.curve[self.step], "hit_at_5": 1.0}


def saved_weights(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)


@pytest.mark.slow  # three tiny fine-tuning runs through TRL (45 steps, a few seconds)
def test_the_saved_model_is_the_best_epoch_and_select_false_keeps_the_last(tmp_path: Path) -> None:
    curve = {6: 0.2, 12: 0.5, 18: 0.5}  # best at epoch 2; the tie at epoch 3 (the last) keeps the earlier one
    train = TrainSpec(epochs=3, **TINY)
    model, tok, data = setup(train)
    rec = Recorder(curve)
    out = fine_tune(
        model, tok, data, train, 0, tmp_path / "best", tmp_path / "w1", callbacks=[rec.callback], validate=rec
    )
    sel = out["metrics"]["selection"]
    assert sorted(rec.weights) == [6, 12, 18], "one evaluation per epoch"
    assert sel["selected_step"] == 12 and sel["selected_epoch"] == 2.0 and sel["selected_value"] == 0.5
    assert sel["curve"]["ndcg_at_5"] == [0.2, 0.5, 0.5] and sel["curve"]["step"] == [6, 12, 18]
    assert [r["step"] for r in out["log_history"] if "eval_ndcg_at_5" in r] == [6, 12, 18]
    saved = saved_weights(tmp_path / "best")
    assert same(saved, rec.weights[12]) and not same(saved, rec.weights[18])
    assert not (tmp_path / "w1").exists()

    model, tok, data = setup(train)
    rec_last = Recorder(curve)
    off = TrainSpec(epochs=3, select_best=False, **TINY)
    out = fine_tune(
        model, tok, data, off, 0, tmp_path / "last", tmp_path / "w2", callbacks=[rec_last.callback], validate=rec_last
    )
    assert out["metrics"]["selection"] is None and rec_last.weights == {}, "no validation when switched off"
    last = saved_weights(tmp_path / "last")
    assert same(last, rec.weights[18]), "select_best: false saves the last model (the same run's final weights)"

    # fractional epochs: the partial last epoch ends with an evaluation, so the final model is a candidate
    model, tok, data = setup(train)
    rec_frac = Recorder({6: 0.1, 9: 0.7})
    frac = TrainSpec(epochs=1.5, **TINY)
    out = fine_tune(
        model, tok, data, frac, 0, tmp_path / "frac", tmp_path / "w3", callbacks=[rec_frac.callback], validate=rec_frac
    )
    assert sorted(rec_frac.weights) == [6, 9] and out["metrics"]["selection"]["selected_step"] == 9
    assert same(saved_weights(tmp_path / "frac"), rec_frac.weights[9])


@pytest.mark.slow  # two tiny fine-tuning runs through TRL (~8 s)
def test_selection_survives_a_crash_and_resume(tmp_path: Path) -> None:
    curve = {6: 0.9, 12: 0.1, 18: 0.3}  # best at epoch 1, before the crash
    train = TrainSpec(epochs=3, **TINY)
    from transformers import TrainerCallback

    class CrashAt9(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 9:
                raise Crash

    work = tmp_path / "work"
    model, tok, data = setup(train)
    first = Recorder(curve)
    with pytest.raises(Crash):
        fine_tune(
            model, tok, data, train, 0, tmp_path / "out", work, callbacks=[first.callback, CrashAt9()], validate=first
        )
    assert last_checkpoint(work).endswith("checkpoint-8"), "periodic checkpoints (train.checkpoint_steps) still happen"
    assert (work / "checkpoint-6").is_dir(), "the best checkpoint is kept"

    model, tok, data = setup(train)
    again = Recorder(curve)
    out = fine_tune(model, tok, data, train, 0, tmp_path / "out", work, callbacks=[again.callback], validate=again)
    sel = out["metrics"]["selection"]
    assert out["metrics"]["resumed_from"] == "checkpoint-8" and sorted(again.weights) == [12, 18]
    assert sel["curve"]["step"] == [6, 12, 18] and sel["selected_step"] == 6
    assert same(saved_weights(tmp_path / "out"), first.weights[6]), "the best model from before the crash is saved"


@pytest.mark.slow  # one tiny fine-tuning run through TRL with the real validation ranking (a few seconds)
def test_selection_with_the_real_validation_ranking(tmp_path: Path) -> None:
    """The stage's validator (constrained beam search, beam 10, NDCG@5 of the validation targets) end to end."""
    from lure.llm.evaluate import accuracy, window_prompt_ids
    from lure.llm.generate import constrained_beam_search
    from lure.llm.trie import TokenTrie

    train = TrainSpec(epochs=3, **TINY)
    model, tok, data = setup(train)
    valid = windows(4)
    prompts = window_prompt_ids(valid, TITLES, tok, 512)
    ids = sorted(TITLES)
    trie = TokenTrie.from_titles(tok, [TITLES[i] for i in ids], None, items=ids)
    targets = valid["item_id"].to_numpy()
    seen: list[dict[str, torch.Tensor]] = []

    def validate(m: torch.nn.Module) -> dict[str, float]:
        seen.append({k: v.detach().clone() for k, v in m.state_dict().items()})
        found = constrained_beam_search(m, tok, prompts, trie, beam=10, top_k=5)
        ranked = np.full((len(found), 5), -1)
        for n, r in enumerate(found):
            ranked[n, : len(r.items)] = r.items
        return {k: float(v.mean()) for k, v in accuracy(ranked, targets, [5]).items()}

    out = fine_tune(model, tok, data, train, 0, tmp_path / "out", tmp_path / "work", validate=validate)
    sel = out["metrics"]["selection"]
    values = sel["curve"]["ndcg_at_5"]
    assert len(values) == 3 and all(0.0 <= v <= 1.0 for v in values)
    best = int(np.argmax(values))  # first maximum: ties keep the earlier epoch
    assert sel["selected_step"] == sel["curve"]["step"][best] and sel["selected_value"] == values[best]
    assert same(saved_weights(tmp_path / "out"), seen[best])
