"""The LLM-recommender sections: which causal LM (``model``), how it is fine-tuned (``train``) and how its
generated titles are evaluated (``eval.llm``). Code: ``lure/llm``, ``lure/train``; docs: ``docs/llm.md``,
``docs/gdrt.md``.

The CPU default is a tiny Llama built from a config with a BPE tokenizer trained on the catalogue; a GPU spec names
any Hugging Face causal LM (``model.init: pretrained``, ``model.name_or_path``) and usually LoRA (``model.lora``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from lure.spec.base import AttentionShape, Section, structural


class TinyModelSpec(AttentionShape):
    """Size of the Llama built from a config when ``model.init`` is 'tiny' (the CPU default)."""

    hidden: int = Field(128, ge=8, le=4096, description="Hidden size (must be a multiple of heads).")
    layers: int = Field(2, ge=1, le=48, description="Decoder layers.")
    heads: int = Field(4, ge=1, le=64, description="Attention heads.")
    vocab_size: int = Field(
        2000, ge=300, le=65_536, description="Upper bound of the byte-level BPE vocabulary trained on the catalogue."
    )


class LoraSpec(Section):
    """LoRA adapters through peft (only the adapters train; the base stays frozen)."""

    r: int = Field(8, ge=1, le=1024, description="Rank of the adapters.")
    alpha: int = Field(16, ge=1, le=4096, description="lora_alpha: the update is scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="Names of the linear layers that get adapters (Llama-style names by default).",
    )


class ModelSpec(Section):
    """The causal LM behind the generative recommenders (SFT, GDRT, and later RecLAIF and ABPO)."""

    init: Literal["tiny", "pretrained"] = Field(
        "tiny",
        description="'tiny': a small Llama from a config plus a BPE tokenizer trained on the catalogue (CPU); "
        "'pretrained': any Hugging Face causal LM named by name_or_path (hub id or local folder).",
    )
    name_or_path: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="Hub id or local folder of the pretrained model, e.g. meta-llama/Llama-3.2-3B (init 'pretrained').",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights' dtype when loading a pretrained model ('auto' = the checkpoint's)."
    )
    lora: LoraSpec | None = Field(None, description="LoRA adapters (null = full fine-tuning).")
    tiny: TinyModelSpec = Field(default_factory=TinyModelSpec, description="Size of the tiny model.")
    template: str = Field(
        "next_item_compact",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Prompt template prompts/<template>.j2 (segments task, history, response). 'next_item' is the "
        "GDRT paper's instruction prompt (the GDRT specs use it); 'next_item_compact' (default) has a short task "
        "text, so the tiny CPU model spends its context and training steps on the history (docs/llm.md).",
    )
    max_length: int = Field(
        512,
        ge=32,
        le=32_768,
        description="Longest prompt + title in tokens; the oldest history items are dropped until a row fits.",
    )

    @field_validator("template")
    @classmethod
    def _template_exists(cls, name: str) -> str:
        from lure.paths import prompts_dir, template_names

        if not (prompts_dir() / f"{name}.j2").is_file():
            known = template_names()
            raise ValueError(f"no file prompts/{name}.j2 (known templates: {', '.join(known)})")
        return name

    @model_validator(mode="after")
    def _source(self) -> ModelSpec:
        if self.init == "pretrained" and not self.name_or_path:
            raise ValueError("init 'pretrained' needs name_or_path (a hub id or a local folder)")
        if self.init == "tiny" and self.name_or_path:
            raise ValueError("name_or_path is only used with init 'pretrained'; set init: pretrained or drop it")
        return self


class TrainSpec(Section):
    """Fine-tuning through TRL's SFTTrainer (SFT) or its GDRT subclass; the same settings for every method."""

    epochs: float = Field(
        2.0, gt=0.0, le=100.0,
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
        16_000,
        ge=1,
        le=100_000_000,
        description="Training windows used (a seeded sample, the same for every method; null = all). The CPU "
        "default trains on a sample to stay within the pipeline's time budget.",
    )
    precision: Literal["auto", "float32", "bf16", "fp16"] = Field(
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
    course_samples: int = Field(
        100, ge=1, le=100_000, description="Validation windows ranked at each course point."
    )


class LLMEvalSpec(Section):
    """Evaluation of generated titles on the window test split (GDRT §4.1.3-4.1.4)."""

    decoding: Literal["exact", "beam"] = Field(
        "exact",
        description="'exact': the true top-K of the catalogue by sequence log-probability (title prefixes that "
        "provably cannot reach it are skipped); 'beam': constrained beam search over the title trie (for "
        "catalogues too large to score).",
    )
    beam: int = Field(10, ge=1, le=1000, description="Beams of constrained beam search (at least max(ks)).")
    ks: list[int] = Field(default_factory=lambda: [5, 10], min_length=1, description="Cut-offs of HIT@K and NDCG@K.")
    max_samples: int | None = Field(
        500, ge=1, le=10_000_000, description="Test windows evaluated (a seeded sample; null = all)."
    )
    exclude_history: bool = Field(
        False, description="Remove the window's history items from the candidates (the paper keeps them)."
    )
    fairness_k: int = Field(5, ge=1, le=100, description="K of MGU@K and DGU@K.")
    fairness_groups: int = Field(5, ge=2, le=50, description="Item groups by Eq. 2 relevance (the paper: 5).")
    fairness_average: Literal["pooled", "user"] = Field(
        "pooled", description="Shares pooled over all users (IFairLRS) or per user then averaged; docs/gdrt.md."
    )
    fairness_scorer: Literal["base", "sft"] = structural(
        "sft",
        description="Model that scores Eq. 2 item relevance for the fairness groups (one scorer for every method).",
    )
    attribution_samples: int = Field(
        100, ge=1, le=100_000, description="Test windows of the feature-ablation attribution (GDRT Figs 2/7)."
    )
    rank_batch: int = Field(256, ge=1, le=65_536, description="Titles scored per forward pass in exact ranking.")
    bootstrap: int = Field(1000, ge=0, le=100_000, description="Paired bootstrap resamples for CIs (0 = none).")

    @model_validator(mode="after")
    def _ks(self) -> LLMEvalSpec:
        if len(set(self.ks)) != len(self.ks):
            raise ValueError(f"ks must be distinct, got {self.ks}")
        if self.decoding == "beam" and self.beam < max(self.ks):
            raise ValueError(f"beam ({self.beam}) must be >= max(ks) ({max(self.ks)}) to fill the top-K")
        return self
