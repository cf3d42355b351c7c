"""Bandit logs: the softmax serving policy, the draws and their recorded probabilities, and both feedback rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lure.abpo.logs import LOG_COLUMNS, draw_actions, horizon_feedback, policy_log, softmax_policy, world_feedback


def test_softmax_policy_by_hand() -> None:
    # scores 0, ln 2, ln 3 at T = 1: probabilities 1/6, 2/6, 3/6; at T = 0.5 the squares: 1/14, 4/14, 9/14
    s = np.array([[0.0, math.log(2), math.log(3)]])
    assert softmax_policy(s, 1.0)[0] == pytest.approx([1 / 6, 2 / 6, 3 / 6])
    assert softmax_policy(s, 0.5)[0] == pytest.approx([1 / 14, 4 / 14, 9 / 14])
    with pytest.raises(ValueError, match="temperature"):
        softmax_policy(s, 0.0)


def test_draws_follow_the_probabilities_and_record_them() -> None:
    probs = np.tile([0.1, 0.6, 0.3], (20_000, 1))
    actions, mu = draw_actions(probs, np.random.default_rng(0))
    freq = np.bincount(actions, minlength=3) / len(actions)
    assert freq == pytest.approx([0.1, 0.6, 0.3], abs=4 * math.sqrt(0.25 / len(actions)))
    assert (mu == probs[0][actions]).all()
    with pytest.raises(ValueError, match="sum to 1"):
        draw_actions(np.array([[0.5, 0.2]]), np.random.default_rng(0))


def test_feedback_rules() -> None:
    relevance = np.array([[0.0, 1.0], [0.25, 0.0]])
    rng = np.random.default_rng(1)
    assert world_feedback(relevance, np.array([0, 0]), np.array([0, 1]), rng).tolist() == [0, 1]
    clicks = world_feedback(relevance, np.zeros(40_000, int) + 1, np.zeros(40_000, int), rng)
    assert clicks.mean() == pytest.approx(0.25, abs=4 * math.sqrt(0.25 * 0.75 / 40_000))
    futures = [[5, 7, 9], [1], []]
    assert horizon_feedback(futures, np.array([9, 1, 3]), 2).tolist() == [0, 1, 0]  # 9 is third: beyond horizon 2
    assert horizon_feedback(futures, np.array([9, 1, 3]), 3).tolist() == [1, 1, 0]


def test_log_rows() -> None:
    log = policy_log(0, [3, 4], [0, 1], [[1, 2], []], np.array([5, 6]), np.array([0.5, 1.0]), np.array([1, 0]), "sft")
    assert tuple(log.columns) == LOG_COLUMNS and log["history"].tolist() == [[1, 2], []]
    with pytest.raises(ValueError, match="mu"):
        policy_log(0, [3], [0], [[]], np.array([5]), np.array([0.0]), np.array([1]), "sft")


def test_round_contexts_are_disjoint_and_the_same_for_a_seed() -> None:
    from lure.abpo.logs import round_contexts

    windows = pd.DataFrame({"user_id": np.arange(10), "history": [[i] for i in range(10)], "item_id": np.arange(10)})
    a = round_contexts(windows, 3, 3, np.random.default_rng(1))
    b = round_contexts(windows, 3, 3, np.random.default_rng(1))
    assert a.equals(b)
    assert a["round"].tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert a["context_id"].nunique() == 9  # no window served twice
    assert (windows.loc[a["context_id"], "user_id"].to_numpy() == a["user_id"].to_numpy()).all()
    with pytest.raises(ValueError, match="abpo.rounds x abpo.contexts = 12"):
        round_contexts(windows, 4, 3, np.random.default_rng(1))


def test_window_futures_start_at_the_target() -> None:
    from lure.abpo.logs import window_futures

    interactions = pd.DataFrame({"user_id": [0] * 6 + [1] * 3, "item_id": [5, 6, 7, 5, 6, 8, 1, 2, 3]})
    windows = pd.DataFrame({"user_id": [0, 0, 1], "history": [[5, 6], [7, 5, 6], [1]], "item_id": [7, 8, 2]})
    # user 0's second "5, 6" is followed by 8, not 7: each window finds its own position
    assert window_futures(windows, interactions, 3) == [[7, 5, 6], [8], [2, 3]]
    with pytest.raises(ValueError, match="not in the user's interactions"):
        window_futures(pd.DataFrame({"user_id": [1], "history": [[2]], "item_id": [1]}), interactions, 2)


def test_ips_on_world_feedback_estimates_the_true_ctr() -> None:
    """The estimand check: the logged reward's mean is r(u, a), so IPS/SNIPS from a softmax log estimate the
    target policy's sum_a pi(a|x) r(u, a), the true CTR the evaluation reports."""
    from lure.estimators import policy_value_ips, policy_value_snips

    rng = np.random.default_rng(0)
    n_users, n_items, n = 50, 20, 200_000
    relevance = rng.uniform(0.01, 0.6, size=(n_users, n_items))
    mu_probs = softmax_policy(rng.normal(size=(n_users, n_items)), 1.0)
    pi_probs = softmax_policy(rng.normal(size=(n_users, n_items)) * 2, 1.0)
    users = rng.integers(0, n_users, size=n)
    actions, mu = draw_actions(mu_probs[users], rng)
    rewards = world_feedback(relevance, users, actions, rng)
    truth = float((pi_probs[users] * relevance[users]).sum(axis=1).mean())
    pi = pi_probs[users, actions]
    assert policy_value_ips(rewards, pi, mu) == pytest.approx(truth, rel=0.03)
    assert policy_value_snips(rewards, pi, mu) == pytest.approx(truth, rel=0.03)
    assert rewards.mean() != pytest.approx(truth, rel=0.03)  # the on-policy mean of the log is not pi's CTR
