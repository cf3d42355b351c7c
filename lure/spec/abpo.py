"""The ``abpo`` section: continual updates of the SFT recommender from logged bandit feedback (ABPO, arXiv
2605.18899), with the methods it is compared with as named variants over one code path. Read by ``banditlog``,
``abpo-<variant>`` and ``abpo-report``; docs/abpo.md documents every reading the paper leaves open.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lure.spec.base import Section, structural
from lure.spec.method import BaselineName

#: The update methods (``lure.abpo.update``): SFT on positives, SNIPS-weighted SFT, plain GRPO, ABPO.
UpdateMethod = Literal["sft_positive", "ips_sft", "grpo", "abpo"]
#: The variant switches only ABPO has (GRPO is ABPO with the anchor off).
ANCHOR_SWITCHES = ("anchor_in_baseline", "snips", "tempering", "tempering_at")


class VariantSpec(Section):
    """One compared method: an update method and, for ABPO, its ablation switches."""

    method: UpdateMethod = Field(
        description="'sft_positive' (SFT on the logged positives), 'ips_sft' (each positive weighted by its SNIPS "
        "weight), 'grpo' (G rollouts, a rollout naming the exposed item earns its feedback; the anchor off) or "
        "'abpo' (GRPO with the exposed item as an anchor)."
    )
    anchor_in_baseline: bool = Field(
        True,
        description="ABPO: the group mean and std over the G rollouts and the anchor (true) or the rollouts only "
        "(false, LUFFY's grpo_split).",
    )
    snips: bool = Field(True, description="ABPO: weight the anchor's term by its SNIPS weight (false: weight 1).")
    tempering: Literal["inverse", "direct", "none"] = Field(
        "inverse",
        description="ABPO: a no-response's penalty -lambda*t with t = 1 - c ('inverse': a confident recommendation "
        "met by silence is penalised less), t = c ('direct') or t = 1 ('none'); c = the anchor's self-certainty, "
        "min-max normalised in the batch.",
    )
    tempering_at: Literal["reward", "advantage"] = Field(
        "reward",
        description="ABPO: t scales the no-response anchor's reward (-lambda*t, the issue's reading; the group's std "
        "normalisation cancels that scale when every rollout earns 0) or its normalised advantage (reward -lambda, "
        "advantage times t); docs/abpo.md.",
    )

    @model_validator(mode="after")
    def _switches_fit_method(self) -> VariantSpec:
        fields = type(self).model_fields
        set_switches = [s for s in ANCHOR_SWITCHES if getattr(self, s) != fields[s].default]
        if self.method != "abpo" and set_switches:
            raise ValueError(
                f"{', '.join(set_switches)} switch the anchor, which only method 'abpo' has (method is "
                f"{self.method!r}); leave them at their defaults"
            )
        return self


def _default_variants() -> dict[str, VariantSpec]:
    return {name: VariantSpec(method=name) for name in ("sft_positive", "grpo", "abpo")}


class AbpoSpec(Section):
    """Successive deployments: the prior policy's log updates the SFT recommender, which serves the next round."""

    prior: BaselineName = Field(
        "sft",
        description="Policy that serves round 1's contexts: 'sft' (the SFT recommender, sampled over the catalogue "
        "at serving_temperature) or a zoo model fitted on the window training data (a softmax of its scores at "
        "serving_temperature).",
    )
    serving_temperature: float = Field(
        1.0, gt=0.0, le=10.0, description="Temperature at which every policy samples the item it exposes."
    )
    rounds: int = Field(
        3,
        ge=1,
        le=50,
        description="Successive updates; round r > 1 is served by the policy round r-1 produced (specs/world.yaml: 1, "
        "the default pipeline's time budget; the seed study runs 3).",
    )
    contexts: int = Field(
        128, ge=1, le=10_000_000, description="Training windows served per round (a fresh seeded sample each round)."
    )
    eval_contexts: int = Field(
        150,
        ge=1,
        le=10_000_000,
        description="Test windows on which every round's policy is evaluated (HR/NDCG@K, true CTR, exposure bias, "
        "and the prior policy's evaluation log for IPS/SNIPS).",
    )
    ks: list[int] = Field(default_factory=lambda: [5, 10], min_length=1, description="Cut-offs K of HR@K, NDCG@K.")
    ctr_samples: int = Field(
        4,
        ge=1,
        le=1000,
        description="Items drawn per test window from the policy to estimate its true CTR E_x sum_a pi(a|x) r(u,a) "
        "(world only).",
    )
    horizon: int = Field(
        5,
        ge=1,
        le=1000,
        description="Real data: an exposed item is a positive iff it is among the user's next horizon interactions "
        "after the window's history (the supervised-to-bandit conversion).",
    )
    group_size: int = Field(4, ge=2, le=256, description="Rollouts G sampled per context (GRPO and ABPO).")
    batch_size: int = Field(16, ge=1, le=4096, description="Logged contexts per gradient step.")
    epochs: int = Field(1, ge=1, le=100, description="Passes over a round's log.")
    learning_rate: float = Field(
        1e-3,
        gt=0.0,
        le=1.0,
        description="AdamW learning rate (constant). 1e-3 moves the tiny CPU model measurably in one round of 8 "
        "steps (at 1e-4 GRPO's round left every metric unchanged); lower it for a pretrained model.",
    )
    rollout_temperature: float = Field(1.0, gt=0.0, le=10.0, description="Temperature of the sampled rollouts.")
    r_positive: float = Field(1.0, gt=0.0, le=100.0, description="ABPO: the anchor's reward r+ for a positive.")
    penalty: float = Field(
        1.0, ge=0.0, le=100.0, description="ABPO: lambda, the anchor's no-response reward is -lambda * t."
    )
    w_max: float = Field(5.0, ge=1.0, le=1e6, description="Clip of the SNIPS weights (after the normalisation).")
    clip: float = Field(0.2, gt=0.0, le=10.0, description="epsilon of the clipped objective.")
    kl_beta: float = Field(0.0, ge=0.0, le=100.0, description="Weight of the k3 KL to the SFT model (0 = none).")
    variants: dict[str, VariantSpec] = structural(
        default_factory=_default_variants,
        keys_only=True,
        description="Compared methods by name (one abpo-<name> stage each), e.g. {abpo_no_snips: {method: abpo, "
        "snips: false}} for an ablation. A new name is a new stage (lure exp run); a method's switch is a parameter "
        "of its stage (dvc exp run -S abpo.variants.abpo.tempering=direct).",
    )

    @model_validator(mode="after")
    def _variants_named(self) -> AbpoSpec:
        if not self.variants:
            raise ValueError("abpo.variants is empty: name at least one method")
        bad = [n for n in self.variants if not n.replace("_", "").isalnum() or not n.islower()]
        if bad:
            raise ValueError(f"abpo.variants names {bad} must be lower-case letters, digits and '_' (stage names)")
        return self
