"""The fine-tuning runner: CPU-safe TRL settings, and an interrupted run resumes from its checkpoint to the same
result as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from lure.llm.data import sample_windows, sft_dataset
from lure.llm.model import build_tiny_llama
from lure.llm.tokenizer import train_tokenizer
from lure.spec.train import TrainSpec
from lure.train.finetune import (
    course_steps,
    fine_tune,
    last_checkpoint,
    make_course_callback,
    mixed_precision,
    sft_config,
)

TITLES = {i: f"Title number {w} ({1990 + i})" for i, w in enumerate(["one", "two", "three", "four", "five", "six"])}


def windows(n: int = 24) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [i % 4 for i in range(n)],
            "history": [[(i + j) % 6 for j in range(3)] for i in range(n)],
            "item_id": [(i + 3) % 6 for i in range(n)],
        }
    )


def setup(train: TrainSpec):
    tok = train_tokenizer(list(TITLES.values()), vocab_size=300)
    model = build_tiny_llama(tok, hidden=16, layers=1, heads=2, seed=0)
    return model, tok, sft_dataset(windows(), TITLES, tok)


class Crash(Exception):
    pass


def test_config_overrides_trl_cpu_defaults() -> None:
    cfg = sft_config(TrainSpec(), Path("/tmp/x"), seed=3, n_rows=100)
    assert cfg.activation_checkpointing is False and cfg.bf16 is False and cfg.fp16 is False
    assert cfg.packing is False and cfg.padding_free is False and cfg.report_to == []
    assert cfg.seed == 3 and cfg.save_total_limit == 1
    assert mixed_precision("float32") == (False, False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA device"):
            mixed_precision("bf16")


def test_training_sample_is_the_same_for_every_method() -> None:
    w = windows(50)
    a, b = sample_windows(w, 10, 7, "windows.train"), sample_windows(w, 10, 7, "windows.train")
    assert a.equals(b) and len(a) == 10
    assert sample_windows(w, None, 7, "windows.train").equals(w)


def test_course_steps() -> None:
    assert course_steps(10, 5) == [2, 4, 6, 8, 10]
    assert course_steps(3, 5) == [1, 2, 3]
    assert course_steps(10, 0) == []


@pytest.mark.slow  # three fine-tuning runs through TRL (several seconds)
def test_interrupted_training_resumes_to_the_same_model(tmp_path: Path) -> None:
    train = TrainSpec(epochs=2, batch_size=4, checkpoint_steps=3, learning_rate=1e-2, max_samples=None, course_points=2)
    model, tok, data = setup(train)
    seen = []
    ref_cb = make_course_callback(lambda m, step: [{"step": step, "sample": 0, "item_id": 0}], 2)
    ref = fine_tune(model, tok, data, train, 0, tmp_path / "ref", tmp_path / "ref-work", callbacks=[ref_cb])
    assert ref["metrics"]["steps"] == 12 and ref["metrics"]["resumed_from"] is None
    assert [r["step"] for r in ref_cb.rows] == [6, 12]
    assert not (tmp_path / "ref-work").exists(), "checkpoints are removed after a successful run"

    def crash_at_7(m, step):
        seen.append(step)
        return [{"step": step, "sample": 0, "item_id": 0}]

    from transformers import TrainerCallback

    class CrashAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 7:
                raise Crash

    model, tok, data = setup(train)
    work = tmp_path / "work"
    with pytest.raises(Crash):
        fine_tune(
            model,
            tok,
            data,
            train,
            0,
            tmp_path / "out",
            work,
            callbacks=[make_course_callback(crash_at_7, 2), CrashAt()],
        )
    assert last_checkpoint(work) is not None and last_checkpoint(work).endswith("checkpoint-6")
    model, tok, data = setup(train)
    cb = make_course_callback(crash_at_7, 2)
    again = fine_tune(model, tok, data, train, 0, tmp_path / "out", work, callbacks=[cb])
    assert again["metrics"]["resumed_from"] == "checkpoint-6" and again["metrics"]["steps"] == 12
    assert [r["step"] for r in cb.rows] == [6, 12], "course rows recorded before the crash survive the resume"
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(tmp_path / "ref").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "out").state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
