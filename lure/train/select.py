"""Checkpoint selection by a validation ranking metric (GDRT §4.1.3: "we evaluate the NDCG@5 on the validation set
for each epoch's checkpoint and select the checkpoint with the highest score for testing").

Built on Transformers' own best-model machinery rather than a copy of it: ``metric_for_best_model``,
``load_best_model_at_end`` and ``save_strategy="best"`` make ``Trainer`` record the best value and step in its state
(``best_metric``, ``best_global_step``), keep the best checkpoint through rotation, restore both on resume and load
the best weights back into the model when training ends — so ``fine_tune`` saves the selected model, not the last.

What this module adds, and why:

* **The metric.** ``Trainer.evaluate`` computes a loss (and ``compute_metrics``) from teacher-forced logits over an
  ``eval_dataset``; NDCG@K of a *ranking* needs decoding (constrained beam search over the catalogue), and a GDRT
  trainer's loss needs token groups that validation rows do not have. :func:`attach_validation` therefore replaces
  the trainer's ``evaluate`` with a call to ``validate(model)`` (the stage's validation ranking), logged like any
  evaluation (``eval_<metric>`` rows in ``log_history``, which the tracking layer turns into curves).
* **When.** :class:`SelectionCallback` asks for an evaluation at the end of every epoch, the paper's unit. Trainer
  also ends the last, partial epoch of a fractional ``train.epochs`` with ``on_epoch_end``, so the final model is
  always a candidate (``epochs: 2.5`` → evaluations at epochs 1, 2 and 2.5; ``epochs: 0.5`` → one, at the end).
  ``eval_strategy`` stays ``"no"`` because Trainer would otherwise demand an ``eval_dataset`` it never uses here.
* **Resumable checkpoints.** ``save_strategy="best"`` saves only at a new best, so the callback also asks for a save
  every ``train.checkpoint_steps`` steps (what ``save_strategy="steps"`` did before). It skips a step that ends an
  epoch: that step is saved *after* its evaluation when it is the best so far (a save before the evaluation would
  be a checkpoint whose state lacks that epoch's value); otherwise a crash resumes from the previous checkpoint.

Ties keep the earlier checkpoint (Trainer's comparison is strict).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: ``validate(model)`` → validation metrics without the ``eval_`` prefix, e.g. ``{"ndcg_at_5": 0.12, ...}``.
Validator = Callable[[Any], Mapping[str, float]]


def metric_k(metric: str) -> int:
    """K of a ``<name>_at_<K>`` metric (the cut-off the validation ranking must fill)."""
    return int(metric.rsplit("_at_", 1)[1])


def selection_args(metric: str) -> dict[str, Any]:
    """The ``TrainingArguments`` that make Trainer keep and reload the checkpoint with the highest ``metric``."""
    return {
        "eval_strategy": "no",  # evaluations come from SelectionCallback (see the module docstring)
        "save_strategy": "best",
        "load_best_model_at_end": True,
        "metric_for_best_model": metric,
        "greater_is_better": True,
    }


def attach_validation(trainer: Any, validate: Validator) -> Callable[[], float]:
    """Make ``trainer.evaluate()`` rank the validation windows through ``validate(model)``.

    The metrics are logged with the ``eval_`` prefix (``log_history`` rows with ``step`` and ``epoch``) and passed
    to the callbacks' ``on_evaluate``, as ``Trainer.evaluate`` does. Under data parallelism every rank ranks (as the
    training-course callback does) and rank 0's values are broadcast, so that every rank takes the same
    save/best decision. Returns a function giving the seconds spent validating so far (excluded from the training
    throughput, like the course's).
    """
    spent = [0.0]

    def evaluate(
        eval_dataset: Any = None, ignore_keys: Sequence[str] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        t0 = time.perf_counter()
        model = trainer.model
        was_training = model.training
        model.eval()
        values = {f"{metric_key_prefix}_{k}": float(v) for k, v in validate(model).items()}
        values = _from_rank_zero(values)
        trainer.log(dict(values))  # in eval mode: TRL's log() merges its (empty) eval metrics, not the train ones
        if was_training:
            model.train()
        trainer.control = trainer.callback_handler.on_evaluate(trainer.args, trainer.state, trainer.control, values)
        spent[0] += time.perf_counter() - t0
        return values

    trainer.evaluate = evaluate
    return lambda: spent[0]


def _from_rank_zero(values: dict[str, float]) -> dict[str, float]:
    """Rank 0's metrics on every rank (a no-op in a single process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    box: list[Any] = [values]
    dist.broadcast_object_list(box, src=0)
    return dict(box[0])


def make_selection_callback(checkpoint_steps: int) -> Any:
    """A ``TrainerCallback`` that evaluates at every epoch end and saves a resumable checkpoint every
    ``checkpoint_steps`` steps except at an epoch's end (see the module docstring)."""
    from transformers import TrainerCallback

    class SelectionCallback(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            epoch_end = state.epoch is not None and float(state.epoch).is_integer()
            if state.global_step % checkpoint_steps == 0 and not epoch_end and state.global_step < state.max_steps:
                control.should_save = True

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            control.should_evaluate = True

    return SelectionCallback()


def validation_curve(log_history: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """The evaluations of a run as parallel lists: ``step``, ``epoch`` and one list per metric (prefix dropped)."""
    rows = [r for r in log_history if any(k.startswith("eval_") for k in r)]
    names = sorted({k[len("eval_") :] for r in rows for k in r if k.startswith("eval_")})
    curve: dict[str, list[float]] = {"step": [int(r["step"]) for r in rows], "epoch": [r.get("epoch") for r in rows]}
    for name in names:
        curve[name] = [r.get(f"eval_{name}") for r in rows]
    return curve


def selection_summary(state: Any, metric: str, samples: int, seconds: float) -> dict[str, Any]:
    """What the stage's metrics record about the selection: the metric, the chosen step/epoch/value, the whole
    validation curve and the time it cost. ``selected_step`` is None when no evaluation happened."""
    curve = validation_curve(state.log_history)
    step = state.best_global_step if state.best_metric is not None else None
    epoch = next((e for s, e in zip(curve["step"], curve["epoch"], strict=True) if s == step), None)
    return {
        "metric": metric,
        "samples": samples,
        "selected_step": step,
        "selected_epoch": epoch,
        "selected_value": state.best_metric,
        "last_step": int(state.global_step),
        "curve": curve,
        "seconds": round(seconds, 3),
    }
