"""Calib-Link (lure.calibrate): the isotonic fit, its statistics and leave-one-model-out error on a hand-computed
example, the 'not enough' reasons, and the CSV + PNG. Each test checks one claim of docs/judge.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lure.calibrate import calib_link, curve_frame, delta_recall, write_calib_link
from lure.stats import spearman_rho

# Four models: RJS and Delta Recall^IPS (sorted by RJS: a < b < c < d; c and d are out of order in Delta)
RJS = {"a": -0.2, "b": 0.0, "c": 0.1, "d": 0.3}
DELTA = {"a": -0.05, "b": 0.0, "c": 0.08, "d": 0.04}


def test_the_fit_and_its_statistics_by_hand():
    link = calib_link(RJS, DELTA)
    assert link.reason is None and link.models == ("a", "b", "c", "d")
    # pool-adjacent-violators: c, d (0.08 > 0.04) pool to 0.06
    assert link.fitted == pytest.approx([-0.05, 0.0, 0.06, 0.06])
    # mean D = 0.07 / 4 = 0.0175; SS_tot = 0.0675^2 + 0.0175^2 + 0.0625^2 + 0.0225^2 = 0.009275
    # SS_res = 0.02^2 + 0.02^2 = 0.0008;  R^2 = 1 - 0.0008 / 0.009275
    assert link.r2 == pytest.approx(1 - 0.0008 / 0.009275)
    # ranks of D: 1, 2, 4, 3 -> sum d^2 = 2 -> rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert link.spearman == pytest.approx(0.8)
    # 6 pairs, 1 discordant (c, d) -> tau = (5 - 1) / 6
    assert link.kendall == pytest.approx(2 / 3)
    # leave one out (g clipped outside the fitted range, linear between fitted points):
    #   a: fit b, c, d -> [0, 0.06, 0.06]; g(-0.2) = g(0) = 0            -> |0 + 0.05|       = 0.05
    #   b: fit a, c, d -> [-0.05, 0.06, 0.06]; g(0) = -0.05 + 0.11 * 2/3 -> |0.02333 - 0|    = 0.07/3
    #   c: fit a, b, d -> [-0.05, 0, 0.04]; g(0.1) = 0.04 / 3            -> |0.01333 - 0.08| = 0.2/3
    #   d: fit a, b, c -> [-0.05, 0, 0.08]; g(0.3) = g(0.1) = 0.08       -> |0.08 - 0.04|    = 0.04
    assert link.loo_errors == pytest.approx([0.05, 0.07 / 3, 0.2 / 3, 0.04])
    assert link.loo_abs_error == pytest.approx(0.045)  # (0.05 + 0.07/3 + 0.2/3 + 0.04) / 4 = 0.18 / 4
    assert link.predict(np.array([-1.0, 0.05, 1.0])) == pytest.approx([-0.05, 0.03, 0.06])  # clipped, interpolated


def test_g_is_increasing():
    rng = np.random.default_rng(0)
    rjs = {f"m{k}": float(v) for k, v in enumerate(rng.uniform(-1, 1, 12))}
    delta = {m: float(rng.normal()) for m in rjs}
    link = calib_link(rjs, delta)
    grid = link.predict(np.linspace(-1.5, 1.5, 200))
    assert (np.diff(grid) >= 0).all()


@pytest.mark.parametrize(
    ("rjs", "delta", "reason"),
    [
        ({"a": 0.1, "b": 0.2}, {"a": 0.0, "b": 0.1}, "at least 3 models"),
        ({"a": 0.1, "b": 0.2, "c": 0.3}, {"a": 0.0, "b": 0.1}, "at least 3 models"),  # c has no Delta
        ({"a": 0.2, "b": 0.2, "c": 0.2}, {"a": 0.0, "b": 0.1, "c": 0.3}, "RJS is the same"),
        ({"a": 0.1, "b": 0.2, "c": 0.3}, {"a": 0.0, "b": 0.0, "c": 0.0}, "Delta Recall is the same"),
    ],
)
def test_not_enough_gives_a_reason_not_nan(rjs, delta, reason):
    link = calib_link(rjs, delta)
    assert reason in link.reason
    summary = link.summary()
    assert all(summary[k] is None for k in ("spearman", "kendall", "r2", "loo_abs_error"))
    with pytest.raises(ValueError, match="no calibration"):
        link.predict(np.array([0.0]))


def test_saturated_recall_is_not_enough():
    """LURE §4.2's pilot: every model's recall is 1.0, so every lift is 0 and the curve is flat."""
    delta = delta_recall({"popularity": 1.0, "als": 1.0, "bpr": 1.0}, "popularity")
    assert delta == {"popularity": 0.0, "als": 0.0, "bpr": 0.0}
    assert "flat" in calib_link({"popularity": 0.1, "als": 0.3, "bpr": 0.2}, delta).reason


def test_delta_recall_is_relative_to_the_reference():
    assert delta_recall({"pop": 0.25, "als": 0.5, "bpr": 0.375}, "pop") == {"pop": 0.0, "als": 0.25, "bpr": 0.125}
    with pytest.raises(KeyError, match="reference"):
        delta_recall({"als": 0.5}, "pop")
    with pytest.raises(ValueError, match="finite"):
        calib_link({"a": np.nan, "b": 0, "c": 1}, {"a": 0, "b": 0, "c": 1})


def test_spearman_is_nan_only_where_undefined():
    assert spearman_rho(np.array([1.0, 2.0, 3.0]), np.array([3.0, 1.0, 2.0])) == pytest.approx(-0.5)
    assert np.isnan(spearman_rho(np.array([1.0, 1.0]), np.array([1.0, 2.0])))


def test_curve_csv_and_png(tmp_path):
    link = calib_link(RJS, DELTA)
    write_calib_link(link, tmp_path, reference="b")
    table = pd.read_csv(tmp_path / "calib_link.csv")
    assert table["model"].tolist() == ["a", "b", "c", "d"]
    assert table["g"].tolist() == pytest.approx([-0.05, 0.0, 0.06, 0.06])
    assert (tmp_path / "calib_link.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    flat = calib_link({"a": 0.1, "b": 0.2}, {"a": 0.0, "b": 0.1})
    write_calib_link(flat, tmp_path / "flat", reference="a")
    assert pd.read_csv(tmp_path / "flat" / "calib_link.csv")["g"].isna().all()
    assert curve_frame(flat)["rjs"].tolist() == [0.1, 0.2]
