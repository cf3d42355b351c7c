"""LURE's ablations (§7) as DVC experiments, and the one table that lines them up.

Each ablation is a set of ``-S`` overrides of the active spec (:data:`ABLATIONS`), run as ``lure exp run -n
judge-<name> -S …``; :func:`ablation_table` reads each experiment's metrics from its git revision
(:func:`lure.experiments.metrics_at`) and writes one row per ablation: the judge's accuracy and label rate, each
recommender's RJS, how RJS ranks the recommenders against their true recall (world), and the Calib-Link fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

#: LURE §7: (i) exposure weights, (ii) evidence checking, (iii) single vs several judges, (v) matching criteria and
#: temperature. Name -> overrides (empty: the active spec as it is).
ABLATIONS: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "no_ips": ("judge.metrics.ips=false",),
    "no_evidence_check": ("judge.evidence_check=false",),
    "judges_3_majority": ("judge.samples=3",),
    "judges_3_mean_confidence": ("judge.samples=3", "judge.aggregate=mean_confidence"),
    "temperature_1": ("judge.temperature=1.0",),
    "match_pop_bin": ("pairs.match_on=[pop_bin]",),
    "match_pop_age_genre": ("pairs.match_on=[pop_bin,age_bin,genre]",),
}

#: Prefix of the experiments' names.
PREFIX = "judge-"


def knobs() -> list[str]:
    """Every parameter some ablation changes."""
    return sorted({o.split("=", 1)[0] for overrides in ABLATIONS.values() for o in overrides})


def full_overrides(name: str, baseline: Mapping[str, Any]) -> list[str]:
    """The ablation's overrides plus every other knob at its baseline value (``baseline``: flattened params).

    Why: ``dvc exp run`` starts from the workspace, which holds the previous experiment's parameters; setting every
    knob makes each ablation differ from the baseline in its own overrides only, whatever ran before.
    """
    import json

    own = dict(o.split("=", 1) for o in ABLATIONS[name])
    return [f"{k}={own[k]}" if k in own else f"{k}={json.dumps(baseline[k])}" for k in knobs()]


def _get(tree: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def ablation_row(name: str, overrides: Sequence[str], read: Callable[[str], Any]) -> dict[str, Any]:
    """One row: ``read(stage)`` gives that stage's metrics file of the ablation's experiment."""
    judged, calib, pairs = read("judge-metrics") or {}, read("calibrate") or {}, read("pairs") or {}
    row: dict[str, Any] = {
        "ablation": name,
        "overrides": " ".join(overrides) or "(spec as is)",
        "judge_accuracy_vs_truth": _get(judged, "judge.vs_truth.accuracy"),
        "label_rate": _get(judged, "judge.label_rate"),
        "pairs": _get(judged, "judge.pairs"),
        "smd_log_pop_after": pairs.get("smd_log_pop_after"),
    }
    for model, result in sorted((judged.get("models") or {}).items()):
        row[f"rjs.{model}"] = _get(result, "all.rjs.mean")
    row.update(
        {
            "kendall_rjs_true_recall": _get(calib, "vs_truth.kendall_rjs_true_recall"),
            "calib_spearman": calib.get("spearman"),
            "calib_loo_abs_error": calib.get("loo_abs_error"),
        }
    )
    return row


def ablation_table(read_at: Callable[[str, str], Any], revs: Mapping[str, str]) -> pd.DataFrame:
    """The table over the ablations that have a revision in ``revs`` (name -> git revision), in
    :data:`ABLATIONS` order; ``read_at(rev, stage)`` reads a metrics file (:func:`lure.experiments.metrics_at`)."""
    rows = [
        ablation_row(name, overrides, lambda stage, rev=revs[name]: read_at(rev, stage))
        for name, overrides in ABLATIONS.items()
        if name in revs
    ]
    return pd.DataFrame(rows)
