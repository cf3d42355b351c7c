"""ExpoSynth from a prepared dataset's training interactions to the synthetic log and its report (stage
``exposynth``): constraints and anchors from the training log, the preset's procedure, the generator, the metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lure.exposynth.anchors import Genres, user_anchors
from lure.exposynth.constraints import Constraints, top_similar, transition_counts, transition_matrix
from lure.exposynth.metrics import (
    bin_distribution,
    constraint_shares,
    kl_divergence,
    previous_items,
    tail_ratios,
)
from lure.exposynth.presets import paper_bins
from lure.exposynth.sampler import CandidatePool, Procedure, SynthesisResult, synthesize
from lure.registry import EXPOSYNTH_PRESETS
from lure.rng import generator
from lure.spec.exposynth import ExposynthSpec


@dataclass(frozen=True)
class Exposynth:
    """A finished run: the synthetic rows, the procedure, the generator's counts and the report."""

    rows: pd.DataFrame
    procedure: Procedure
    result: SynthesisResult
    report: dict[str, Any]
    exposure: dict[str, np.ndarray]


def build_constraints(train: pd.DataFrame, genres: Genres, n_items: int, spec: ExposynthSpec) -> Constraints:
    """T and S from the training log with the spec's thresholds."""
    counts = transition_counts(train, genres.primary, len(genres.names))
    return Constraints(
        transition=transition_matrix(counts),
        counts=counts,
        similar=top_similar(train, n_items, spec.neighbours),
        genre_of_item=genres.primary,
        transition_min=spec.transition_min,
        delta=spec.delta,
    )


def run_exposynth(
    train: pd.DataFrame,
    items: pd.DataFrame,
    spec: ExposynthSpec,
    n_bins: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> Exposynth:
    """The synthetic log of ``spec`` over ``train`` (the holdout's training part: never an evaluation split)."""
    items = items.sort_values("item_id", kind="stable").reset_index(drop=True)
    if not (items["item_id"].to_numpy() == np.arange(len(items))).all():
        raise ValueError("items must have contiguous item_id 0..n-1 (the prepared catalogue)")
    pop_bin = items["pop_bin"].to_numpy(np.int64)
    genres = Genres.of(items["genres"])
    if not genres.names:
        raise ValueError("ExpoSynth needs item genres: items.parquet lists none (anchors and T are genre-based)")
    procedure = EXPOSYNTH_PRESETS.get(spec.preset).build(spec, items, n_bins, genres)
    anchors = user_anchors(train, procedure.anchor_membership, spec.anchors, procedure.anchor_window)
    paper_bin = paper_bins(items["popularity"].to_numpy(), n_bins)
    constraints = build_constraints(train, genres, len(items), spec)
    result = synthesize(
        train,
        anchors,
        CandidatePool(procedure.candidate_weights),
        constraints if spec.constraints else None,
        procedure,
        spec.steps,
        spec.max_tries,
        generator(seed, f"exposynth.{spec.preset}"),
        progress=progress,
    )
    rows = result.rows.assign(anchor_genre=np.asarray(genres.names, dtype=object)[result.rows["anchor_genre"]])
    achieved = bin_distribution(rows["item_id"].to_numpy(), pop_bin, n_bins)
    real = bin_distribution(train["item_id"].to_numpy(), pop_bin, n_bins)
    prev = previous_items(train, rows, procedure.advance_previous)
    synth_items = rows["item_id"].to_numpy(np.int64)
    implausible = ~constraints.plausible(prev, synth_items) if len(rows) else np.zeros(0, bool)
    # the share the acceptance rule refuses: 0 with constraints on; what they would filter with them off
    violating = constraints.check(prev, synth_items) < 0 if len(rows) else np.zeros(0, bool)
    report = {
        "preset": spec.preset,
        "constraints": spec.constraints,
        "users": result.users,
        "attempted_steps": result.attempted_steps,
        "accepted": result.accepted,
        "rejected_steps": result.attempted_steps - result.accepted,
        "accept_ratio": result.accepted / result.attempted_steps if result.attempted_steps else None,
        "tries": result.tries,
        "tries_per_accepted": result.tries / result.accepted if result.accepted else None,
        "rejected_draws": result.rejected_reasons,
        **tail_ratios(rows["item_id"].to_numpy(), pop_bin, paper_bin, n_bins),
        "real": tail_ratios(train["item_id"].to_numpy(), pop_bin, paper_bin, n_bins),
        "kl_achieved_target": kl_divergence(achieved, procedure.target) if result.accepted else None,
        "kl_real_target": kl_divergence(real, procedure.target),
        "exposure": {
            "target": procedure.target.round(6).tolist(),
            "achieved": achieved.round(6).tolist(),
            "real": real.round(6).tolist(),
        },
        "constraint_shares": constraint_shares(rows["constraint"]),
        "implausible_share": float(implausible.mean()) if len(rows) else None,
        "constraint_violation_share": float(violating.mean()) if len(rows) else None,
        "genres": len(genres.names),
        "similarity_pairs": int(constraints.similar.nnz),
    }
    return Exposynth(rows, procedure, result, report, {"target": procedure.target, "achieved": achieved, "real": real})
