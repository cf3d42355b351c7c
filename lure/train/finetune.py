"""One fine-tuning runner for every generative method: TRL's ``SFTTrainer`` (SFT) or a subclass that overrides
its loss (GDRT), with the settings a CPU run needs made explicit, resumable checkpoints that survive a crash, and a
callback that records the model's top-1 recommendations over training (GDRT Figs. 4 and 9).

Why checkpoints live outside the stage's DVC output: DVC deletes a stage's outputs before running it, so a checkpoint
kept there would be gone exactly when it is needed. ``checkpoint_dir`` is keyed by a hash of everything the run
depends on (spec sections, data, base model): a re-run after an interruption resumes from the newest checkpoint of
the *same* run, a changed run starts afresh, and the folder is deleted once the final model is written.

What a person watching the run sees: "resuming from checkpoint-N" when a run picks up a checkpoint; Ctrl-C ends
training with :class:`TrainingInterrupted` (the step reached and the checkpoint a re-run resumes from) instead of a
traceback through TRL; no warning about the tied output embedding on resume; no model card (README.md) written by
TRL or peft into the checkpoint and model folders.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lure.io import atomic_dir
from lure.layout import CHECKPOINTS, COURSE
from lure.train.select import (
    Validator,
    attach_validation,
    make_selection_callback,
    selection_args,
    selection_summary,
)

CHECKPOINT_ROOT = Path(CHECKPOINTS)


def run_key(*parts: Any) -> str:
    """Short content hash identifying a training run (spec sections, data fingerprints, base model)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def checkpoint_dir(stage: str, key: str, root: Path = CHECKPOINT_ROOT) -> Path:
    return root / f"{stage}-{key}"


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the step it reached and the newest checkpoint, which a re-run resumes from.

    A ``KeyboardInterrupt``, so that whatever handles Ctrl-C still does; its message is the one line a stage prints
    (``lure.stage.run_stage`` ends the stage with it and exit code 130).
    """

    def __init__(self, step: int, max_steps: int, checkpoint: str | None, checkpoint_steps: int) -> None:
        self.step, self.max_steps, self.checkpoint = step, max_steps, checkpoint
        if checkpoint:
            resume = f"`dvc repro` resumes from {checkpoint}"
        else:
            resume = f"no checkpoint yet (train.checkpoint_steps: {checkpoint_steps}), so `dvc repro` starts over"
        super().__init__(f"training interrupted at step {step} of {max_steps}; {resume}")


def tied_parameter_names(model: Any) -> dict[str, set[str]]:
    """Each parameter name that shares its tensor with other names (tied input and output embeddings) → all the
    names of that tensor. A checkpoint stores a shared tensor once, under one of its names."""
    groups: dict[int, set[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), set()).add(name)
    return {name: group for group in groups.values() if len(group) > 1 for name in group}


def quiet_tied_missing_keys(trainer: Any) -> None:
    """Stop ``Trainer`` from warning "There were missing keys in the checkpoint model loaded: ['lm_head.weight']"
    when it resumes a model with tied embeddings.

    The checkpoint holds the shared tensor once (``model.embed_tokens.weight``); ``load_state_dict(strict=False)``
    fills it, and ``lm_head.weight`` is the same tensor, so nothing is missing. Transformers only recognises this
    through ``_keys_to_ignore_on_save``, which recent models no longer set. A missing key is dropped from the warning
    only when another name of its tensor was loaded; any other missing key is still reported.
    """
    issue = trainer._issue_warnings_after_load

    def issue_untied(load_result: Any) -> None:
        tied, missing = tied_parameter_names(trainer.model), set(load_result.missing_keys)
        really = [k for k in load_result.missing_keys if not (tied.get(k, set()) - missing)]
        issue(load_result._replace(missing_keys=really))

    trainer._issue_warnings_after_load = issue_untied


def without_model_cards(trainer: Any) -> None:
    """No Hugging Face boilerplate README.md: TRL writes one into the checkpoint folder at every save
    (``create_model_card``), peft one into every adapter folder it saves (checkpoints and the final model). Neither
    says anything about this run that the stage's metrics and ``dvc.lock`` do not."""

    def skip(*args: Any, **kwargs: Any) -> None:
        return None

    trainer.create_model_card = skip
    if hasattr(trainer.model, "create_or_update_model_card"):  # a peft model
        trainer.model.create_or_update_model_card = skip


