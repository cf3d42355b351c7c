"""What each round's policy is measured by (docs/abpo.md, "Per-round metrics"), on the same held-out test windows:

* accuracy on the held-out next item: HR@K, NDCG@K of the exact top-K (:func:`lure.llm.evaluate.accuracy`, the one
  ranking-metrics module);
* on the world, the simulated online CTR E_x sum_a pi(a|x) r(u,a): the expected reward of serving one item drawn
  from the policy at the serving temperature, estimated from ``ctr_samples`` draws per window of r(u, a) (no click
  noise). It is the quantity the bandit logs' feedback has as its mean (``lure.abpo.logs.world_feedback``), so the
  off-policy estimates below target it exactly;
* exposure bias of the top-K lists: the share of their slots holding an item the prior policy exposed in its log,
  the Gini of the items' counts over the catalogue (popularity concentration) and its gap to the same Gini of the
  true-preference lists (each user's top-K by r(u, i); on real data the held-out next items), and the total
  variation distance between the two item distributions;
* off-policy estimates of the CTR from the prior policy's evaluation log (one logged item per test window):
  IPS and SNIPS with pi the policy's catalogue probability at the serving temperature
  (:func:`lure.estimators.policy_value_ips`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lure.abpo.serve import Recommender
from lure.data.canonical import gini
from lure.estimators import policy_value_ips, policy_value_snips
from lure.llm.evaluate import accuracy, rank_llm


@dataclass(frozen=True)
class EvalContext:
    """The held-out test windows every round is evaluated on, and what is fixed about them."""

    windows: pd.DataFrame  # user_id, history, item_id (the held-out next item)
    prompts: list[list[int]]
    eval_log: pd.DataFrame  # the prior policy's log on these windows (LOG_COLUMNS)
    prior_exposed: np.ndarray  # items the prior policy exposed in round 1's log
    relevance: np.ndarray | None  # the world's r(u, i); None on real data


def item_distribution(lists: np.ndarray, n_items: int) -> np.ndarray:
    """Share of the slots of ``lists`` (-1 = empty) that hold each item."""
    flat = np.asarray(lists, dtype=np.int64).ravel()
    counts = np.bincount(flat[flat >= 0], minlength=n_items).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def true_top_k(relevance: np.ndarray, users: np.ndarray, k: int) -> np.ndarray:
    """(users, k) each user's k items of highest true relevance (ties to the lower id)."""
    rel = np.asarray(relevance)[np.asarray(users, dtype=np.int64)]
    return np.argsort(-rel, axis=1, kind="stable")[:, :k]


def exposure_bias(ranked: np.ndarray, reference: np.ndarray, prior_exposed: np.ndarray, n_items: int, k: int) -> dict:
    """Exposure-bias metrics of the top-``k`` lists against the reference (true-preference) lists."""
    top = np.asarray(ranked, dtype=np.int64)[:, :k]
    shown = np.isin(top, np.asarray(prior_exposed, dtype=np.int64)) & (top >= 0)
    p_rec, p_ref = item_distribution(top, n_items), item_distribution(reference, n_items)
    g_rec, g_ref = gini(p_rec), gini(p_ref)
    return {
        f"prior_exposed_share_at_{k}": float(shown.sum() / max((top >= 0).sum(), 1)),
        f"gini_at_{k}": g_rec,
        f"gini_gap_at_{k}": g_rec - g_ref,
        f"tv_to_truth_at_{k}": float(0.5 * np.abs(p_rec - p_ref).sum()),
    }


def off_policy(policy: Recommender, ctx: EvalContext, temperature: float) -> dict[str, float]:
    """IPS and SNIPS estimates of the policy's CTR from the prior policy's evaluation log."""
    log = ctx.eval_log
    pi = np.exp(policy.log_probs(ctx.prompts, log["action"].to_numpy(), temperature))
    rewards, mu = log["reward"].to_numpy(), log["mu"].to_numpy()
    return {"ips_ctr": policy_value_ips(rewards, pi, mu), "snips_ctr": policy_value_snips(rewards, pi, mu)}


def true_ctr(
    policy: Recommender, ctx: EvalContext, samples: int, temperature: float, generator: torch.Generator
) -> tuple[float, float]:
    """Mean and standard error over windows of the policy's CTR, sum_a pi(a|x) r(u,a) estimated from draws."""
    assert ctx.relevance is not None
    draws = policy.draw(ctx.prompts, samples, temperature, generator)
    users = ctx.windows["user_id"].to_numpy(dtype=np.int64)
    per_window = np.asarray(ctx.relevance)[users[:, None], draws].mean(axis=1)
    return float(per_window.mean()), float(per_window.std(ddof=1) / np.sqrt(len(per_window)))


def round_metrics(
    policy: Recommender,
    ctx: EvalContext,
    ks: Sequence[int],
    temperature: float,
    ctr_samples: int,
    rank_batch: int,
    generator: torch.Generator,
) -> dict[str, float]:
    """Every per-round metric of ``policy`` on the evaluation windows."""
    k = max(ks)
    item_ids = sorted(int(i) for i in policy.titles)
    ranked = rank_llm(
        policy.model,
        policy.tokenizer,
        ctx.prompts,
        item_ids,
        [policy.titles[i] for i in item_ids],
        "exact",
        k,
        k,
        rank_batch,
        progress=False,
        template=policy.template,
    )
    out = {m: float(v.mean()) for m, v in accuracy(ranked, ctx.windows["item_id"].to_numpy(), ks).items()}
    users = ctx.windows["user_id"].to_numpy(dtype=np.int64)
    if ctx.relevance is not None:
        reference = true_top_k(ctx.relevance, users, k)
        out["true_ctr"], out["true_ctr_se"] = true_ctr(policy, ctx, ctr_samples, temperature, generator)
    else:  # real data: the held-out next items stand for the users' preferences
        reference = ctx.windows["item_id"].to_numpy(dtype=np.int64)[:, None]
    out.update(exposure_bias(ranked, reference, ctx.prior_exposed, len(item_ids), k))
    out.update(off_policy(policy, ctx, temperature))
    return out
