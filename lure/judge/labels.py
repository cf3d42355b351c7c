"""From a judged reply to the label y and the weight a pair carries into PairAUC_IPS (Eq. 2) and RJS.

LURE §2.1 lets y = 0 stand for "tie/invalid" and says non-conforming instances "are down-weighted or discarded"
without saying how. Here a failure is never a tie:

* y = +1 if the judge preferred i, -1 if j, and 0 **only** when it answered "tie";
* ``valid``: weight 1;
* ``drop`` policy: every other status gets weight 0 (the pair leaves the metric: numerator and denominator);
* ``downweight`` policy: ``bad_evidence`` keeps its verdict with weight ``factor``; ``invalid_json``, ``refused`` and
  ``error`` have no verdict to down-weight and get weight 0, as under ``drop``.

A pair of weight 0 has y = 0 as a placeholder; the metrics ignore it (its weight multiplies the Eq. 1 weight).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

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


def status_counts(judgements: Sequence[Judgement]) -> dict[str, int]:
    """How many answers got each status (every status present, 0 included)."""
    counts = Counter(j.status for j in judgements)
    return {s: int(counts.get(s, 0)) for s in STATUSES}
