"""The training methods of the generative recommenders, one definition each (``method.name`` and ``baselines``).

A method is TRL's trainer plus what makes it different: GDRT is ``GDRTTrainer`` (a subclass overriding one loss,
Eq. 5) fed with the token groups of its own ``gdrt-groups`` stage; SFT is ``SFTTrainer`` as is. Each definition
says its spec class (a member of the ``method`` union), the spec fields its stages read, how to set up its trainer
(:meth:`MethodDefinition.build`) and the stages it contributes. ``stages/train.py`` has no ``if`` on a method.

A plugin adds a method the same way: ``METHODS.add(MethodDefinition(...))`` in a module named in ``spec.plugins``
(docs/pipeline.md, "Adding a method as a plugin").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lure.layout import GDRT_CENTERS, GDRT_GROUPS, GDRT_TOKEN_GROUPS, LLM_BASE, PREPARED, llm_model_dir, template_file
from lure.registry import METHODS, Definition, Headline, StageDef
from lure.spec.method import GDRTMethod, SFTMethod

#: Config of a data-parallel launch (``train.processes`` > 1), kept in the repository.
ACCELERATE_CONFIG = "accelerate/multi_gpu.yaml"


def train_files(spec: Any) -> tuple[str, ...]:
    """Files a training stage reads besides its Python code: the prompt template it renders."""
    return (template_file(spec.model.template),)


@dataclass
class TrainerSetup:
    """What a method changes in fine-tuning: the trainer class (None = TRL's SFTTrainer), its extra keyword
    arguments, and the values besides spec/data that identify a run (for resumable checkpoints)."""

    trainer_cls: Any = None
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)
    key_parts: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class MethodDefinition(Definition):
    """A training method. ``build(spec, rows, windows)`` prepares the rows in place and returns a
    :class:`TrainerSetup`; ``needs(spec)`` names other methods whose trained model its stages read."""

    needs: Callable[[Any], tuple[str, ...]] = lambda spec: ()


def train_launcher(processes: int) -> tuple[str, ...]:
    """``python`` for one process; ``accelerate launch`` (data-parallel, config in the repository) for several."""
    if processes == 1:
        return ("python",)
    return ("accelerate", "launch", "--config_file", ACCELERATE_CONFIG, "--num_processes", str(processes))


def train_stage(spec: Any, method: str, *, params: Sequence[str] = (), deps: Sequence[str] = ()) -> StageDef:
    """Stage ``train-<method>``: fine-tune the base model on the training windows (``stages/train.py``)."""
    return StageDef(
        name=f"train-{method}",
        module="stages.train",
        args=(method,),
        launcher=train_launcher(spec.train.processes),
        params=("seed", "model", "train", *params),
        code=train_files(spec),
        deps=(PREPARED, LLM_BASE, *deps),
        outs=(llm_model_dir(method),),
        headline=(Headline("final_loss", "final_loss", "lower"), Headline("train_seconds", "train_seconds", "lower")),
    )


# ---------------------------------------------------------------- SFT


def _sft_setup(spec: Any, rows: list[dict[str, Any]], windows: Any) -> TrainerSetup:
    return TrainerSetup()


METHODS.add(
    MethodDefinition(
        "sft",
        _sft_setup,
        spec=SFTMethod,
        stages=lambda spec: [train_stage(spec, "sft")],
        description="supervised fine-tuning on the next item's title (GDRT Eq. 1)",
    )
)


# ---------------------------------------------------------------- GDRT


def _gdrt_relevance_from(spec: Any) -> str:
    return llm_model_dir("sft") if spec.method.relevance_model == "sft" else LLM_BASE


def _gdrt_stages(spec: Any) -> list[StageDef]:
    groups = StageDef(
        name="gdrt-groups",
        module="stages.gdrt_groups",
        params=("seed", "model", "train.max_samples", "method.groups", "method.grouping", "method.relevance_model"),
        code=train_files(spec),
        deps=(PREPARED, LLM_BASE, _gdrt_relevance_from(spec)),
        outs=(GDRT_GROUPS,),
    )
    return [groups, train_stage(spec, "gdrt", params=("method.tau",), deps=(GDRT_GROUPS,))]


def _gdrt_setup(spec: Any, rows: list[dict[str, Any]], windows: Any) -> TrainerSetup:
    """Attach each row's token groups (from ``gdrt-groups``) and train with ``GDRTTrainer`` at ``method.tau``."""
    import numpy as np
    import pandas as pd

    from lure.io import fingerprint, read_json
    from lure.train.gdrt import TOKEN_GROUPS_COLUMN, GDRTTrainer, token_groups_column

    groups = pd.read_parquet(GDRT_TOKEN_GROUPS)
    centers = read_json(GDRT_CENTERS)["centers"]
    if len(groups) != len(rows) or not np.array_equal(groups["item_id"].to_numpy(), windows["item_id"]):
        raise ValueError(f"{GDRT_TOKEN_GROUPS} does not match the training windows; re-run gdrt-groups")
    for row, g in zip(rows, groups["groups"], strict=True):
        row[TOKEN_GROUPS_COLUMN] = token_groups_column(row["labels"], g)
    return TrainerSetup(
        trainer_cls=GDRTTrainer,
        trainer_kwargs={"n_groups": len(centers), "tau": spec.method.tau},
        key_parts=[spec.method.tau, fingerprint(Path(GDRT_GROUPS))],
    )


METHODS.add(
    MethodDefinition(
        "gdrt",
        _gdrt_setup,
        spec=GDRTMethod,
        reads=("method.tau", "method.groups", "method.grouping", "method.relevance_model"),
        stages=_gdrt_stages,
        needs=lambda spec: ("sft",) if spec.method.relevance_model == "sft" else (),
        description="group-DRO over target-token groups (GDRT Eq. 5)",
    )
)
