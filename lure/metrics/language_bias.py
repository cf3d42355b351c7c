"""Language bias measured against the world's truth (issue 13, point 5; docs/gdrt.md, "Language bias against the
truth").

GDRT (§2.2.2, Figs. 3/8) shows language bias as the share of top-1 recommendations that fall into the items most
relevant to the auxiliary tokens by Eq. 2. On the world that reading cannot tell a language prior from popularity:
a history-blind model's Eq. 2 also ranks popular items high. The world knows each item's latent title prior rho_i
(independent of popularity, genre and true relevance), so two questions can be answered directly:

* **What does Eq. 2 measure?** :func:`spearman` of a model's Eq. 2 relevance with rho and with popularity.
* **Does a recommender over-recommend high-prior items beyond popularity and true relevance?**
  :func:`prior_top1_shares`: the prior quintile of each window's top-1 recommendation (the first item of the list
  that is not in the window's history) against that of a *reference* top-1 matched on popularity: the item with
  the highest true relevance r(u, i) among the non-history items of the same popularity bin as the
  recommendation. A recommender that picked within each popularity bin by true relevance alone would match the
  reference's quintile shares in every bin (rho is independent of r and of popularity, so about 1/5 each); a
  share of the top quintile above the reference's is a preference for high-prior titles that neither popularity
  nor true relevance explains.

Pure NumPy (SciPy for the rank correlation); item ids index the arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Prior groups of the top-1 measure: quintiles, as the five relevance groups of GDRT's Fig. 3.
PRIOR_GROUPS = 5


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (tied values share their average rank); NaN when either is
    constant. Why a rank correlation: Eq. 2 is a mean log-probability and popularity a count, on unrelated scales;
    only their orders are comparable."""
    import scipy.stats

    a, b = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    if a.size != b.size:
        raise ValueError(f"need two sequences of the same length, got {a.size} and {b.size}")
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(scipy.stats.spearmanr(a, b).statistic)


def prior_groups(prior: Sequence[float] | np.ndarray, n_groups: int = PRIOR_GROUPS) -> np.ndarray:
    """Group of each item by its title prior, equal counts by rank (group = rank * G // n), group 0 = highest prior
    (GDRT's "Group 1" convention); ties by item id."""
    rho = np.asarray(prior, dtype=np.float64).reshape(-1)
    if not 1 <= n_groups <= max(rho.size, 1):
        raise ValueError(f"cannot split {rho.size} items into {n_groups} groups")
    groups = np.empty(rho.size, dtype=np.int64)
    groups[np.argsort(-rho, kind="stable")] = np.arange(rho.size) * n_groups // rho.size
    return groups


def first_new_items(ranked: np.ndarray, histories: Sequence[Sequence[int]]) -> np.ndarray:
    """Per list, the first item id that is not in the window's history (-1 slots skipped); -1 if there is none.

    Why not the first slot: with history items left among the candidates (the paper's protocol), a top-1 copied
    from the prompt says nothing about which *new* item the model prefers, and the reference can only pick new
    items (the user has consumed the history)."""
    top = np.asarray(ranked, dtype=np.int64)
    if len(histories) != len(top):
        raise ValueError(f"need one history per ranked list ({len(top)}), got {len(histories)}")
    out = np.full(len(top), -1, dtype=np.int64)
    for row, (items, history) in enumerate(zip(top, histories, strict=True)):
        seen = {int(i) for i in history}
        for item in items:
            if item >= 0 and int(item) not in seen:
                out[row] = item
                break
    return out


