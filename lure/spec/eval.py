"""The ``eval`` section: the classic model zoo, offline evaluation with naive, IPS and SNIPS estimates, and the
evaluation of the generative recommenders (``eval.llm``).

Estimators and their definitions: ``lure/estimators.py`` and ``docs/evaluation.md``; the zoo: ``lure/models``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lure.spec.base import STRUCTURAL_KEY, AttentionShape, Section, structural

ZooModel = Literal["random", "popularity", "itemknn", "als", "bpr", "sasrec"]


class ALSParams(Section):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through ``implicit`` on the CPU."""

    factors: int = Field(64, ge=1, le=1024, description="Latent dimension of the user and item factors.")
    iterations: int = Field(15, ge=1, le=500, description="Alternating least-squares sweeps.")
    regularization: float = Field(0.01, ge=0.0, le=100.0, description="L2 penalty lambda on the factors.")
    alpha: float = Field(
        1.0, gt=0.0, le=1000.0, description="Confidence scale: an observed pair has confidence 1 + alpha."
    )


class BPRParams(Section):
    """Bayesian Personalized Ranking (Rendle et al. 2009) through ``implicit`` on the CPU (one thread)."""

    factors: int = Field(64, ge=1, le=1024, description="Latent dimension (implicit adds one item-bias column).")
    iterations: int = Field(50, ge=1, le=2000, description="SGD epochs over the observed pairs.")
    learning_rate: float = Field(0.01, gt=0.0, le=10.0, description="SGD step size.")
    regularization: float = Field(0.01, ge=0.0, le=100.0, description="L2 penalty on the factors.")


class ItemKNNParams(Section):
    """Item-based nearest neighbours: cosine similarity on the binary user x item matrix."""

    neighbors: int = Field(
        100, ge=1, le=10_000, description="Most similar items kept per target item (the rest of its column is 0)."
    )


class SASRecParams(AttentionShape):
    """SASRec (Kang & McAuley 2018) in PyTorch on the CPU, trained with full-softmax cross-entropy."""

    hidden: int = Field(64, ge=1, le=1024, description="Width d of the item/position embeddings and hidden states.")
    layers: int = Field(2, ge=1, le=12, description="Number of causal self-attention blocks.")
    heads: int = Field(1, ge=1, le=16, description="Attention heads per block (must divide hidden).")
    max_len: int = Field(
        50, ge=1, le=1000, description="Length of the sequence window: each user's last max_len training items."
    )
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout rate on embeddings, attention and FFN outputs.")
    epochs: int = Field(20, ge=1, le=10_000, description="Passes over the training users.")
    batch_size: int = Field(128, ge=1, le=65_536, description="Users (sequences) per Adam step.")
    learning_rate: float = Field(0.005, gt=0.0, le=1.0, description="Adam step size (betas 0.9, 0.98).")


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
        400, ge=1, le=10_000_000, description="Test windows evaluated (a seeded sample; null = all)."
    )
    exclude_history: bool = Field(
        False,
        description="Remove the window's history items from the candidates (the paper keeps them). Either way "
        "true_relevance_at_K skips history items and history_share_at_K reports their share of each top-K.",
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
    relevance_include_terminator: bool = Field(
        False,
        description="Eq. 2 item relevance (the MGU/DGU groups) averages over the title's own tokens (false) or also "
        "over the template's terminator (closing quote) and EOS (true); docs/gdrt.md.",
    )
    attribution_include_terminator: bool = Field(
        False,
        description="The feature-ablation attributions score the title's tokens after the first (false) or also the "
        "terminator and EOS (true); task, history and first token always share one target; docs/gdrt.md.",
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


class EvalSpec(Section):
    """Offline evaluation: cut-offs, the classic model zoo and uncertainty."""

    ks: list[int] = Field(
        default_factory=lambda: [5, 10, 20],
        min_length=1,
        max_length=20,
        description="Cut-offs K of Recall@K and NDCG@K (distinct, each in 1..topk).",
    )
    models: list[ZooModel] = Field(
        default_factory=lambda: ["random", "popularity", "itemknn", "als", "bpr"],
        description="Classic recommenders of the baseline zoo (one stage each).",
        json_schema_extra={STRUCTURAL_KEY: True},
    )
    topk: int = Field(
        100, ge=1, le=10_000, description="Length of the stored top-K list per user (must be >= max(ks))."
    )
    bootstrap: int = Field(1000, ge=0, le=100_000, description="Bootstrap resamples over users for CIs (0 = none).")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence level of the intervals.")
    compare_propensities: bool = Field(
        True,
        description="Also fit every other propensity model (its default settings, the same clip) and report the "
        "error ratios of each side by side under summary.by_propensity ('true' only on the world).",
    )
    threads: int = Field(
        1,
        ge=1,
        le=256,
        description="CPU threads of ALS (results do not depend on it) and of SASRec's torch ops (its scores are "
        "reproducible for a given thread count); BPR always runs on one thread so that its SGD is deterministic.",
    )
    als: ALSParams = Field(default_factory=ALSParams, description="Hyperparameters of the 'als' zoo model.")
    bpr: BPRParams = Field(default_factory=BPRParams, description="Hyperparameters of the 'bpr' zoo model.")
    itemknn: ItemKNNParams = Field(
        default_factory=ItemKNNParams, description="Hyperparameters of the 'itemknn' zoo model."
    )
    sasrec: SASRecParams = Field(default_factory=SASRecParams, description="Hyperparameters of the 'sasrec' zoo model.")
    llm: LLMEvalSpec = Field(
        default_factory=LLMEvalSpec, description="Evaluation of the generative (title-generating) recommenders."
    )

    @model_validator(mode="after")
    def _ks(self) -> EvalSpec:
        if any(k < 1 for k in self.ks) or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"ks must be distinct positive integers, got {self.ks}")
        if max(self.ks) > self.topk:
            raise ValueError(f"topk must be >= max(ks), got topk={self.topk} < {max(self.ks)}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models must not repeat, got {self.models}")
        return self
