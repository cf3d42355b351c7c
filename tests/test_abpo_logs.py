"""Bandit logs: the softmax serving policy, the draws and their recorded probabilities, and both feedback rules."""

from __future__ import annotations

import math

import numpy as np
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
