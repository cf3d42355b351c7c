"""ExpoSynth's generator (LURE §2.2): per user, T steps; each step draws an anchor genre, then a candidate item from
that genre's candidate distribution (the preset's exposure control), and accepts it under the collaborative
constraints, with at most ``max_tries`` draws (rejection sampling). Every user advances one step at a time, all
users together (vectorised): a step's draws, checks and acceptances are array operations over the users still
trying.

A step that exhausts its tries is a rejected step (no row). An accepted step writes one synthetic interaction:
(user, item, timestamp, source=synth, reason=anchor-based, the anchor genre, the constraint that accepted it, the
step, the tries it took). Timestamps follow the user's last real interaction: last + step (seconds), so synthetic
rows sort after every real one of the user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lure.exposynth.anchors import Anchors
from lure.exposynth.constraints import REASONS, Constraints

#: Columns of the synthetic log, in order.
SYNTH_COLUMNS = ("user_id", "item_id", "timestamp", "source", "reason", "anchor_genre", "constraint", "step", "tries")


class CandidatePool:
    """Sampling from each genre's candidate distribution: row g of ``weights`` (genres x items, non-negative) is
    proportional to P(item | anchor genre g). One global cumulative sum and a binary search per draw."""

    def __init__(self, weights: sp.csr_matrix) -> None:
        weights = sp.csr_matrix(weights, dtype=np.float64)
        weights.eliminate_zeros()
        weights.sort_indices()
        if (weights.data < 0).any():
            raise ValueError("candidate weights must be non-negative")
        self.n_items = weights.shape[1]
        self.items = weights.indices.astype(np.int64)
        self.cum = np.cumsum(weights.data)
        self.start = weights.indptr[:-1].astype(np.int64)
        self.stop = weights.indptr[1:].astype(np.int64)
        before = np.concatenate([[0.0], self.cum])
        self.base = before[self.start]
        self.total = before[self.stop] - self.base

    def has(self, genres: np.ndarray) -> np.ndarray:
        """Whether each genre code has any candidate (codes < 0 have none)."""
        g = np.asarray(genres)
        out = np.zeros(len(g), dtype=bool)
        ok = g >= 0
        out[ok] = self.total[g[ok]] > 0
        return out

    def draw(self, genres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per genre code (each must have candidates: :meth:`has`)."""
        g = np.asarray(genres, dtype=np.int64)
        target = self.base[g] + rng.random(len(g)) * self.total[g]
        at = np.searchsorted(self.cum, target, side="right")
        return self.items[np.clip(at, self.start[g], self.stop[g] - 1)]


@dataclass(frozen=True)
class Procedure:
    """What a preset decides (``lure.exposynth.presets``): the anchors' history window and which genres an item
    counts for (items x genres), the candidate weights (genres x items), the exposure target the weights aim at (per
    popularity bin, ours: bin 0 = head), whether the previous item advances to each accepted item, whether a user's
    already-seen items are refused, and whether each try redraws the anchor genre (or only the item)."""

    name: str
    anchor_window: int | None
    anchor_membership: sp.csr_matrix
    candidate_weights: sp.csr_matrix
    target: np.ndarray
    advance_previous: bool
    exclude_seen: bool
    redraw_anchor: bool


@dataclass
class SynthesisResult:
    """The synthetic log and the counts of the run."""

    rows: pd.DataFrame
    users: int
    steps: int
    attempted_steps: int
    accepted: int
    tries: int
    rejected_reasons: dict[str, int] = field(default_factory=dict)


