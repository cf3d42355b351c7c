"""One update step of every method ABPO is compared with, through one code path (docs/abpo.md), so that the
ablations differ only in the switches they name:

* ``sft_positive``: maximise log pi(a|x) of the exposed item on the positives (no rollouts);
* ``ips_sft``: the same, each positive weighted by its SNIPS weight (rho / mean rho over the batch's positives);
* ``grpo``: G rollouts per context from the current policy; a rollout that names the exposed item earns that item's
  feedback (1 positive, 0 no response), any other 0; group-normalised advantages; the clipped objective;
* ``abpo``: GRPO plus the exposed item as the anchor (member G+1) with reward r+ or -lambda * t, its term weighted
  by its SNIPS weight, t from its self-certainty (``lure.abpo.objective``).

A step takes one batch of logged contexts, samples the rollouts with the policy as it is (pi_old), and takes one
gradient step; pi_old is then the same parameters, so the ratio r is 1 in value and the clip is inactive (GRPO with
one update per batch, as TRL's default ``num_iterations`` 1), and the gradient is that of A * log pi.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from lure.abpo.catalogue import catalogue_logprobs, sample_items
from lure.abpo.objective import (
    GroupAdvantages,
    Tempering,
    anchor_rewards,
    clipped_token_loss,
    group_advantages,
    kl_k3,
    self_certainty,
    snips_weights,
    temper_anchor_advantage,
    tempering,
)
from lure.llm.trie import TokenTrie

Method = Literal["sft_positive", "ips_sft", "grpo", "abpo"]
TemperingAt = Literal["reward", "advantage"]


@dataclass(frozen=True)
class UpdateSettings:
    """The switches of one method (the ``abpo`` spec section's, resolved per method by :func:`method_settings`)."""

    method: Method
    group_size: int = 4
    anchor: bool = True
    anchor_in_baseline: bool = True
    snips: bool = True
    tempering: Tempering = "inverse"
    tempering_at: TemperingAt = "reward"
    r_positive: float = 1.0
    penalty: float = 1.0
    w_max: float = 5.0
    clip: float = 0.2
    kl_beta: float = 0.0
    rollout_temperature: float = 1.0


@dataclass(frozen=True)
class LoggedBatch:
    """Logged contexts: prompt token ids, the exposed item's completion tokens and id, log mu, the reward."""

    prompts: Sequence[Sequence[int]]
    anchors: Sequence[Sequence[int]]
    actions: torch.Tensor
    log_mu: torch.Tensor
    rewards: torch.Tensor


def _sequence_logp(token_logp: torch.Tensor) -> torch.Tensor:
    return token_logp.sum(dim=1)


def step_loss(
    model: Any,
    ref: Any | None,
    trie: TokenTrie,
    batch: LoggedBatch,
    settings: UpdateSettings,
    pad_id: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch under ``settings`` and what it saw (mean reward, weights, advantages)."""
    n = len(batch.prompts)
    positive = batch.rewards > 0
    stats: dict[str, float] = {"contexts": float(n), "positives": float(positive.sum())}
    if settings.method in ("sft_positive", "ips_sft"):
        anchor_logp, anchor_mask, _ = catalogue_logprobs(model, trie, batch.prompts, batch.anchors, pad_id)
        log_pi = _sequence_logp(anchor_logp)
        if not bool(positive.any()):
            return log_pi.sum() * 0.0, stats | {"loss": 0.0}
        per_token = anchor_logp.sum(dim=1) / anchor_mask.sum(dim=1)
        weight = torch.ones(n)
        if settings.method == "ips_sft":
            weight = torch.zeros(n)
            weight[positive] = snips_weights(log_pi[positive], batch.log_mu[positive], settings.w_max)
        loss = -(weight * per_token)[positive].mean()
        return loss, stats | {"loss": float(loss.detach()), "weight_max": float(weight.max())}

    model.eval()
    tokens: list[list[int]] = []
    items: list[int] = []
    for prompt in batch.prompts:
        t, i = sample_items(model, trie, prompt, settings.group_size, settings.rollout_temperature, generator)
        tokens += t
        items += i
    model.train()
    g = settings.group_size
    rollout_items = torch.tensor(items).view(n, g)
    named = rollout_items == batch.actions[:, None]
    rewards = torch.where(named, batch.rewards[:, None].float(), torch.zeros(n, g))
    stats |= {"rollouts_naming_exposed": float(named.float().mean())}
    # one forward pass over every member: the G rollouts of each context, then (ABPO) the anchors
    prompts = [p for p in batch.prompts for _ in range(g)]
    members, completions = list(prompts), list(tokens)
    if settings.anchor:
        members += list(batch.prompts)
        completions += list(batch.anchors)
    logp, mask, logits = catalogue_logprobs(model, trie, members, completions, pad_id)
    roll_logp, roll_mask = logp[: n * g], mask[: n * g]
    anchor_r = None
    weight = torch.ones(n)
    if settings.anchor:
        anchor_logp, anchor_mask = logp[n * g :], mask[n * g :]
        t = tempering(self_certainty(logits[n * g :], anchor_mask), settings.tempering)
        at_reward = settings.tempering_at == "reward"
        anchor_r = anchor_rewards(
            positive, t if at_reward else torch.ones_like(t), settings.r_positive, settings.penalty
        )
        if settings.snips:
            weight = snips_weights(_sequence_logp(anchor_logp), batch.log_mu, settings.w_max)
        stats |= {"anchor_weight_max": float(weight.max()), "anchor_reward_mean": float(anchor_r.mean())}
    adv = group_advantages(rewards, anchor_r, settings.anchor_in_baseline)
    if settings.anchor and settings.tempering_at == "advantage":
        adv = GroupAdvantages(adv.rollouts, temper_anchor_advantage(adv.anchor, positive, t))

    roll_loss = clipped_token_loss(
        roll_logp, roll_logp.detach(), adv.rollouts.reshape(-1), roll_mask, settings.clip
    ).view(n, g)
    total = roll_loss.sum(dim=1)
    members_per_group = g
    if settings.anchor:
        anchor_loss = clipped_token_loss(anchor_logp, anchor_logp.detach(), adv.anchor, anchor_mask, settings.clip)
        total = total + weight * anchor_loss
        members_per_group += 1
    loss = (total / members_per_group).mean()
    if settings.kl_beta > 0 and ref is not None:
        with torch.no_grad():
            ref_logp, _, _ = catalogue_logprobs(ref, trie, prompts, tokens, pad_id)
        loss = loss + settings.kl_beta * kl_k3(roll_logp, ref_logp, roll_mask).mean()
    return loss, stats | {"loss": float(loss.detach()), "advantage_abs_mean": float(adv.rollouts.abs().mean())}


def method_settings(variant: Any, section: Any) -> UpdateSettings:
    """The settings of one compared method: its ``abpo.variants`` entry (method and, for ABPO, its switches) and the
    ``abpo`` section's shared hyperparameters. GRPO is ABPO with the anchor off (no SNIPS, no tempering)."""
    abpo = variant.method == "abpo"
    return UpdateSettings(
        method=variant.method,
        group_size=section.group_size,
        anchor=abpo,
        anchor_in_baseline=variant.anchor_in_baseline,
        snips=abpo and variant.snips,
        tempering=variant.tempering if abpo else "none",
        tempering_at=variant.tempering_at,
        r_positive=section.r_positive,
        penalty=section.penalty,
        w_max=section.w_max,
        clip=section.clip,
        kl_beta=section.kl_beta,
        rollout_temperature=section.rollout_temperature,
    )
