"""ABPO's report: the compared methods side by side after their last round, and whether the off-policy estimates
from the prior policy's log order the methods as the world's true CTR does (docs/abpo.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lure.spec.abpo import ANCHOR_SWITCHES
from lure.stats import kendall_tau

#: Estimates whose ranking of the methods is compared with the truth's.
OPE_ESTIMATES = ("ips_ctr", "snips_ctr")


def round_metric_names(round_0: Mapping[str, Any], ks: Sequence[int]) -> list[str]:
    """The per-round chart's metrics: true CTR (world) or the SNIPS estimate (real data), NDCG@K and exposure bias."""
    k = max(ks)
    ctr = ["true_ctr"] if "true_ctr" in round_0 else ["snips_ctr"]
    return [*ctr, f"ndcg_at_{k}", f"prior_exposed_share_at_{k}", f"gini_gap_at_{k}"]


def ablation_table(
    round_0: Mapping[str, Any],
    rounds: Mapping[str, Sequence[Mapping[str, Any]]],
    variants: Mapping[str, Mapping[str, Any]],
    ks: Sequence[int],
) -> pd.DataFrame:
    """One row per method after its last round (the SFT starting point first): the method, its anchor switches
    ('-' where the method has no anchor) and every scalar metric."""
    rows = [{"method": "sft (round 0)", "update": "-", **dict.fromkeys(ANCHOR_SWITCHES, "-"), **_scalars(round_0)}]
    for name, per_round in rounds.items():
        v = variants[name]
        switches = {s: (v[s] if v["method"] == "abpo" else "-") for s in ANCHOR_SWITCHES}
        rows.append({"method": name, "update": v["method"], **switches, **_scalars(per_round[-1])})
    frame = pd.DataFrame(rows)
    return frame.drop(columns=[c for c in ("round",) if c in frame])


def _scalars(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not isinstance(v, dict)}


def ope_agreement(rounds: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per estimate: Kendall's tau between its values and the true CTR over the methods after their last round, and
    its mean absolute error against the true CTR (world only: {} without a truth)."""
    last = [r[-1] for r in rounds.values()]
    if not last or "true_ctr" not in last[0]:
        return {}
    truth = np.array([r["true_ctr"] for r in last])
    out = {}
    for est in OPE_ESTIMATES:
        values = np.array([r[est] for r in last])
        out[est] = {"kendall_tau": kendall_tau(values, truth), "mean_abs_error": float(np.abs(values - truth).mean())}
    return out
