"""The world as an environment (lure.policy.environment): its click model is the training log's, state and all."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lure.data.world import generate_world
from lure.policy.environment import WorldEnvironment
from lure.spec.source import WorldSpec

SPEC = WorldSpec(name="world", n_users=200, n_items=150)
SEED = 5


@pytest.fixture(scope="module")
def world():
    return generate_world(SPEC, SEED)


def test_replayed_state_gives_the_logged_click_probabilities(world) -> None:
    """Cut the log before step T, replay it, and the environment's c(u, i) of the slate shown at T is the logged one."""
    log = world.exposures
    for cut in (1, 3, 8):
        before = dataclasses.replace(world, exposures=log[log["step"] < cut])
        env = WorldEnvironment(before, SPEC, SEED)
        at = log[log["step"] == cut]
        users = at["user_id"].unique()[:40]
        slates = np.stack([at.loc[at["user_id"] == u, "item_id"].to_numpy() for u in users])
        logged = np.stack([at.loc[at["user_id"] == u, "click_prob"].to_numpy() for u in users])
        np.testing.assert_allclose(env.click_probabilities(users, slates), logged, rtol=1e-4, atol=1e-6)


def test_click_probability_by_hand_and_consumed_items(world) -> None:
    env = WorldEnvironment(dataclasses.replace(world, exposures=world.exposures.iloc[:0]), SPEC, SEED)
    user = np.array([7])
    # No click yet: c = r(u, i).
    np.testing.assert_allclose(env.click_probabilities(user, np.array([[3, 4]]))[0], world.relevance[7, [3, 4]], 1e-6)
    # Force a click on item 3: h_u becomes item 3's genre distribution; item 4's c = sigma(l + 3 s (2 o - 1)).
    env.consumed[7, 3] = True
    env._update_profiles(np.array([7]), np.array([3]))
    g = world.item_genres.astype(float)
    h = g[3] / g[3].sum()
    o = float(h @ g[4])
    r = float(world.relevance[7, 4])
    want = 1 / (1 + np.exp(-(np.log(r / (1 - r)) + 3.0 * SPEC.sequential_strength * (2 * o - 1))))
    got = env.click_probabilities(user, np.array([[3, 4, -1]]))[0]
    assert got[0] == 0.0 and got[2] == 0.0  # consumed item, empty cell
    assert got[1] == pytest.approx(want, rel=1e-9)


def test_serving_the_logging_policy_clicks_like_the_log(world) -> None:
    """Continuing the users with the world's own logging policy gives the log's click rate (same dynamics)."""
    env = WorldEnvironment(world, SPEC, SEED)
    users = np.arange(SPEC.n_users)
    rates = []
    for _ in range(5):
        slates, propensity = env.logging_slates(users)
        assert slates.shape == (SPEC.n_users, SPEC.exposures_per_step) and (propensity > 0).all()
        assert not env.consumed[users[:, None], slates].any()
        rates.append(env.serve(users, slates).clicked.mean())
    logged = world.exposures["clicked"].mean()
    assert abs(np.mean(rates) - logged) < 0.05, (np.mean(rates), logged)


def test_serve_is_reproducible_and_refuses_bad_input(world) -> None:
    a, b = WorldEnvironment(world, SPEC, SEED), WorldEnvironment(world, SPEC, SEED)
    slates = np.tile(np.arange(10), (3, 1))
    np.testing.assert_array_equal(a.serve([0, 1, 2], slates).clicked, b.serve([0, 1, 2], slates).clicked)
    with pytest.raises(ValueError, match="one step per serve"):
        a.serve([0, 0], slates[:2])
    with pytest.raises(ValueError, match="at most once"):
        a.serve([0], np.array([[1, 1]]))
    with pytest.raises(ValueError, match="slate item ids"):
        a.serve([0], np.array([[SPEC.n_items]]))
