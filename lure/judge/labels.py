"""From a judged reply to the label y and the weight a pair carries into PairAUC_IPS (Eq. 2) and RJS.

LURE §2.1 lets y = 0 stand for "tie/invalid" and says non-conforming instances "are down-weighted or discarded"
without saying how. Here a failure is never a tie:

* y = +1 if the judge preferred i, -1 if j, and 0 **only** when it answered "tie";
* ``valid``: weight 1;
* ``drop`` policy: every other status gets weight 0 (the pair leaves the metric: numerator and denominator);
* ``downweight`` policy: ``bad_evidence`` keeps its verdict with weight ``factor``; ``invalid_json``, ``refused`` and
  ``error`` have no verdict to down-weight and get weight 0, as under ``drop``.

A pair of weight 0 has y = 0 as a placeholder; the metrics ignore it (its weight multiplies the Eq. 1 weight).

Several answers per pair (``judge.order: both``, ``judge.samples`` > 1) become one label in :func:`pair_labels`:
each answer a gets (y_a, v_a) as above, and

* ``majority``:        y = sign(sum_a v_a y_a)            (an even split is a tie, y = 0)
* ``mean_confidence``: y = sign(sum_a v_a c_a y_a)        (c_a the answer's confidence)
* the pair's weight v = the mean of v_a over the answers with v_a > 0 (0 when there is none).

With one answer per pair both rules give (y_a, v_a). ``evidence_check: false`` (LURE's ablation (ii)) reads a
``bad_evidence`` answer as ``valid`` before any of this.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lure.judge.parse import Judgement
from lure.judge.schema import STATUSES
from lure.spec.judge import DownweightInvalid, InvalidPolicy

_Y = {"i": 1, "j": -1, "tie": 0}


def label(judgement: Judgement, policy: InvalidPolicy) -> tuple[int, float]:
    """(y, weight) of one judged pair under ``policy``; see the module docstring."""
    if judgement.status == "valid" and judgement.answer is not None:
        return _Y[judgement.answer.winner], 1.0
    if judgement.status == "bad_evidence" and judgement.answer is not None and isinstance(policy, DownweightInvalid):
        return _Y[judgement.answer.winner], float(policy.factor)
    return 0, 0.0


def labels(judgements: Sequence[Judgement], policy: InvalidPolicy) -> tuple[np.ndarray, np.ndarray]:
    """y (int8) and weight (float64) arrays of :func:`label` over ``judgements``."""
    pairs = [label(j, policy) for j in judgements]
    y = np.fromiter((p[0] for p in pairs), dtype=np.int8, count=len(pairs))
    weight = np.fromiter((p[1] for p in pairs), dtype=np.float64, count=len(pairs))
    return y, weight


def status_counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many answers got each status, every status present (0 included), in :data:`STATUSES` order. Takes the
    statuses themselves so that judgements (``j.status for j in ...``) and answer frames (``answers["status"]``)
    are counted the same way."""
    counts = Counter(statuses)
    unknown = set(counts) - set(STATUSES)
    if unknown:
        raise ValueError(f"unknown judge status {sorted(unknown)}; expected one of {list(STATUSES)}")
    return {s: int(counts.get(s, 0)) for s in STATUSES}


def answer_labels(
    status: np.ndarray, winner: np.ndarray, policy: InvalidPolicy, evidence_check: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(y_a, v_a) of each answer from its status and verdict ("i", "j", "tie" or None), vectorised :func:`label`."""
    status = np.asarray(status, dtype=object)
    winner = np.asarray(winner, dtype=object)
    if not evidence_check:
        status = np.where(status == "bad_evidence", "valid", status)
    y = np.select([winner == "i", winner == "j"], [1, -1], default=0).astype(np.int8)
    v = np.where(status == "valid", 1.0, 0.0)
    if isinstance(policy, DownweightInvalid):
        v = np.where(status == "bad_evidence", float(policy.factor), v)
    v = np.where(pd.isna(winner), 0.0, v)
    return np.where(v > 0, y, 0).astype(np.int8), v


def pair_labels(
    answers: pd.DataFrame,
    n_pairs: int,
    policy: InvalidPolicy,
    evidence_check: bool = True,
    aggregate: str = "majority",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair (rows 0..n_pairs-1 of the pairs): the label y, its weight v and the number of answers it had.

    ``answers``: one row per answer with pair, status, winner, confidence (:mod:`lure.judge.run`). A pair that was
    not judged (outside ``judge.max_pairs``) has 0 answers and weight 0. See the module docstring for the rules.
    """
    y_a, v_a = answer_labels(answers["status"].to_numpy(), answers["winner"].to_numpy(), policy, evidence_check)
    pair = answers["pair"].to_numpy(np.int64)
    if aggregate == "majority":
        vote = v_a * y_a
    elif aggregate == "mean_confidence":
        vote = v_a * answers["confidence"].fillna(0.0).to_numpy(np.float64) * y_a
    else:
        raise ValueError(f"unknown aggregate {aggregate!r}; expected 'majority' or 'mean_confidence'")
    total = np.bincount(pair, weights=vote, minlength=n_pairs)
    kept = np.bincount(pair, weights=(v_a > 0).astype(np.float64), minlength=n_pairs)
    weight_sum = np.bincount(pair, weights=v_a, minlength=n_pairs)
    counts = np.bincount(pair, minlength=n_pairs)
    v = np.divide(weight_sum, kept, out=np.zeros(n_pairs), where=kept > 0)
    y = np.where(v > 0, np.sign(np.round(total, 12)), 0).astype(np.int8)
    return y, v, counts
