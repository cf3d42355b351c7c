"""ExpoSynth's two presets, registered in ``lure.registry.EXPOSYNTH_PRESETS`` as any plugin would register a third.

* ``paper``: the published procedure as its public code runs it (``exposynth/run_synth.py``, ``constraints.py`` and
  ``scripts/prep_movielens.py`` of the LURE repository). Its popularity bins are floor(5 x the item's average-rank
  percentile of interaction counts) among the items with an interaction (unrated items: bin 0), so its bin 4 is the
  most popular; each item weighs 1.0 if its bin is >= 3 (the most popular 40 %) else 0.5. An item's genre is its
  first listed genre; the anchors count the whole history; the anchor genre is drawn once per step and the tries
  redraw only the item; the previous item stays the user's last real item; an item the user already has may be
  drawn again. Its "tail ratio" (share of synthetic items with its bin >= 3) is therefore a head share.
* ``corrected`` (default): our bins (0 = head). An item counts for every genre it lists. The candidate of anchor
  genre g is drawn so that its popularity bin follows the target q: P(j | g) = q_b(j) / (n_{g,b(j)} * sum of q over
  the bins g has items in), n_{g,b} the items of genre g in bin b. Anchors over the recent window; each try redraws
  the anchor too; the previous item advances to each accepted item; an item the user has (really or synthetically)
  is refused.

Each preset's ``build(spec, items, n_bins, genres)`` returns the :class:`~lure.exposynth.sampler.Procedure`;
``reads`` lists the ``exposynth`` fields it reads (the stage declares exactly those to DVC).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lure.exposynth.anchors import Genres
from lure.exposynth.sampler import Procedure
from lure.registry import EXPOSYNTH_PRESETS, Definition

#: Fields every preset reads.
SHARED = (
    "exposynth.preset",
    "exposynth.steps",
    "exposynth.anchors",
    "exposynth.transition_min",
    "exposynth.delta",
    "exposynth.neighbours",
    "exposynth.max_tries",
    "exposynth.constraints",
)
#: The public code's weights: 1.0 on its bins >= PAPER_HEAVY_FROM (its most popular), 0.5 elsewhere.
PAPER_HEAVY_FROM = 3
PAPER_WEIGHTS = (1.0, 0.5)


def paper_bins(popularity: np.ndarray, n_bins: int) -> np.ndarray:
    """The public code's popularity bin of each item (``assign_quantile_bins_by_rank``): among items with at least one
    interaction, floor(n_bins x pandas' average-rank percentile of the count), clipped to n_bins - 1 (the most
    popular); items without an interaction get bin 0 (its ``fillna(0)``)."""
    counts = pd.Series(np.asarray(popularity, dtype=np.int64))
    seen = counts > 0
    pct = counts[seen].rank(method="average", pct=True).to_numpy()
    bins = np.zeros(len(counts), dtype=np.int64)
    bins[seen.to_numpy()] = np.clip(np.floor(pct * n_bins).astype(np.int64), 0, n_bins - 1)
    return bins


def bin_shares(weight_per_item: np.ndarray, pop_bin: np.ndarray, n_bins: int) -> np.ndarray:
    """Share of the total weight in each popularity bin (ours)."""
    mass = np.bincount(np.asarray(pop_bin, dtype=np.int64), weights=weight_per_item, minlength=n_bins)
    return mass / mass.sum() if mass.sum() > 0 else mass


def ramp_target(n_bins: int) -> np.ndarray:
    """The default q: proportional to b + 1 over our bins (the least popular bin weighs most)."""
    q = np.arange(1, n_bins + 1, dtype=np.float64)
    return q / q.sum()


def build_paper(spec, items: pd.DataFrame, n_bins: int, genres: Genres) -> Procedure:
    heavy, light = PAPER_WEIGHTS
    w = np.where(paper_bins(items["popularity"].to_numpy(), n_bins) >= PAPER_HEAVY_FROM, heavy, light)
    membership = genres.primary_membership
    weights = sp.csr_matrix(membership.T.multiply(w[None, :]))
    # no q: the target is what the weights imply over the catalogue (of items with a genre), in our bins
    has_genre = np.asarray(membership.sum(axis=1)).ravel() > 0
    target = bin_shares(np.where(has_genre, w, 0.0), items["pop_bin"].to_numpy(), n_bins)
    return Procedure(
        "paper",
        anchor_window=None,
        anchor_membership=membership,
        candidate_weights=weights,
        target=target,
        advance_previous=False,
        exclude_seen=False,
        redraw_anchor=False,
    )


def build_corrected(spec, items: pd.DataFrame, n_bins: int, genres: Genres) -> Procedure:
    q = ramp_target(n_bins) if spec.target is None else np.asarray(spec.target, dtype=np.float64)
    if len(q) != n_bins:
        raise ValueError(f"exposynth.target has {len(q)} weights; data.bins.n_pop_bins is {n_bins}")
    q = q / q.sum()
    bins = items["pop_bin"].to_numpy(np.int64)
    genre_item = sp.csr_matrix(genres.membership.T)  # genres x items
    onehot = sp.csr_matrix((np.ones(len(bins)), (np.arange(len(bins)), bins)), shape=(len(bins), n_bins))
    per_bin = np.asarray((genre_item @ onehot).todense())  # n_{g,b}
    q_present = np.where(per_bin > 0, q[None, :], 0.0)
    norm = q_present.sum(axis=1, keepdims=True)
    scale = np.divide(q_present, per_bin * norm, out=np.zeros_like(q_present), where=(per_bin > 0) & (norm > 0))
    coo = genre_item.tocoo()
    weights = sp.csr_matrix((scale[coo.row, bins[coo.col]], (coo.row, coo.col)), shape=genre_item.shape)
    return Procedure(
        "corrected",
        anchor_window=spec.anchor_window,
        anchor_membership=genres.membership,
        candidate_weights=weights,
        target=q,
        advance_previous=True,
        exclude_seen=True,
        redraw_anchor=True,
    )


EXPOSYNTH_PRESETS.add(
    Definition(
        "paper",
        build=build_paper,
        reads=SHARED,
        description="The published procedure as its public code runs it (docs/exposynth.md).",
    )
)
EXPOSYNTH_PRESETS.add(
    Definition(
        "corrected",
        build=build_corrected,
        reads=(*SHARED, "exposynth.anchor_window", "exposynth.target"),
        description="Our binning, the target q, recent anchors, an advancing previous item (docs/exposynth.md).",
    )
)
