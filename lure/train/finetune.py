"""One fine-tuning runner for every generative method: TRL's ``SFTTrainer`` (SFT) or a subclass that overrides
its loss (GDRT), with the settings a CPU run needs made explicit, resumable checkpoints that survive a crash, and a
callback that records the model's top-1 recommendations over training (GDRT Figs. 4 and 9).

Why checkpoints live outside the stage's DVC output: DVC deletes a stage's outputs before running it, so a checkpoint
kept there would be gone exactly when it is needed. ``checkpoint_dir`` is keyed by a hash of everything the run
depends on (spec sections, data, base model): a re-run after an interruption resumes from the newest checkpoint of
the *same* run, a changed run starts afresh, and the folder is deleted once the final model is written.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lure.io import atomic_dir
from lure.layout import CHECKPOINTS, COURSE

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


def sft_config(train: Any, output_dir: Path, seed: int, n_rows: int) -> Any:
    """``trl.SFTConfig`` from the ``train`` spec section, with TRL's CPU-unfriendly defaults overridden.

    Explicit choices: no activation (gradient) checkpointing (TRL defaults it on; it only trades compute for memory,
    which a small model does not need), precision from :func:`mixed_precision`, no packing / padding-free (rows are
    pre-tokenised with their own loss masks and GDRT needs per-row token groups), ``max_length=None`` (rows were fitted
    to ``model.max_length`` when built, by dropping the oldest history items), one checkpoint kept.
    """
    from trl import SFTConfig

    bf16, fp16 = mixed_precision(train.precision)
    steps_per_epoch = max(1, -(-n_rows // (train.batch_size * train.grad_accum)))
    total_steps = max(1, int(round(steps_per_epoch * train.epochs)))
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
        save_strategy="steps",
        save_steps=train.checkpoint_steps,
        save_total_limit=1,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
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
    **trainer_kwargs: Any,
) -> dict[str, Any]:
    """Train ``model`` on the pre-tokenised ``dataset``; resume from ``work_dir``'s newest checkpoint if any; save the
    final model and tokenizer to ``out_dir``; delete ``work_dir``. Returns training metrics (loss, tokens/s, steps).

    ``trainer_cls`` defaults to ``trl.SFTTrainer``; a method passes its subclass (``GDRTTrainer``) and its extra
    constructor arguments through ``trainer_kwargs``.
    """
    import time

    if trainer_cls is None:
        from trl import SFTTrainer

        trainer_cls = SFTTrainer
    args = sft_config(train, work_dir, seed, len(dataset))
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=list(callbacks),
        **trainer_kwargs,
    )
    resume = last_checkpoint(work_dir)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0 - sum(getattr(c, "seconds", 0.0) for c in callbacks)
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
    }
    if main:
        shutil.rmtree(work_dir, ignore_errors=True)
    return {"metrics": metrics, "log_history": trainer.state.log_history, "main_process": main}