def matched_reference(
    picks: np.ndarray,
    users: Sequence[int],
    histories: Sequence[Sequence[int]],
    relevance: np.ndarray,
    pop_bin: np.ndarray,
) -> np.ndarray:
    """Per window, the item with the highest true relevance r(u, i) among the items not in the history that share
    the popularity bin of the recommender's pick (``picks``; -1 where the pick is -1 or no such item exists).

    Matching on the pick's bin makes the reference's popularity mix that of the recommender, window by window, so
    their prior shares can be compared directly and within every bin. Ties in r go to the lowest item id.
    """
    picks = np.asarray(picks, dtype=np.int64)
    bins = np.asarray(pop_bin, dtype=np.int64)
    out = np.full(len(picks), -1, dtype=np.int64)
    for row, (pick, user, history) in enumerate(zip(picks, users, histories, strict=True)):
        if pick < 0:
            continue
        allowed = bins == bins[pick]
        allowed[np.asarray(history, dtype=np.int64)] = False
        if allowed.any():
            r = np.where(allowed, np.asarray(relevance[int(user)], dtype=np.float64), -np.inf)
            out[row] = int(np.argmax(r))
    return out


def _shares(items: np.ndarray, groups: np.ndarray, n_groups: int) -> list[float]:
    counts = np.bincount(groups[items], minlength=n_groups).astype(np.float64)
    total = counts.sum()
    return [float(c / total) if total else float("nan") for c in counts]


def prior_top1_shares(
    picks: np.ndarray,
    reference: np.ndarray,
    prior_group: np.ndarray,
    pop_bin: np.ndarray,
    n_groups: int = PRIOR_GROUPS,
) -> dict[str, Any]:
    """Prior-group shares of the recommender's top-1 picks and of the matched reference, pooled and per popularity
    bin, over the windows where both exist.

    Returns ``share`` and ``expected`` (lists over prior groups, group 0 = highest prior), ``top_prior_excess`` =
    share[0] - expected[0], ``windows`` (how many windows count) and ``by_pop_bin``: for each popularity bin that
    holds a pick, ``pop_bin``, ``windows``, ``share``, ``expected``. Pooling needs no reweighting because every
    window's reference lies in the bin of its pick: both sides have the same popularity mix.
    """
    picks, reference = np.asarray(picks, dtype=np.int64), np.asarray(reference, dtype=np.int64)
    groups, bins = np.asarray(prior_group, dtype=np.int64), np.asarray(pop_bin, dtype=np.int64)
    keep = (picks >= 0) & (reference >= 0)
    picks, reference = picks[keep], reference[keep]
    share, expected = _shares(picks, groups, n_groups), _shares(reference, groups, n_groups)
    by_bin = []
    for b in np.unique(bins[picks]):
        here = bins[picks] == b
        by_bin.append(
            {
                "pop_bin": int(b),
                "windows": int(here.sum()),
                "share": _shares(picks[here], groups, n_groups),
                "expected": _shares(reference[here], groups, n_groups),
            }
        )
    return {
        "windows": int(keep.sum()),
        "share": share,
        "expected": expected,
        "top_prior_excess": share[0] - expected[0],
        "by_pop_bin": by_bin,
    }


def report_row(stage_metrics: Mapping[str, Any], attribution_keys: Sequence[str]) -> dict[str, Any]:
    """One row of ``llm-report``'s language-bias table from the metrics of ``llm-base`` or ``llm-eval-<name>``:
    the attribution ratios named by ``attribution_keys``, the Eq. 2 correlations (``eq2_*``) and the top-1 share of
    the highest-prior quintile, its reference and their difference (``top1_top_prior_*``).

    A measure the stage did not compute (a classic baseline has no attribution or Eq. 2; a real dataset no title
    prior) is left out, so it is an empty cell in the table rather than a made-up value.
    """
    attribution = stage_metrics.get("attribution", {})
    row = {key: attribution[key] for key in attribution_keys if key in attribution}
    language = stage_metrics.get("language_prior", {})
    row.update({key: value for key, value in language.items() if key.startswith("eq2_")})
    top1 = language.get("top1_prior")
    if top1 is not None:
        row.update(
            top1_top_prior_share=top1["share"][0],
            top1_top_prior_expected=top1["expected"][0],
            top1_top_prior_excess=top1["top_prior_excess"],
        )
    return row
