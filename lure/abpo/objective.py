"""ABPO's objective (arXiv 2605.18899; docs/abpo.md): GRPO's group-relative advantages with the logged exposure as a
fixed anchor in each group, self-normalised IPS on the anchor, and self-certainty tempering of no-response penalties.

The paper publishes no equation (only its abstract-level description is public), so every formula here is our
reading, written out and switchable in the ``abpo`` spec section:

* **Group advantages** (GRPO, Shao et al. 2024): a group is G sampled rollouts of one context plus, with the anchor
  on, the logged exposed item as member G+1. A_j = (R_j - mean(R)) / (std(R) + eps), mean and (population) standard
  deviation over all G+1 members; ``anchor_in_baseline`` False takes them over the G rollouts only (LUFFY's
  ``grpo_split``), and the anchor's advantage uses the same statistics. Where the statistics' members all earned
  the same reward (std 0: with the anchor out of the baseline, every group whose rollouts all missed the exposed
  item), A = R - mean: dividing by epsilon would blow the anchor's advantage up to -lambda * t / 1e-6.
* **Anchor reward**: r+ for a positive; -lambda * t for a no-response, t the tempering below (1 without tempering)
  (``tempering_at: reward``, the issue's reading). Under the group's std normalisation the scale of the anchor's
  reward cancels whenever the G rollouts all earn 0 (the common case: A_anchor = -sqrt(G) for any -lambda * t < 0),
  so t then acts only through its sign; ``tempering_at: advantage`` gives the no-response anchor reward -lambda and
  multiplies its normalised advantage by t instead (:func:`temper_anchor_advantage`).
* **SNIPS on the anchor**: rho = pi_theta(a|x) / mu(a|x) per context, w = rho / mean_batch(rho), clipped at w_max,
  held constant in the gradient (computed from detached log-probabilities), for both feedback types.
* **Self-certainty** (Zhao et al. 2025, "Learning to reason without external rewards"): per anchor token,
  KL(U || p_theta) = logsumexp(z) - mean(z) - log V over the vocabulary logits z; c = its mean over the anchor's
  tokens, then min-max normalised to [0, 1] within the batch (all equal: 0.5, no information either way).
  ``tempering``: t = 1 - c ('inverse', the default: a confident recommendation met by silence is penalised less --
  the model's confidence is read as evidence that the no-response is not a rejection), t = c ('direct'), or t = 1
  ('none').
* **Clipped objective** (PPO/GRPO): per token, -min(r A, clip(r, 1 - eps, 1 + eps) A) with r = pi_theta / pi_old,
  averaged over a sequence's tokens, then over the members; the anchor's term is multiplied by w. An optional KL to
  a reference (the k3 estimator exp(q - p) - (q - p) - 1 with p, q the policy's and the reference's token
  log-probabilities) is added for the sampled rollouts, weighted by beta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Tempering = Literal["inverse", "direct", "none"]


@dataclass(frozen=True)
class GroupAdvantages:
    """Advantages of the G rollouts (contexts x G) and of the anchor (contexts; zeros without an anchor)."""

    rollouts: torch.Tensor
    anchor: torch.Tensor


def group_advantages(
    rewards: torch.Tensor,
    anchor_rewards: torch.Tensor | None,
    anchor_in_baseline: bool = True,
    eps: float = 1e-6,
) -> GroupAdvantages:
    """GRPO's group-normalised advantages, with the anchor as member G+1 when ``anchor_rewards`` is given.

    ``rewards``: (contexts, G). ``anchor_rewards``: (contexts,) or None (plain GRPO)."""
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be (contexts, G), got shape {tuple(rewards.shape)}")
    if anchor_rewards is None:
        members = rewards
    else:
        if anchor_rewards.shape != rewards.shape[:1]:
            raise ValueError(f"anchor_rewards must be ({rewards.shape[0]},), got {tuple(anchor_rewards.shape)}")
        members = torch.cat([rewards, anchor_rewards[:, None]], dim=1)
    stats = members if anchor_in_baseline else rewards
    mean = stats.mean(dim=1, keepdim=True)
    std = stats.std(dim=1, unbiased=False, keepdim=True)
    # a baseline without spread (every rollout earned the same) does not rescale: A = R - mean, not (R - mean) / eps
    advantages = (members - mean) / torch.where(std > eps, std + eps, torch.ones_like(std))
    if anchor_rewards is None:
        return GroupAdvantages(advantages, torch.zeros(rewards.shape[0], dtype=rewards.dtype))
    return GroupAdvantages(advantages[:, :-1], advantages[:, -1])


def snips_weights(log_pi: torch.Tensor, log_mu: torch.Tensor, w_max: float) -> torch.Tensor:
    """Self-normalised importance weights of the anchors: rho / mean(rho), clipped at ``w_max``, no gradient."""
    if w_max <= 0:
        raise ValueError(f"w_max must be > 0, got {w_max}")
    rho = torch.exp(log_pi.detach() - log_mu.detach())
    return (rho / rho.mean()).clamp(max=w_max)


def self_certainty(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each sequence's masked tokens of KL(U || softmax(z)) = logsumexp(z) - mean(z) - log V.

    ``logits``: (sequences, tokens, V); ``mask``: (sequences, tokens), True on the tokens scored."""
    z = logits.detach().float()
    per_token = torch.logsumexp(z, dim=-1) - z.mean(dim=-1) - math.log(z.shape[-1])
    m = mask.to(per_token.dtype)
    count = m.sum(dim=1)
    if bool((count == 0).any()):
        raise ValueError("a sequence has no scored token: self-certainty is undefined")
    return (per_token * m).sum(dim=1) / count


