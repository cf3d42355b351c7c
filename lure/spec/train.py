"""The ``train`` section: fine-tuning of the generative recommenders (every training method uses it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lure.spec.base import Section, structural

#: Validation metrics a training run can be selected by (``train.select_metric``): K <= 10, the beam of the ranking.
SelectMetric = Literal["ndcg_at_5", "ndcg_at_10", "hit_at_5", "hit_at_10"]
#: Training precision of every trainer (``lure.train.finetune.mixed_precision``): 'auto' = bf16 on a GPU that
#: supports it, float32 on the CPU.
Precision = Literal["auto", "float32", "bf16", "fp16"]


class TrainSpec(Section):
    """Fine-tuning through TRL's SFTTrainer (SFT) or its GDRT subclass; the same settings for every method."""

    epochs: float = Field(
        2.0,
        gt=0.0,
        le=100.0,
        description="Passes over the training windows (GDRT: 5; the CPU default 2, which the tiny model needs to "
        "beat popularity, docs/gdrt.md).",
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Rows per device per step.")
    grad_accum: int = Field(1, ge=1, le=1024, description="Gradient-accumulation steps.")
    learning_rate: float = Field(3e-3, gt=0.0, le=1.0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="AdamW weight decay.")
    warmup: float = Field(0.05, ge=0.0, lt=1.0, description="Warm-up as a fraction of the training steps.")
    scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="Learning-rate schedule.")
    max_samples: int | None = Field(
        4_000,
        ge=1,
        le=100_000_000,
        description="Training windows used (a seeded sample, the same for every method; null = all). The CPU "
        "default trains on a sample to stay within the pipeline's time budget.",
    )
    precision: Precision = Field(
        "auto", description="Mixed precision: 'auto' = bf16 on a GPU that supports it, float32 on the CPU."
    )
    threads: int | None = Field(
        None, ge=1, le=256, description="torch CPU threads (null = the cores this process may run on)."
    )
    checkpoint_steps: int = Field(
        200, ge=1, le=1_000_000, description="Steps between resumable checkpoints (a crashed stage resumes there)."
    )
    processes: int = structural(
        1,
        ge=1,
        le=64,
        description="Training processes: 1 = plain python; more = data-parallel through `accelerate launch` with "
        "accelerate/multi_gpu.yaml (one process per GPU).",
    )
    course_points: int = Field(
        5, ge=0, le=100, description="Points during training where top-1 recommendations are recorded (GDRT Figs 4/9)."
    )
    course_samples: int = Field(100, ge=1, le=100_000, description="Validation windows ranked at each course point.")
    select_best: bool = Field(
        True,
        description="Keep the checkpoint with the best validation select_metric over the epochs and save it as the "
        "stage's model (GDRT §4.1.3: the epoch with the best validation NDCG@5); false = the last one. Evaluated at "
        "every epoch end and at the end of training (docs/gdrt.md, 'Checkpoint selection').",
    )
    select_metric: SelectMetric = Field(
        "ndcg_at_5", description="Validation metric of select_best (constrained beam search, beam 10, as the paper)."
    )
    select_samples: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Validation windows ranked at each epoch end for select_best (the same seeded sample as the "
        "course when equal to course_samples; cost grows linearly with it).",
    )
