"""The simulated world as an environment: serve any policy's slates to world users and draw their clicks from the
truth, with the same click dynamics as the logged data (docs/world.md, "The world as an environment").

Why: offline estimates are one check; ABPO's successive deployments and RecLAIF's simulated online checks need the
users to react to a *new* policy. The environment starts from the end of each user's training log (the items they
clicked are consumed, their recent-genre profile is replayed from those clicks) and then, at every ``serve`` call,

* clicks each served item independently with c(u,i) = r(u,i) before the user's first click, and
  sigma(l(u,i) + SEQ_LOGIT_SCALE * s * (2 * o(u,i) - 1)) afterwards, o = overlap of G_i with the recent-genre
  profile h_u (exactly the training log's model, ``lure.data.world``);
* gives an item the user already clicked probability 0 (consumed: the logging policy never shows it again);
* updates h_u <- SEQ_DECAY * h_u + (1 - SEQ_DECAY) * (mean genre distribution of this step's clicks), or sets it at
  the first click, and marks the clicked items as consumed.

``logging_slates`` draws slates from the world's own logging policy (Gumbel-top-k of phi over the unconsumed
items) with their Rosén inclusion probabilities: the behaviour policy of a bandit log. Randomness comes from the
named stream ``world.environment.<name>`` so that two environments of one world are independent but reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lure.data.world import World, click_probability, inclusion_probabilities, logging_logits, next_recent_genres
from lure.rng import generator
from lure.spec.source import WorldSpec


@dataclass(frozen=True)
class Feedback:
    """One served step: ``clicked`` and ``click_prob`` aligned with the slates (False / 0 at padding, id -1)."""

    clicked: np.ndarray
    click_prob: np.ndarray


class WorldEnvironment:
    """Users of one world who react to served slates; state = consumed items and recent-genre profile per user."""

    def __init__(self, world: World, spec: WorldSpec, seed: int, name: str = "default") -> None:
        if world.relevance.shape != (spec.n_users, spec.n_items):
            raise ValueError(
                f"the world has {world.relevance.shape} users x items, the spec {(spec.n_users, spec.n_items)}"
            )
        self.world, self.spec, self.seed = world, spec, seed
        self._rng = generator(seed, f"world.environment.{name}")
        rel = np.asarray(world.relevance, dtype=np.float64)
        self._logit = np.log(rel) - np.log1p(-rel)  # l(u,i) (r was clipped to [1e-6, 1 - 1e-6])
        self._genres = world.item_genres.astype(np.float64)
        self._genre_dist = self._genres / self._genres.sum(axis=1, keepdims=True)
        self.consumed = np.zeros(world.relevance.shape, dtype=bool)
        self.recent = np.zeros((spec.n_users, len(world.genres)), dtype=np.float64)
        self.has_clicked = np.zeros(spec.n_users, dtype=bool)
        self._phi: np.ndarray | None = None  # the logging policy's logits, computed on first use
        self._replay_training_log()

    def _replay_training_log(self) -> None:
        """Consume the training clicks and rebuild h_u step by step, as the simulation did."""
        log = self.world.exposures
        clicks = log[log["clicked"].to_numpy()]
        users = clicks["user_id"].to_numpy(dtype=np.int64)
        items = clicks["item_id"].to_numpy(dtype=np.int64)
        steps = clicks["step"].to_numpy(dtype=np.int64)
        self.consumed[users, items] = True
        for step in np.unique(steps):
            at = steps == step
            self._update_profiles(users[at], items[at])

    def _update_profiles(self, users: np.ndarray, items: np.ndarray) -> None:
        """h <- rho h + (1 - rho) * mean genre distribution of the step's clicks (set at a user's first click)."""
        if users.size == 0:
            return
        who, inverse = np.unique(users, return_inverse=True)
        mass = np.zeros((len(who), self.recent.shape[1]))
        np.add.at(mass, inverse, self._genre_dist[items])
        mass /= np.bincount(inverse, minlength=len(who))[:, None]
        self.recent[who] = next_recent_genres(self.recent[who], self.has_clicked[who], mass)
        self.has_clicked[who] = True

    def click_probabilities(self, user_ids: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """c(u, i) of every slate cell in the users' current state (0 for consumed items and padding, id -1)."""
        users, slates = self._check(user_ids, slates)
        items = np.where(slates >= 0, slates, 0)
        logit = self._logit[users[:, None], items]
        overlap = np.einsum("ug,ukg->uk", self.recent[users], self._genres[items])
        static = np.asarray(self.world.relevance, dtype=np.float64)[users[:, None], items]
        prob = click_probability(logit, static, overlap, self.has_clicked[users], self.spec.sequential_strength)
        return np.where((slates >= 0) & ~self.consumed[users[:, None], items], prob, 0.0)

    def serve(self, user_ids: np.ndarray, slates: np.ndarray) -> Feedback:
        """Show ``slates[r]`` (item ids, -1 = empty cell) to ``user_ids[r]``; draw clicks and advance the state.

        A user may appear once per call (one step of that user); call again for the next step.
        """
        users, slates = self._check(user_ids, slates)
        if len(np.unique(users)) != len(users):
            raise ValueError("a user can take one step per serve() call; split repeated users across calls")
        for row in slates:
            shown = row[row >= 0]
            if len(np.unique(shown)) != len(shown):
                raise ValueError("a slate shows each item at most once")
        prob = self.click_probabilities(users, slates)
        clicked = self._rng.random(prob.shape) < prob
        rows, cols = np.nonzero(clicked)
        self.consumed[users[rows], slates[rows, cols]] = True
        self._update_profiles(users[rows], slates[rows, cols])
        return Feedback(clicked=clicked, click_prob=prob)

    def logging_slates(self, user_ids: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Slates of the world's logging policy for the users' current state, and each cell's propensity.

        Gumbel-top-k of phi(u, i) over the unconsumed items (k = ``exposures_per_step`` by default); the
        propensity is Rosén's marginal inclusion probability (``lure.data.world.inclusion_probabilities``).
        """
        users = self._check(user_ids, np.zeros((len(user_ids), 1), dtype=np.int64))[0]
        k = k or self.spec.exposures_per_step
        if self._phi is None:  # recomputing phi redraws the catalogue and users: do it once, for everyone
            self._phi = logging_logits(self.spec, self.seed, np.arange(self.spec.n_users))
        phi = self._phi[users].astype(np.float64)
        phi[self.consumed[users]] = -np.inf
        available = np.isfinite(phi).sum(axis=1)
        if (available < k).any():
            raise ValueError(f"some users have fewer than k = {k} unconsumed items left")
        keys = phi + self._rng.gumbel(size=phi.shape)
        top = np.argsort(-keys, axis=1, kind="stable")[:, :k]
        weights = np.exp(phi - phi.max(axis=1, keepdims=True))
        propensity = np.take_along_axis(inclusion_probabilities(weights, k), top, axis=1)
        return top.astype(np.int64), propensity

    def _check(self, user_ids: np.ndarray, slates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        users = np.asarray(user_ids, dtype=np.int64)
        slates = np.asarray(slates, dtype=np.int64)
        if users.ndim != 1 or slates.ndim != 2 or len(users) != len(slates):
            raise ValueError(f"user_ids must be 1-d and slates (users x k), got {users.shape} and {slates.shape}")
        if users.size and (users.min() < 0 or users.max() >= self.spec.n_users):
            raise ValueError(f"user ids must be in [0, {self.spec.n_users})")
        if slates.size and (slates.min() < -1 or slates.max() >= self.spec.n_items):
            raise ValueError(f"slate item ids must be in [0, {self.spec.n_items}) or -1 for an empty cell")
        return users, slates