def tempering(certainty: torch.Tensor, mode: Tempering) -> torch.Tensor:
    """t per anchor: certainty min-max normalised within the batch to c in [0, 1] (0.5 when all are equal), then
    1 - c ('inverse'), c ('direct') or 1 ('none')."""
    if mode == "none":
        return torch.ones_like(certainty)
    low, high = certainty.min(), certainty.max()
    c = torch.full_like(certainty, 0.5) if bool(high == low) else (certainty - low) / (high - low)
    if mode == "inverse":
        return 1.0 - c
    if mode == "direct":
        return c
    raise ValueError(f"unknown tempering {mode!r}; expected 'inverse', 'direct' or 'none'")


def anchor_rewards(positive: torch.Tensor, t: torch.Tensor, r_positive: float, penalty: float) -> torch.Tensor:
    """r+ for a positive, -lambda * t for a no-response."""
    return torch.where(positive.bool(), torch.full_like(t, r_positive), -penalty * t)


def temper_anchor_advantage(advantage: torch.Tensor, positive: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``tempering_at: advantage``: a no-response anchor's normalised advantage multiplied by t (positives kept)."""
    return torch.where(positive.bool(), advantage, advantage * t)


def clipped_token_loss(
    logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float
) -> torch.Tensor:
    """Per sequence: the mean over its masked tokens of -min(r A, clip(r, 1 - clip, 1 + clip) A), r = exp(logp -
    logp_old). ``logp``, ``logp_old``, ``mask``: (sequences, tokens); ``advantages``: (sequences,)."""
    ratio = torch.exp(logp - logp_old.detach())
    a = advantages[:, None]
    per_token = -torch.minimum(ratio * a, ratio.clamp(1.0 - clip, 1.0 + clip) * a)
    m = mask.to(per_token.dtype)
    return (per_token * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def kl_k3(logp: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per sequence: the mean over masked tokens of exp(q - p) - (q - p) - 1 (p policy, q reference), >= 0."""
    d = logp_ref.detach() - logp
    per_token = torch.exp(d) - d - 1.0
    m = mask.to(per_token.dtype)
    return (per_token * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
