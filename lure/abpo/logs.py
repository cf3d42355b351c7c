"""Bandit logs in one policy-log format: a prior policy serves each context one item drawn from its distribution
over the catalogue, the exact probability mu(a|x) is recorded, and the feedback is drawn (docs/abpo.md).

One row per served context (:data:`LOG_COLUMNS`): ``round``, ``context_id``, ``user_id``, ``history`` (item ids,
oldest first), ``action`` (the exposed item), ``mu`` (its probability under the serving policy), ``reward`` (1 =
positive, 0 = no response) and ``policy`` (which policy served).

Feedback:

* on the world, positive with probability r(u, a), the true relevance (:func:`world_feedback`), so the expected
  reward of a policy is its true CTR E_x sum_a pi(a|x) r(u, a), which the off-policy estimators target;
* on real data, positive iff the exposed item is among the user's next ``horizon`` real interactions after the
  context (:func:`horizon_feedback`): the supervised-to-bandit conversion, which counts an item the user went on to
  consume as a click.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

LOG_COLUMNS = ("round", "context_id", "user_id", "history", "action", "mu", "reward", "policy")


def softmax_policy(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax(scores / T) over the catalogue: a zoo model as a stochastic serving policy."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(scores, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def draw_actions(probs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One item per row drawn from ``probs`` (rows sum to 1), and its probability mu(a|x) (inverse-CDF draws)."""
    probs = np.asarray(probs, dtype=np.float64)
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("every row of probs must sum to 1")
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cdf[:, -1:]
    actions = np.minimum((cdf < u).sum(axis=1), probs.shape[1] - 1)
    return actions.astype(np.int64), probs[np.arange(len(probs)), actions]


def world_feedback(
    relevance: np.ndarray, users: np.ndarray, actions: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """1 with probability r(u, a) (the world's true relevance), else 0."""
    p = np.asarray(relevance)[np.asarray(users, dtype=np.int64), np.asarray(actions, dtype=np.int64)]
    return (rng.random(len(p)) < p).astype(np.int64)


def horizon_feedback(futures: Sequence[Sequence[int]], actions: np.ndarray, horizon: int) -> np.ndarray:
    """1 iff the exposed item is among the first ``horizon`` items of the user's future after the context."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return np.array(
        [int(int(a) in {int(i) for i in list(f)[:horizon]}) for f, a in zip(futures, actions, strict=True)],
        dtype=np.int64,
    )


def policy_log(
    round_: int,
    context_ids: Sequence[int],
    users: Sequence[int],
    histories: Sequence[Sequence[int]],
    actions: np.ndarray,
    mu: np.ndarray,
    rewards: np.ndarray,
    policy: str,
) -> pd.DataFrame:
    """The log rows of one round in :data:`LOG_COLUMNS`; mu must be a probability in (0, 1]."""
    mu = np.asarray(mu, dtype=np.float64)
    if ((mu <= 0) | (mu > 1 + 1e-9)).any():
        raise ValueError("mu(a|x) must be in (0, 1]: an action the serving policy could not take was logged")
    return pd.DataFrame(
        {
            "round": np.full(len(actions), round_, dtype=np.int64),
            "context_id": np.asarray(context_ids, dtype=np.int64),
            "user_id": np.asarray(users, dtype=np.int64),
            "history": [list(map(int, h)) for h in histories],
            "action": np.asarray(actions, dtype=np.int64),
            "mu": mu,
            "reward": np.asarray(rewards, dtype=np.int64),
            "policy": policy,
        },
        columns=list(LOG_COLUMNS),
    )


def round_contexts(windows: pd.DataFrame, rounds: int, per_round: int, rng: np.random.Generator) -> pd.DataFrame:
    """``per_round`` distinct windows for each of ``rounds`` rounds (no window served twice), with columns
    ``round`` (1-based) and ``context_id`` (the window's row in ``windows``); the same for every compared method."""
    need = rounds * per_round
    if need > len(windows):
        raise ValueError(
            f"abpo.rounds x abpo.contexts = {need} contexts, but the training split has {len(windows)} windows"
        )
    rows = rng.permutation(len(windows))[:need]
    out = windows.iloc[rows].reset_index(drop=True)
    out.insert(0, "context_id", rows.astype(np.int64))
    out.insert(0, "round", np.repeat(np.arange(1, rounds + 1), per_round))
    return out


def window_futures(windows: pd.DataFrame, interactions: pd.DataFrame, horizon: int) -> list[list[int]]:
    """Per window, the user's next ``horizon`` interactions from its target on (the target first).

    ``interactions`` are in canonical (user, time) order. A window's target is found as the position in its user's
    sequence whose item is the target and whose preceding items end with the window's history."""
    sequences = {int(u): g.to_numpy(dtype=np.int64) for u, g in interactions.groupby("user_id", sort=False)["item_id"]}
    out = []
    for user, history, target in zip(windows["user_id"], windows["history"], windows["item_id"], strict=True):
        seq = sequences[int(user)]
        hist = np.asarray(history, dtype=np.int64)
        found = [
            p
            for p in np.flatnonzero(seq == int(target))
            if p >= len(hist) and np.array_equal(seq[p - len(hist) : p], hist)
        ]
        if not found:
            raise ValueError(f"window of user {user} (target {target}) is not in the user's interactions")
        out.append(seq[found[0] : found[0] + horizon].tolist())
    return out