def close_progress_bar(trainer: Any) -> None:
    """End the line of Trainer's progress bar (``ProgressCallback.training_bar``) after an interruption, so that
    the message that follows starts a line of its own and the bar does not redraw itself after it at exit."""
    for callback in trainer.callback_handler.callbacks:
        bar = getattr(callback, "training_bar", None)
        if bar is not None:
            bar.close()
            callback.training_bar = None


def mixed_precision(precision: str) -> tuple[bool, bool]:
    """(bf16, fp16) for ``train.precision``; 'auto' = bf16 on a CUDA device that supports it, else float32.

    Set explicitly because TRL's ``SFTConfig`` turns bf16 on by default, which a CPU without bf16 kernels runs
    slowly or not at all.
    """
    cuda = torch.cuda.is_available()
    if precision == "auto":
        return (cuda and torch.cuda.is_bf16_supported()), False
    if precision in ("bf16", "fp16") and not cuda:
        raise ValueError(f"train.precision {precision!r} needs a CUDA device; use 'auto' or 'float32' on the CPU")
    return precision == "bf16", precision == "fp16"


def sft_config(train: Any, output_dir: Path, seed: int, n_rows: int, select: bool = False) -> Any:
    """``trl.SFTConfig`` from the ``train`` spec section, with TRL's CPU-unfriendly defaults overridden.

    Explicit choices: no activation (gradient) checkpointing (TRL defaults it on; it only trades compute for memory,
    which a small model does not need), precision from :func:`mixed_precision`, no packing / padding-free (rows are
    pre-tokenised with their own loss masks and GDRT needs per-row token groups), ``max_length=None`` (rows were fitted
    to ``model.max_length`` when built, by dropping the oldest history items), one checkpoint kept (plus, with
    ``select``, the best one: :func:`lure.train.select.selection_args` replaces the step-wise save strategy).
    """
    from trl import SFTConfig

    bf16, fp16 = mixed_precision(train.precision)
    steps_per_epoch = max(1, -(-n_rows // (train.batch_size * train.grad_accum)))
    total_steps = max(1, int(round(steps_per_epoch * train.epochs)))
    saving: dict[str, Any] = {"save_strategy": "steps", "save_steps": train.checkpoint_steps}
    if select:
        saving.update(selection_args(train.select_metric))
    return SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        num_train_epochs=train.epochs,
        learning_rate=train.learning_rate,
        weight_decay=train.weight_decay,
        warmup_steps=train.warmup,  # a float < 1 is a fraction of the training steps
        lr_scheduler_type=train.scheduler,
        bf16=bf16,
        fp16=fp16,
        activation_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        remove_unused_columns=False,
        packing=False,
        padding_free=False,
        max_length=None,
        dataset_num_proc=None,
        logging_steps=max(1, total_steps // 20),
        save_total_limit=1,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        **saving,
    )


def save_atomically(out_dir: Path, save: Callable[[str], Any]) -> Path:
    """Write a model folder through ``save(path)`` into a sibling temp folder, then swap it into place."""
    with atomic_dir(out_dir) as tmp:
        save(str(tmp))
    return Path(out_dir)


def last_checkpoint(directory: Path) -> str | None:
    """Newest ``checkpoint-<step>`` folder under ``directory`` (a complete one: Trainer writes it atomically)."""
    if not directory.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(directory))


def course_steps(total_steps: int, points: int) -> list[int]:
    """``points`` steps evenly spread over training, the last one being the final step."""
    if points <= 0 or total_steps <= 0:
        return []
    return sorted({max(1, int(round(total_steps * (i + 1) / points))) for i in range(points)})


def make_course_callback(record: Callable[[Any, int], list[dict[str, Any]]], points: int) -> Any:
    """A ``TrainerCallback`` that calls ``record(model, step)`` at :func:`course_steps` and keeps the rows.

    The callback switches the model to eval mode (no dropout) around ``record`` and back; its ``rows`` survive a
    resume because the rows recorded before the crash are saved with each checkpoint (``course.parquet``).
    """
    from transformers import TrainerCallback

    class CourseCallback(TrainerCallback):
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []
            self.steps: set[int] = set()
            self.seconds = 0.0  # time spent recording, excluded from the training throughput

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.steps = set(course_steps(state.max_steps, points))
            resumed = Path(args.output_dir)
            ckpt = last_checkpoint(resumed)
            if ckpt and (Path(ckpt) / COURSE).is_file() and not self.rows:
                self.rows = pd.read_parquet(Path(ckpt) / COURSE).to_dict("records")

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if state.global_step in self.steps and model is not None:
                import time

                t0 = time.perf_counter()
                was_training = model.training
                model.eval()
                self.rows.extend(record(model, state.global_step))
                if was_training:
                    model.train()
                self.seconds += time.perf_counter() - t0

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            from lure.io import write_parquet

            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                write_parquet(ckpt / COURSE, pd.DataFrame(self.rows, columns=COURSE_COLUMNS))

    return CourseCallback()


COURSE_COLUMNS = ("step", "sample", "item_id")


def fine_tune(
    model: Any,
    tokenizer: Any,
    dataset: Any,
    train: Any,
    seed: int,
    out_dir: Path,
    work_dir: Path,
    trainer_cls: type | None = None,
    callbacks: Sequence[Any] = (),
    validate: Validator | None = None,
    **trainer_kwargs: Any,
) -> dict[str, Any]:
    """Train ``model`` on the pre-tokenised ``dataset``; resume from ``work_dir``'s newest checkpoint if any; save the
    final model and tokenizer to ``out_dir``; delete ``work_dir``. Returns training metrics (loss, tokens/s, steps).

    ``trainer_cls`` defaults to ``trl.SFTTrainer``; a method passes its subclass (``GDRTTrainer``) and its extra
    constructor arguments through ``trainer_kwargs``.

    With ``validate`` (the validation ranking, ``model -> {"ndcg_at_5": ...}``) and ``train.select_best``, the model
    is evaluated at every epoch end and the one saved to ``out_dir`` is the checkpoint with the best
    ``train.select_metric`` (GDRT §4.1.3; :mod:`lure.train.select`); the metrics then say which (``selection``).
    Without ``validate``, or with ``select_best: false``, the last model is saved (no validation runs).
    """
    import time

    if trainer_cls is None:
        from trl import SFTTrainer

        trainer_cls = SFTTrainer
    select = validate is not None and train.select_best
    args = sft_config(train, work_dir, seed, len(dataset), select=select)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[*callbacks, *([make_selection_callback(train.checkpoint_steps)] if select else [])],
        **trainer_kwargs,
    )
    quiet_tied_missing_keys(trainer)
    without_model_cards(trainer)
    select_seconds = attach_validation(trainer, validate) if select and validate is not None else (lambda: 0.0)
    resume = last_checkpoint(work_dir)
    if resume and trainer.accelerator.is_main_process:
        print(f"resuming from {Path(resume).name} (in {work_dir})", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except KeyboardInterrupt:
        close_progress_bar(trainer)
        state = trainer.state
        raise TrainingInterrupted(
            state.global_step, state.max_steps, last_checkpoint(work_dir), train.checkpoint_steps
        ) from None
    seconds = time.perf_counter() - t0 - sum(getattr(c, "seconds", 0.0) for c in callbacks) - select_seconds()
    main = trainer.accelerator.is_main_process
    if main:  # under data parallelism only rank 0 writes; the others stop here
        save_atomically(out_dir, trainer.save_model)  # model (or adapters) + tokenizer
    history = [row for row in trainer.state.log_history if "loss" in row]
    tokens = int(sum(len(ids) for ids in dataset["input_ids"]) * train.epochs)
    metrics = {
        "train_loss": float(result.training_loss),
        "final_loss": float(history[-1]["loss"]) if history else float("nan"),
        "steps": int(trainer.state.global_step),
        "rows": len(dataset),
        "train_seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 and not resume else None,
        "resumed_from": Path(resume).name if resume else None,
        "device": str(trainer.args.device),
        "selection": (
            selection_summary(trainer.state, train.select_metric, train.select_samples, select_seconds())
            if select
            else None
        ),
    }
    if main:
        shutil.rmtree(work_dir, ignore_errors=True)
    return {"metrics": metrics, "log_history": trainer.state.log_history, "main_process": main}
