"""Calib-Link (LURE §2.3): a monotone map g from the judge score RJS to the IPS recall lift of a recommender.

Given one tuple (M_k, RJS_k, Delta Recall^IPS_k) per recommender, where Delta Recall^IPS_k = Recall^IPS_k -
Recall^IPS_ref is the lift over a named reference model (the reference itself is the point (RJS_ref, 0)), fit an
isotonic (non-decreasing) regression g with g(RJS) ~ Delta Recall^IPS (scikit-learn's ``IsotonicRegression``,
``increasing=True``, clipped outside the observed RJS range), and report

* Spearman rho and Kendall tau-b between RJS and Delta Recall (:mod:`lure.stats`, scipy);
* R^2 of g on the tuples it was fitted on: 1 - sum_k (D_k - g(RJS_k))^2 / sum_k (D_k - mean D)^2 (in-sample, so it
  flatters g: an isotonic fit through points whose order agrees with RJS has R^2 = 1);
* the leave-one-model-out absolute error: g fitted on every model but k, evaluated at RJS_k, |g_-k(RJS_k) - D_k|,
  averaged over k -- the honest number: how far g predicts the lift of a model it has not seen.

With fewer than 3 models (leave-one-out would fit g on one point), a constant RJS or a constant Delta Recall (the
paper's pilot: recall saturated at 1.0 and the curve was flat) nothing is fitted: the result says why in
``reason`` and every statistic is None, never NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lure.spec.calibrate import CalibrateSpec
from lure.stats import kendall_tau, spearman_rho

#: Fewest models Calib-Link fits g on (leave-one-out then fits on at least two).
MIN_MODELS = 3


@dataclass(frozen=True)
class CalibLink:
    """The fitted map and its report; ``reason`` is set (and every statistic None) when there was not enough to fit."""

    models: tuple[str, ...]
    rjs: np.ndarray
    delta: np.ndarray
    reason: str | None = None
    fitted: np.ndarray | None = None  # g(RJS_k), aligned with models
    loo_errors: np.ndarray | None = None  # |g_-k(RJS_k) - D_k|, aligned with models
    spearman: float | None = None
    kendall: float | None = None
    r2: float | None = None
    _g: Any = field(default=None, repr=False)

    @property
    def loo_abs_error(self) -> float | None:
        return None if self.loo_errors is None else float(self.loo_errors.mean())

    def predict(self, rjs: np.ndarray) -> np.ndarray:
        """g(RJS): the predicted lift over the reference (clipped to the fitted range outside the observed RJS)."""
        if self._g is None:
            raise ValueError(f"no calibration was fitted: {self.reason}")
        return np.asarray(self._g.predict(np.asarray(rjs, dtype=np.float64)), dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """JSON-able report: models, reason, spearman, kendall, r2, loo_abs_error."""
        return {
            "models": len(self.models),
            "reason": self.reason,
            "spearman": self.spearman,
            "kendall": self.kendall,
            "r2": self.r2,
            "loo_abs_error": self.loo_abs_error,
        }


def delta_recall(recall: Mapping[str, float], reference: str) -> dict[str, float]:
    """Delta Recall^IPS_k = Recall^IPS_k - Recall^IPS_ref for every model (the reference gets 0)."""
    if reference not in recall:
        raise KeyError(f"reference model {reference!r} has no recall; models: {sorted(recall)}")
    base = float(recall[reference])
    return {name: float(value) - base for name, value in recall.items()}


def calib_link(rjs: Mapping[str, float], delta: Mapping[str, float]) -> CalibLink:
    """Fit Calib-Link on the models present in both mappings (sorted by name); see the module docstring."""
    models = tuple(sorted(set(rjs) & set(delta)))
    x = np.array([rjs[m] for m in models], dtype=np.float64)
    d = np.array([delta[m] for m in models], dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(d).all()):
        raise ValueError("RJS and Delta Recall must be finite")
    reason = _not_enough(models, x, d)
    if reason is not None:
        return CalibLink(models, x, d, reason=reason)
    g = _fit(x, d)
    fitted = np.asarray(g.predict(x), dtype=np.float64)
    r2 = 1.0 - float(((d - fitted) ** 2).sum() / ((d - d.mean()) ** 2).sum())  # R^2 = 1 - SS_res / SS_tot
    loo = np.empty(len(models))
    for k in range(len(models)):
        rest = np.arange(len(models)) != k
        loo[k] = abs(float(_fit(x[rest], d[rest]).predict(x[k : k + 1])[0]) - d[k])  # |g_-k(RJS_k) - D_k|
    return CalibLink(
        models,
        x,
        d,
        fitted=fitted,
        loo_errors=loo,
        spearman=spearman_rho(x, d),
        kendall=kendall_tau(x, d),
        r2=r2,
        _g=g,
    )


def curve_frame(link: CalibLink) -> pd.DataFrame:
    """One row per model, by increasing RJS: model, rjs, delta_recall, g (the fitted value; NaN without a fit) and
    loo_abs_error. Linear interpolation between consecutive g values is g itself (scikit-learn's isotonic
    prediction)."""
    frame = pd.DataFrame(
        {
            "model": list(link.models),
            "rjs": link.rjs,
            "delta_recall": link.delta,
            "g": link.fitted if link.fitted is not None else np.full(len(link.models), np.nan),
            "loo_abs_error": link.loo_errors if link.loo_errors is not None else np.full(len(link.models), np.nan),
        }
    )
    return frame.sort_values(["rjs", "model"], kind="stable").reset_index(drop=True)


def write_calib_link(link: CalibLink, out_dir: Path, reference: str) -> None:
    """``calib_link.csv`` (:func:`curve_frame`) and ``calib_link.png`` in ``out_dir`` (:mod:`lure.plots.calib_link`)."""
    from lure.plots.calib_link import write_calib_link_plot

    write_calib_link_plot(curve_frame(link), out_dir, reference, link.reason)


def _not_enough(models: tuple[str, ...], x: np.ndarray, d: np.ndarray) -> str | None:
    if len(models) < MIN_MODELS:
        return f"Calib-Link needs at least {MIN_MODELS} models with both RJS and Delta Recall, got {len(models)}"
    if np.all(x == x[0]):
        return f"RJS is the same for every model ({x[0]:g}): g is undefined"
    if np.all(d == d[0]):
        return f"Delta Recall is the same for every model ({d[0]:g}): the curve is flat and no statistic is defined"
    return None


def _fit(x: np.ndarray, d: np.ndarray) -> Any:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x, d)


def recall_of(evaluate: Mapping[str, Any], models: Sequence[str], estimator: str, k: int) -> dict[str, float]:
    """Each model's Recall@k under ``estimator`` from the evaluate stage's metrics (models without it are left out)."""
    key = f"recall_at_{k}"
    out = {}
    for model in models:
        value = evaluate.get(model, {}).get(estimator, {}).get(key, {}).get("mean")
        if value is not None:
            out[model] = float(value)
    return out


def calibration_report(
    judge_metrics: Mapping[str, Any],
    evaluate: Mapping[str, Any],
    spec: CalibrateSpec,
    models: Sequence[str],
    out_dir: Path,
) -> dict[str, Any]:
    """Calib-Link on the recommenders with both an RJS (``judge-metrics``) and a recall (``evaluate``), written to
    ``out_dir`` (``calib_link.csv``/``.png``), and the report: the fit's statistics, each model's tuple and, where
    the evaluate stage has the truth (the world), g against the true lift and Kendall tau between RJS and the true
    recall (also for RJS under a perfect judge, ``truth_label``: how much of any disagreement is the judge's)."""
    judged = judge_metrics.get("models", {})
    rjs = {
        m: float(judged[m]["all"]["rjs"]["mean"])
        for m in models
        if judged.get(m, {}).get("all", {}).get("rjs", {}).get("mean") is not None
    }
    recall = recall_of(evaluate, models, spec.estimator, spec.k)
    if spec.reference not in recall:
        raise ValueError(
            f"calibrate.reference {spec.reference!r} has no {spec.estimator} recall@{spec.k} in the evaluate metrics"
        )
    delta = delta_recall(recall, spec.reference)
    link = calib_link(rjs, delta)
    write_calib_link(link, out_dir, spec.reference)
    report: dict[str, Any] = {
        **link.summary(),
        "estimator": spec.estimator,
        "reference": spec.reference,
        "k": spec.k,
        "tuples": {m: {"rjs": rjs.get(m), "delta_recall": delta.get(m), "recall": recall.get(m)} for m in models},
    }
    true_recall = recall_of(evaluate, models, "truth", spec.k)
    if true_recall and spec.reference in true_recall:
        truth = calib_link(rjs, delta_recall(true_recall, spec.reference))
        common = sorted(set(rjs) & set(true_recall))
        perfect = {
            m: float(judged[m]["truth_label"]["all"]["rjs"]) for m in common if "truth_label" in judged.get(m, {})
        }
        report["vs_truth"] = {
            **truth.summary(),
            "kendall_rjs_true_recall": _tau(rjs, true_recall, common),
            "kendall_estimate_true_recall": _tau(recall, true_recall, common),
            "kendall_perfect_judge_rjs_true_recall": _tau(perfect, true_recall, sorted(perfect)),
            "true_recall": {m: true_recall[m] for m in common},
        }
    return report


def _tau(x: Mapping[str, float], y: Mapping[str, float], models: Sequence[str]) -> float | None:
    """Kendall tau-b of x and y over the ``models`` both score (None where :func:`kendall_tau` has none: < 2 models
    or a constant side)."""
    models = [m for m in models if m in x and m in y]
    tau = kendall_tau(np.array([x[m] for m in models]), np.array([y[m] for m in models]))
    return None if np.isnan(tau) else tau
