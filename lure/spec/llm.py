"""The ``model`` section: the causal LM behind the generative recommenders (fine-tuning: ``lure/spec/train.py``,
evaluation: ``eval.llm`` in ``lure/spec/eval.py``). Code: ``lure/llm``; docs: ``docs/llm.md``, ``docs/gdrt.md``.

The CPU default is a tiny Llama built from a config with a BPE tokenizer trained on the catalogue; a GPU spec names
any Hugging Face causal LM (``model.init: pretrained``, ``model.name_or_path``) and usually LoRA (``model.lora``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from lure.spec.base import AttentionShape, Section


class TinyModelSpec(AttentionShape):
    """Size of the Llama built from a config when ``model.init`` is 'tiny' (the CPU default)."""

    hidden: int = Field(128, ge=8, le=4096, description="Hidden size (must be a multiple of heads).")
    layers: int = Field(2, ge=1, le=48, description="Decoder layers.")
    heads: int = Field(4, ge=1, le=64, description="Attention heads.")
    vocab_size: int = Field(
        2000, ge=300, le=65_536, description="Upper bound of the byte-level BPE vocabulary trained on the catalogue."
    )


class PretrainSpec(Section):
    """Pretraining of the tiny model on a generated corpus that carries the world's language prior (``llm-base``,
    ``model.init: tiny`` only: a pretrained Hugging Face model already has its prior). docs/llm.md, "Pretraining"."""

    steps: int = Field(
        300,
        ge=0,
        le=1_000_000,
        description="Optimiser steps, each on batch_size freshly drawn corpus rows (0 = no pretraining: the random "
        "initialisation, as before issue 13).",
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Corpus rows per step.")
    learning_rate: float = Field(
        3e-3, gt=0.0, le=1.0, description="Peak AdamW learning rate (5 % linear warm-up, then cosine decay to 0)."
    )
    prior_strength: float = Field(
        1.5,
        ge=0.0,
        le=20.0,
        description="Corpus strength s: titles are drawn with probability softmax(s * rho_i), rho_i the world's "
        "title prior (truth/items.parquet); 0 (or a real dataset, which has no prior) = every title equally often.",
    )
    masked_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Share of corpus rows that are the template's history-masked prompt (the 'N/A' placeholder of "
        "Eq. 2/3) followed by a drawn title; the others are catalogue lists (the template's history block with 2 "
        "to 5 drawn titles).",
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
    pretrain: PretrainSpec = Field(
        default_factory=PretrainSpec,
        description="Pretraining of the tiny model on a corpus weighted by the title prior (init 'tiny' only).",
    )
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
        from lure.layout import is_judge_template, prompts_dir, recommender_template_names

        known = ", ".join(recommender_template_names())
        if is_judge_template(name):
            raise ValueError(f"prompts/{name}.j2 is a judge prompt, not a next-item prompt (known templates: {known})")
        if not (prompts_dir() / f"{name}.j2").is_file():
            raise ValueError(f"no file prompts/{name}.j2 (known templates: {known})")
        return name

    @model_validator(mode="after")
    def _source(self) -> ModelSpec:
        if self.init == "pretrained" and not self.name_or_path:
            raise ValueError("init 'pretrained' needs name_or_path (a hub id or a local folder)")
        if self.init == "tiny" and self.name_or_path:
            raise ValueError("name_or_path is only used with init 'pretrained'; set init: pretrained or drop it")
        return self