def synthesize(
    train: pd.DataFrame,
    anchors: Anchors,
    pool: CandidatePool,
    constraints: Constraints | None,
    procedure: Procedure,
    steps: int,
    max_tries: int,
    rng: np.random.Generator,
    progress: Callable[[int, int], None] | None = None,
) -> SynthesisResult:
    """Run T = ``steps`` steps for every user of ``anchors``; ``constraints`` None = every candidate other than the
    previous item is accepted (the constraints-off ablation)."""
    ordered = train.sort_values(["user_id", "timestamp"], kind="stable")
    last = ordered.groupby("user_id").tail(1).set_index("user_id")
    users = anchors.users
    prev = last["item_id"].reindex(users).to_numpy(dtype=np.int64).copy()
    last_ts = last["timestamp"].reindex(users).to_numpy(dtype=np.int64)
    n_items = pool.n_items
    seen = (  # the user's real items, as sorted keys user * n_items + item (only when they are refused)
        np.sort(train["user_id"].to_numpy(np.int64) * n_items + train["item_id"].to_numpy(np.int64))
        if procedure.exclude_seen
        else np.empty(0, dtype=np.int64)
    )
    synth_keys = np.empty(0, dtype=np.int64)
    parts: list[pd.DataFrame] = []
    tries_total = 0
    rejected = {"constraints": 0, "seen": 0, "same_item": 0, "no_candidate": 0}
    for step in range(steps):
        pending = np.arange(len(users))
        item = np.full(len(users), -1, dtype=np.int64)
        reason = np.full(len(users), -1, dtype=np.int64)
        anchor = np.full(len(users), -1, dtype=np.int64)
        tries = np.zeros(len(users), dtype=np.int64)
        step_anchor = anchors.draw(pending, rng)  # kept for every try unless the procedure redraws it
        for _ in range(max_tries):
            if not len(pending):
                break
            g = anchors.draw(pending, rng) if procedure.redraw_anchor else step_anchor[pending]
            drawable = pool.has(g)
            rejected["no_candidate"] += int((~drawable).sum())
            tries[pending] += 1
            tries_total += len(pending)
            rows, g = pending[drawable], g[drawable]
            cand = pool.draw(g, rng)
            if constraints is None:
                code = np.where(cand == prev[rows], -1, REASONS.index("unconstrained"))
            else:
                code = constraints.check(prev[rows], cand)
            rejected["same_item"] += int((cand == prev[rows]).sum())
            rejected["constraints"] += int(((code < 0) & (cand != prev[rows])).sum())
            if procedure.exclude_seen:
                keys = users[rows] * n_items + cand
                known = _in_sorted(seen, keys) | np.isin(keys, synth_keys)
                rejected["seen"] += int((known & (code >= 0)).sum())
                code = np.where(known, -1, code)
            ok = code >= 0
            item[rows[ok]], reason[rows[ok]], anchor[rows[ok]] = cand[ok], code[ok], g[ok]
            pending = np.setdiff1d(pending, rows[ok], assume_unique=True)
        done = item >= 0
        parts.append(
            pd.DataFrame(
                {
                    "user_id": users[done],
                    "item_id": item[done],
                    "timestamp": last_ts[done] + step + 1,
                    "anchor_genre": anchor[done],
                    "constraint": reason[done],
                    "step": step,
                    "tries": tries[done],
                }
            )
        )
        if procedure.exclude_seen:
            synth_keys = np.concatenate([synth_keys, users[done] * n_items + item[done]])
        if procedure.advance_previous:
            prev[done] = item[done]
        if progress is not None:
            progress(step + 1, steps)
    rows = pd.concat(parts, ignore_index=True).sort_values(["user_id", "step"], kind="stable")
    rows = rows.reset_index(drop=True).assign(source="synth", reason="anchor-based")
    rows["constraint"] = np.asarray(REASONS, dtype=object)[rows["constraint"].to_numpy()]
    return SynthesisResult(
        rows=rows[list(SYNTH_COLUMNS)],
        users=len(users),
        steps=steps,
        attempted_steps=len(users) * steps,
        accepted=len(rows),
        tries=tries_total,
        rejected_reasons=rejected,
    )


def _in_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Membership of ``keys`` in the sorted array ``sorted_keys``."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys
