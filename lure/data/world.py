"""The simulated world: a catalogue, users with genre tastes and sequential habits, a biased logging policy.

Why simulate: on real logs the true relevance r(u,i) and the exposure probability P(exposed | u,i) are unknown,
so a bias-correction method (IPS, LURE, GDRT) cannot be checked against the truth. Here both are known exactly.
``docs/world.md`` gives the generative model with all formulas; the short version:

* items   i: 1-3 genres G_i, release year, quality q_i ~ N(0, quality_std), latent vector Q_i ~ N(0, I_d),
           Zipf popularity prior pi_i ∝ rank_i^-s where the rank is partly driven by quality;
* users   u: taste theta_u (Dirichlet over ``user_genres`` genres), latent P_u ~ N(0, I_d), activity n_u steps;
* truth    : l(u,i) = b + w * theta_u . G_i + q_i + lam * P_u . Q_i / sqrt(d);   r(u,i) = sigmoid(l(u,i));
* logging  : phi(u,i) = beta * log pi_i + gamma * (l(u,i) + sigma_p * eta_ui);  k items per step without
             replacement (Gumbel-top-k) among the items the user has not clicked yet; propensity = marginal
             inclusion probability (Rosén's approximation);
* clicks   : P(click at step t) = sigmoid(l(u,i) + 3 * seq * (2 * o_t(u,i) - 1))  once the user has clicked,
             where o_t is the overlap of G_i with the user's recent click genres; r(u,i) before the first click;
* titles   : genre words + " (year)"; a latent title prior rho_i ~ N(0, 1), independent of everything else (own
             stream), and the title_prior_share of items with the highest rho get formulaic titles ("Return of the
             ...") from one pool shared by all genres: the language prior a pretrained LLM would carry;
* MAR log  : for a random mar_fraction of users, m uniformly random items with clicks ~ Bernoulli(r(u,i)).
* held-out : after u's training log, one evaluation round: every item u has not clicked is shown independently
             with probability p(u,i) = 1 - exp(-w_ui * theta_u) (the logging weights w = exp(phi), theta_u such
             that sum_i p = eval_exposures_per_user; Poisson sampling, so p is exact) and clicked with the static
             r(u,i). These clicks are the test set; ``World.exposure_prob`` is p. Hence, with the true p, the
             Horvitz-Thompson (IPS) estimate of sum_i c(i) r(u,i) is unbiased (docs/world.md, "The estimand").

Everything is drawn from ``numpy.random.default_rng`` streams derived from the seed (no global state), each
component from its own stream so that changing a logging knob leaves the catalogue, users and truth unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from lure.data.vocab import FORMULAIC_FRAMES, GENRE_WORDS, GENRES, roman
from lure.display import progress
from lure.rng import generator, stream
from lure.spec.source import WorldSpec

#: Dimension d of the latent user/item vectors (collaborative signal beyond genres).
LATENT_DIM = 8
#: Correlation between item quality and the score that orders the Zipf popularity ranks.
POP_QUALITY_CORR = 0.5
#: Genre frequency in the catalogue: weight of the g-th genre ∝ (g + 1)^-GENRE_FREQ_EXPONENT.
GENRE_FREQ_EXPONENT = 0.7
#: Logit swing of the sequential term at sequential_strength = 1: the click logit moves by ±SEQ_LOGIT_SCALE.
SEQ_LOGIT_SCALE = 3.0
#: Recency decay rho of the recent-genre profile h <- rho * h + (1 - rho) * (genres clicked at this step).
SEQ_DECAY = 0.5
#: Cap on the steps of one user, as a multiple of activity_mean (keeps the lognormal tail finite).
ACTIVITY_CAP = 10.0
#: Relevance is clipped to [R_EPS, 1 - R_EPS] so it is strictly inside (0, 1) even in float32.
R_EPS = 1e-6
#: Seconds a user spends per slate position: the item at position j of a step is shown at step_time + j * this.
POSITION_SECONDS = 15
#: Relative weight of each hour of day (UTC) for the step times: low at night, lunch bump, evening peak.
HOUR_WEIGHTS = np.array(
    [0.35, 0.20, 0.12, 0.08, 0.06, 0.07, 0.12, 0.25, 0.40, 0.45, 0.50, 0.55,
     0.70, 0.65, 0.55, 0.55, 0.60, 0.75, 0.95, 1.20, 1.45, 1.50, 1.25, 0.70]
)  # fmt: skip
#: Relative weight of each weekday, Monday first: Friday and the weekend are busier.
WEEKDAY_WEIGHTS = np.array([0.90, 0.90, 0.95, 1.00, 1.15, 1.35, 1.30])
#: Logging logits are floored at (row max - PHI_FLOOR), so softmax weights stay >= e^-60 (float32-safe).
PHI_FLOOR = 60.0
#: Target number of float32 cells of one user chunk (chunk users = CHUNK_CELLS // n_items, at most 4096).
CHUNK_CELLS = 1 << 21

# Independent random streams, one per component (named streams of lure.rng).
_ITEMS, _USERS, _LOGGING, _TIMES, _MAR, _EVAL = range(6)
_STREAM_NAMES = ("world.items", "world.users", "world.logging", "world.times", "world.mar", "world.evaluation")
#: Stream of the title prior and the formulaic titles: its own, so the prior never moves any other draw.
TITLE_PRIOR_STREAM = "world.titles.prior"
#: Columns of ``World.evaluation`` (the held-out round).
EVALUATION_COLUMNS = ["user_id", "item_id", "position", "timestamp", "propensity", "relevance", "clicked"]
#: Seconds between a user's last training step and the held-out evaluation round.
EVAL_GAP_SECONDS = 86_400


@dataclass(frozen=True)
class World:
    """One draw of the simulated world. Ids are positions: item i is row i of ``items`` and column i of ``relevance``.

    * ``genres``: the genre names in use (the first ``n_genres`` of ``lure.data.vocab.GENRES``).
    * ``items``: item_id, title (unique, ends with " (year)"), genres ("|"-joined, most frequent genre first),
      year, popularity_prior (pi_i, sums to 1), quality (q_i), title_prior (rho_i ~ N(0, 1), independent of
      genres, popularity, quality and relevance), formulaic_title (the item's title is a formulaic frame: the
      ``title_prior_share`` of items with the highest rho).
    * ``users``: user_id, activity (number of exposure steps), preferred_genres ("|"-joined by decreasing
      weight), genre_weights (their Dirichlet weights, same order), in_mar (has a missing-at-random log).
    * ``item_genres``: bool (n_items, n_genres) multi-hot matrix G.
    * ``relevance``: float32 (n_users, n_items), the static true relevance r(u,i) in (0, 1).
    * ``exposures``: one row per logged exposure, sorted by (user_id, step, position): user_id, item_id, step,
      position (rank in the slate, 0 = first draw), timestamp (int64 unix seconds), draw_prob (softmax
      probability of the first draw), propensity (marginal probability that the item is in the user's slate at
      a step = P(exposed | u, i) per step), relevance (r(u,i)), click_prob (the dynamic click probability),
      clicked (bool).
    * ``mar``: user_id, item_id, relevance, clicked: the uniformly random log, sorted by (user_id, item_id).
    * ``evaluation``: the held-out evaluation round, one row per exposed item, sorted by (user_id, position):
      user_id, item_id, position (by decreasing propensity), timestamp (a day after the user's last training
      step), propensity (p(u,i)), relevance (r(u,i)), clicked (Bernoulli(r), no sequential term).
    * ``exposure_prob``: float32 (n_users, n_items), p(u,i) of the evaluation round for every pair: the exact
      probability that u is shown i there (0 for the items u clicked in training, which are not candidates).
      The ground truth an exposure propensity model should recover for the test set, and IPS's denominator.
    """

    genres: tuple[str, ...]
    items: pd.DataFrame
    users: pd.DataFrame
    item_genres: np.ndarray
    relevance: np.ndarray
    exposures: pd.DataFrame
    mar: pd.DataFrame
    start_epoch: int
    exposure_prob: np.ndarray
    evaluation: pd.DataFrame


def generate_world(spec: WorldSpec, seed: int) -> World:
    """Draw a world from ``spec``; the same (spec, seed) always gives the same world, bit for bit."""
    streams = _streams(seed)
    genres = GENRES[: spec.n_genres]
    base, items_rng = _draw_base(spec, streams)
    titles = _titles(base.item_genres, base.year, genres, items_rng)
    title_prior, formulaic, titles = _title_prior(spec, seed, titles, base.item_genres, base.year, genres)

    relevance = np.empty((spec.n_users, spec.n_items), dtype=np.float32)
    exposure_prob = np.empty((spec.n_users, spec.n_items), dtype=np.float32)
    exposures, activity, held_out = _simulate_log(
        spec, streams[_LOGGING], streams[_EVAL], base, relevance, exposure_prob
    )
    start_epoch = int(dt.datetime.fromisoformat(spec.start_date).replace(tzinfo=dt.UTC).timestamp())
    step_times = _step_times(spec, np.random.default_rng(streams[_TIMES]), activity, start_epoch)
    offsets = np.concatenate([[0], np.cumsum(activity)[:-1]])
    row_step = offsets[exposures["user_id"]] + exposures["step"]
    exposures["timestamp"] = step_times[row_step] + POSITION_SECONDS * exposures["position"].astype(np.int64)
    last_step = step_times[offsets + activity - 1]
    held_out["timestamp"] = (
        last_step[held_out["user_id"]] + EVAL_GAP_SECONDS + POSITION_SECONDS * held_out["position"].astype(np.int64)
    )

    mar, in_mar = _mar_log(spec, np.random.default_rng(streams[_MAR]), relevance)
    item_genres, chosen, taste = base.item_genres, base.chosen, base.taste

    items = pd.DataFrame(
        {
            "item_id": np.arange(spec.n_items, dtype=np.int64),
            "title": titles,
            # Genre indices ascending = most frequent genre first.
            "genres": ["|".join(genres[g] for g in np.flatnonzero(row)) for row in item_genres],
            "year": base.year.astype(np.int64),
            "popularity_prior": base.prior,
            "quality": base.quality.astype(np.float32),
            "title_prior": title_prior,
            "formulaic_title": formulaic,
        }
    )
    users = pd.DataFrame(
        {
            "user_id": np.arange(spec.n_users, dtype=np.int64),
            "activity": activity.astype(np.int64),
            "preferred_genres": ["|".join(genres[g] for g in row) for row in chosen],
            "genre_weights": [[float(taste[u, g]) for g in row] for u, row in enumerate(chosen)],
            "in_mar": in_mar,
        }
    )
    columns = ["user_id", "item_id", "step", "position", "timestamp", "draw_prob", "propensity", "relevance",
               "click_prob", "clicked"]  # fmt: skip
    return World(
        genres=genres,
        items=items,
        users=users,
        item_genres=item_genres,
        relevance=relevance,
        exposures=pd.DataFrame({c: exposures[c] for c in columns}, copy=False),
        mar=mar,
        start_epoch=start_epoch,
        exposure_prob=exposure_prob,
        evaluation=pd.DataFrame({c: held_out[c] for c in EVALUATION_COLUMNS}, copy=False),
    )


class _Base(NamedTuple):
    """Catalogue and users: everything drawn before the log is simulated."""

    item_genres: np.ndarray  # bool (n_items, n_genres)
    year: np.ndarray
    quality: np.ndarray  # q_i
    prior: np.ndarray  # pi_i
    q_latent: np.ndarray  # Q_i (n_items, d)
    taste: np.ndarray  # theta_u (n_users, n_genres)
    chosen: np.ndarray  # preferred genre indices, by decreasing weight
    activity: np.ndarray  # drawn n_u
    p_latent: np.ndarray  # P_u (n_users, d)


def _streams(seed: int) -> list[np.random.SeedSequence]:
    return [stream(seed, name) for name in _STREAM_NAMES]


def _draw_base(spec: WorldSpec, streams: list[np.random.SeedSequence]) -> tuple[_Base, np.random.Generator]:
    """Items then users, each from its own stream; returns the items generator too (titles draw from it next)."""
    items_rng = np.random.default_rng(streams[_ITEMS])
    item_genres, year, quality, prior, q_latent = _draw_items(spec, items_rng)
    taste, chosen, activity, p_latent = _draw_users(spec, np.random.default_rng(streams[_USERS]))
    return _Base(item_genres, year, quality, prior, q_latent, taste, chosen, activity, p_latent), items_rng


def logging_logits(spec: WorldSpec, seed: int, user_ids: np.ndarray) -> np.ndarray:
    """The logging policy's static logits phi(u, i) for the given users (float32, len(user_ids) x n_items).

    Recomputed from the seed exactly as ``generate_world`` draws them, so propensities can be checked from
    scratch: at a user's step t the slate is Gumbel-top-k of phi over the items not clicked before t.
    """
    streams = _streams(seed)
    base, _ = _draw_base(spec, streams)
    gf = base.item_genres.astype(np.float32)
    user_ids = np.asarray(user_ids, dtype=np.int64)
    out = np.empty((len(user_ids), spec.n_items), dtype=np.float32)
    chunk = _chunk_size(spec.n_items)
    for c in np.unique(user_ids // chunk):
        lo, hi = int(c) * chunk, min(spec.n_users, (int(c) + 1) * chunk)
        _, _, phi = _chunk_policy(spec, base, gf, lo, hi, _chunk_rng(streams[_LOGGING], int(c)))
        here = user_ids // chunk == c
        out[here] = phi[user_ids[here] - lo]
    return out


# ----------------------------------------------------------------------------------------------------- items


def _draw_items(
    spec: WorldSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n, n_genres = spec.n_items, spec.n_genres
    # Genres: m_i ~ U{min..max} distinct genres drawn ∝ (g+1)^-0.7 without replacement (Gumbel-top-m).
    genre_logw = -GENRE_FREQ_EXPONENT * np.log(np.arange(1, n_genres + 1))
    n_per_item = rng.integers(spec.genres_per_item_min, spec.genres_per_item_max + 1, size=n)
    order = np.argsort(-(genre_logw + rng.gumbel(size=(n, n_genres))), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n_genres)[None, :].repeat(n, 0), axis=1)
    item_genres = rank < n_per_item[:, None]

    # Year: density rising linearly towards year_max (more releases in recent years): year = min + floor(span*sqrt(u)).
    span = spec.year_max - spec.year_min + 1
    year = spec.year_min + np.minimum(np.floor(span * np.sqrt(rng.random(n))), span - 1).astype(np.int64)

    quality = rng.normal(0.0, spec.quality_std, size=n)
    # Zipf prior pi_i = rank_i^-s / sum_j rank_j^-s, ranks ordered by z_i = c*q_i/sd + sqrt(1-c^2)*eps_i, so popular
    # items are better on average (c = POP_QUALITY_CORR) but popularity is not quality.
    std_q = quality / spec.quality_std if spec.quality_std > 0 else np.zeros(n)
    z = POP_QUALITY_CORR * std_q + np.sqrt(1 - POP_QUALITY_CORR**2) * rng.normal(size=n)
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(-z, kind="stable")] = np.arange(1, n + 1)
    prior = ranks.astype(np.float64) ** -spec.zipf_exponent
    prior /= prior.sum()

    q_latent = rng.normal(size=(n, LATENT_DIM)).astype(np.float32)
    return item_genres, year, quality, prior, q_latent


def _titles(item_genres: np.ndarray, year: np.ndarray, genres: tuple[str, ...], rng: np.random.Generator) -> list[str]:
    """Readable, unique titles: genre-flavoured words + " (year)"; repeats get a sequel numeral (II, III, ...).

    Each word is taken from one of the item's own genres, so the title carries the genre signal. Patterns:
    "{Adj} {Noun}", "{Adj} {Noun} {Role}", "The {Adj} {Role}". Dedupe runs in item order, so it is deterministic.
    """
    n = len(year)
    pattern = rng.choice(3, size=n, p=[0.35, 0.45, 0.20])
    # For each word slot pick one of the item's genres uniformly, then a word from that genre's list.
    picks = rng.integers(0, 1 << 30, size=(n, 3)) % item_genres.sum(axis=1)[:, None]
    words = rng.integers(0, 1 << 30, size=(n, 3))
    taken: set[str] = set()
    sequel: dict[str, int] = {}  # last numeral used per "base (year)"
    titles = []
    for i in range(n):
        slot = np.flatnonzero(item_genres[i])[picks[i]]
        adjectives = GENRE_WORDS[genres[slot[0]]].adjectives
        nouns = GENRE_WORDS[genres[slot[1]]].nouns
        roles = GENRE_WORDS[genres[slot[2]]].roles
        adj = adjectives[words[i, 0] % len(adjectives)]
        noun = nouns[words[i, 1] % len(nouns)]
        role = roles[words[i, 2] % len(roles)]
        base = (f"{adj} {noun}", f"{adj} {noun} {role}", f"The {adj} {role}")[pattern[i]]
        titles.append(_unique_title(base, int(year[i]), taken, sequel))
    return titles


def _unique_title(base: str, year: int, taken: set[str], sequel: dict[str, int]) -> str:
    """``"{base} ({year})"``, or with the first free sequel numeral before the year ("... II (y)", "... III (y)")
    when that title is taken; records the result in ``taken`` and the numeral used in ``sequel``."""
    key = f"{base} ({year})"
    number, title = sequel.get(key, 1), key
    while title in taken:
        number += 1
        title = f"{base} {roman(number)} ({year})"
    sequel[key] = number
    taken.add(title)
    return title


def _title_prior(
    spec: WorldSpec,
    seed: int,
    titles: list[str],
    item_genres: np.ndarray,
    year: np.ndarray,
    genres: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The latent title prior rho_i ~ N(0, 1) and the formulaic titles of the items with the highest rho.

    Why: in the world without it, what a history-blind LLM finds likely is only what is popular; a pretrained LLM
    also finds some titles likelier than others for reasons that have nothing to do with the user or the log
    (familiar phrasing). rho is that reason, drawn from its own stream (:data:`TITLE_PRIOR_STREAM`) and from
    nothing else, so it is independent of genres, popularity, quality and relevance, and the rest of the world is
    bit-for-bit the same whatever ``title_prior_share`` is. The round(share * n) items with the highest rho get
    "{frame} (year)": a frame of :data:`lure.data.vocab.FORMULAIC_FRAMES` (shared by all genres) whose slot is a
    noun or a role of one of the item's own genres, so the title keeps its genre signal and the frame adds none.
    Every item's frame and filler are drawn whether it is formulaic or not, so an item's formulaic title does not
    depend on the share. Genre-word titles keep their text (numerals included); formulaic titles are made unique
    against all of them, in item order. The pretraining corpus of the tiny LLM weights titles by rho
    (``lure.llm.pretrain``).

    Returns (rho, formulaic mask, titles).
    """
    n = len(titles)
    rng = generator(seed, TITLE_PRIOR_STREAM)
    prior = rng.standard_normal(n)
    frame = rng.integers(0, len(FORMULAIC_FRAMES), size=n)
    slot = rng.integers(0, 1 << 30, size=n) % item_genres.sum(axis=1)  # which of the item's genres fills the slot
    use_noun = rng.random(n) < 0.5  # a noun ("Return of the Vault") or a role ("Return of the Detective")
    word = rng.integers(0, 1 << 30, size=n)
    formulaic = np.zeros(n, dtype=bool)
    formulaic[np.argsort(-prior, kind="stable")[: int(round(spec.title_prior_share * n))]] = True
    out = list(titles)
    taken = {t for t, f in zip(titles, formulaic, strict=True) if not f}
    sequel: dict[str, int] = {}
    for i in np.flatnonzero(formulaic):
        words = GENRE_WORDS[genres[np.flatnonzero(item_genres[i])[slot[i]]]]
        pool = words.nouns if use_noun[i] else words.roles
        base = FORMULAIC_FRAMES[frame[i]].format(pool[word[i] % len(pool)])
        out[i] = _unique_title(base, int(year[i]), taken, sequel)
    return prior, formulaic, out


# ----------------------------------------------------------------------------------------------------- users


def _draw_users(spec: WorldSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n, n_genres, m = spec.n_users, spec.n_genres, spec.user_genres
    # Preferred genres: m distinct genres ∝ catalogue genre frequency (Gumbel-top-m); weights ~ Dirichlet(1,...,1).
    genre_logw = -GENRE_FREQ_EXPONENT * np.log(np.arange(1, n_genres + 1))
    chosen = np.argsort(-(genre_logw + rng.gumbel(size=(n, n_genres))), axis=1, kind="stable")[:, :m]
    weights = rng.dirichlet(np.ones(m), size=n)
    # Order each user's preferred genres by decreasing weight (readable truth table).
    by_weight = np.argsort(-weights, axis=1, kind="stable")
    chosen = np.take_along_axis(chosen, by_weight, axis=1)
    weights = np.take_along_axis(weights, by_weight, axis=1)
    taste = np.zeros((n, n_genres), dtype=np.float32)
    np.put_along_axis(taste, chosen, weights.astype(np.float32), axis=1)

    # Activity n_u = clip(round(LogNormal(mu, sigma)), 1, cap) with mu = log(mean) - sigma^2/2 so E[LogNormal] = mean.
    mu = np.log(spec.activity_mean) - spec.activity_sigma**2 / 2
    cap = max(1, int(np.ceil(ACTIVITY_CAP * spec.activity_mean)))
    activity = np.clip(np.rint(rng.lognormal(mu, spec.activity_sigma, size=n)), 1, cap).astype(np.int64)

    p_latent = rng.normal(size=(n, LATENT_DIM)).astype(np.float32)
    return taste, chosen, activity, p_latent


# ------------------------------------------------------------------------------------- truth, logging, clicks


def relevance_logits(
    spec: WorldSpec,
    taste: np.ndarray,
    p_latent: np.ndarray,
    item_genres_f: np.ndarray,
    quality: np.ndarray,
    q_latent: np.ndarray,
) -> np.ndarray:
    """l(u,i) = b + w * theta_u . G_i + q_i + lam * P_u . Q_i / sqrt(d)  (float32, users x items)."""
    logits = spec.taste_strength * (taste @ item_genres_f.T)
    logits += (spec.latent_strength / np.sqrt(LATENT_DIM)) * (p_latent @ q_latent.T)
    logits += (spec.relevance_intercept + quality).astype(np.float32)[None, :]
    return logits


def inclusion_probabilities(weights: np.ndarray, k: int) -> np.ndarray:
    """Marginal probability that each item is among k draws without replacement (successive sampling).

    ``weights`` holds one row of non-negative softmax weights w_i = exp(phi_i) per slate (any scale; the draw
    probability is p_i = w_i / sum_j w_j; w_i = 0 means "not drawable"). Exact inclusion probabilities of
    Gumbel-top-k (= successive sampling) need a sum over subsets; we use Rosén's (1972) asymptotic formula
    pi_i = 1 - exp(-w_i * theta), with theta solving sum_i pi_i = k, so the propensities of a slate sum to k.
    It is exact for uniform weights (pi_i = k/n) and within a few percent of Monte Carlo otherwise (tests check
    it); the naive 1 - (1 - p_i)^k ignores that head items leave the pool once drawn and underestimates tail
    items by up to an order of magnitude under strong popularity bias.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = (w / w.max(axis=1, keepdims=True)).astype(np.float32)
    theta, _ = _solve_theta(w, k, k / w.sum(axis=1, dtype=np.float64))
    return _rosen(w, theta[:, None])


def _rosen(w: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """pi = 1 - exp(-w * theta) in float64, floored at the draw probability's scale so drawable items stay > 0."""
    return np.maximum(-np.expm1(-w.astype(np.float64) * theta), np.finfo(np.float64).tiny)


def _solve_theta(
    w: np.ndarray, k: int, theta: np.ndarray, tol: float = 1e-7, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Solve f(theta) = sum_i (1 - exp(-w_i theta)) - k = 0 per row of float32 weights by Newton's method.

    f is increasing and concave, so Newton started left of the root (f <= 0: theta0 = k / sum w always is)
    converges monotonically without overshooting; steps are clipped at 0. Exponentials are float32 (5-10x
    faster than float64 on AVX2 machines), sums float64: theta is accurate to ~1e-6 relative, far below the
    error of the approximation itself. Returns theta and the slope f'(theta) at the last evaluated point (used
    to warm-start the next solve when items leave the support).
    """
    theta = np.asarray(theta, dtype=np.float64).copy()
    slope = np.zeros_like(theta)
    n = w.shape[1]
    todo = np.arange(w.shape[0])
    for _ in range(max_iter):
        if todo.size == 0:
            break
        wt = w if todo.size == w.shape[0] else w[todo]
        e = wt * theta[todo, None].astype(np.float32)
        np.exp(np.negative(e, out=e), out=e)
        f = n - e.sum(axis=1, dtype=np.float64) - k  # sum_i (1 - e_i) - k
        np.multiply(e, wt, out=e)
        s = e.sum(axis=1, dtype=np.float64)
        slope[todo] = s
        step = np.maximum(np.where(s > 0, -f / np.where(s > 0, s, 1.0), 0.0), 0.0)
        theta[todo] += step
        todo = todo[step > tol * theta[todo]]
    return theta, slope


def _chunk_size(n_items: int) -> int:
    return int(max(1, min(4096, CHUNK_CELLS // n_items)))


def _chunk_rng(stream: np.random.SeedSequence, chunk: int) -> np.random.Generator:
    """One stream per user chunk, keyed by its index (no spawn() state, so any rerun draws the same numbers)."""
    return np.random.default_rng(np.random.SeedSequence(stream.entropy, spawn_key=(*stream.spawn_key, chunk)))


def _chunk_policy(
    spec: WorldSpec, base: _Base, gf: np.ndarray, lo: int, hi: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relevance logits l, relevance r and logging logits phi of users lo..hi (the first draws of the chunk rng).

    phi(u,i) = beta * log pi_i + gamma * (l(u,i) + sigma_p * eta_ui), eta ~ N(0, 1) per (u, i), fixed in time:
    the platform's personal score is a noisy estimate of the user's relevance logit.
    """
    logits = relevance_logits(spec, base.taste[lo:hi], base.p_latent[lo:hi], gf, base.quality, base.q_latent)
    rel = 1.0 / (1.0 + np.exp(-logits))
    np.clip(rel, R_EPS, 1 - R_EPS, out=rel)
    noise = rng.standard_normal(size=logits.shape, dtype=np.float32)
    phi = (spec.personalization * (logits + spec.personal_noise * noise)).astype(np.float32)
    phi += (spec.exposure_bias * np.log(base.prior)).astype(np.float32)[None, :]
    # Floor: no item is less likely than e^-PHI_FLOOR times the top one. It only binds at extreme knob values and
    # keeps every softmax weight and Rosén's tau representable in float32 (sampler and propensity both use it).
    np.maximum(phi, phi.max(axis=1, keepdims=True) - PHI_FLOOR, out=phi)
    return logits, rel, phi


def click_probability(
    logits: np.ndarray, relevance: np.ndarray, overlap: np.ndarray, has_clicked: np.ndarray, strength: float
) -> np.ndarray:
    """c(u, i) of shown items (rows = users): r(u, i) before the user's first click, afterwards
    sigma(l(u, i) + SEQ_LOGIT_SCALE * s * (2 * o(u, i) - 1)), o = overlap of G_i with the recent-genre profile.

    One formula for the simulated log and the environment (``lure.policy.environment``); keeps the input dtype.
    """
    shift = SEQ_LOGIT_SCALE * strength * (2.0 * overlap - 1.0)
    dynamic = 1.0 / (1.0 + np.exp(-(logits + shift)))
    return np.where(has_clicked[:, None], dynamic, relevance)


def next_recent_genres(recent: np.ndarray, has_clicked: np.ndarray, step_genres: np.ndarray) -> np.ndarray:
    """h <- SEQ_DECAY * h + (1 - SEQ_DECAY) * (mean genre distribution of the step's clicks); set at the first click."""
    return np.where(has_clicked[:, None], SEQ_DECAY * recent + (1 - SEQ_DECAY) * step_genres, step_genres)


def _simulate_log(
    spec: WorldSpec,
    stream: np.random.SeedSequence,
    eval_stream: np.random.SeedSequence,
    base: _Base,
    relevance_out: np.ndarray,
    exposure_out: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Fill ``relevance_out`` and ``exposure_out`` and simulate the logged exposures and clicks, chunk by chunk,
    then each user's held-out evaluation round (:func:`_evaluation_round`, its own stream).

    Users of a chunk are processed together, one step at a time: at step t the users with n_u > t are active
    (users are sorted by activity within the chunk, so they are a prefix). Every exposure lands at row
    (offset_u + t) * k + position of preallocated arrays, which leaves them sorted by (user, step, position).
    Returns the exposure columns and the number of steps each user actually took (a user leaves early when no
    more than k unclicked items remain; rows of steps not taken are dropped).

    ``exposure_out`` gets the evaluation round's exposure probabilities p(u, i).
    """
    n_users, n_items, k = spec.n_users, spec.n_items, spec.exposures_per_step
    activity = base.activity
    gf = base.item_genres.astype(np.float32)
    gn = gf / gf.sum(axis=1, keepdims=True)  # each item's genres as a distribution (rows sum to 1)
    offsets = np.concatenate([[0], np.cumsum(activity)[:-1]])
    total = int(activity.sum()) * k
    out = {
        "user_id": np.full(total, -1, dtype=np.int64),
        "item_id": np.empty(total, dtype=np.int64),
        "step": np.empty(total, dtype=np.int64),
        "position": np.empty(total, dtype=np.int16),
        "draw_prob": np.empty(total, dtype=np.float64),
        "propensity": np.empty(total, dtype=np.float64),
        "relevance": np.empty(total, dtype=np.float32),
        "click_prob": np.empty(total, dtype=np.float32),
        "clicked": np.empty(total, dtype=bool),
    }
    steps_taken = np.zeros(n_users, dtype=np.int64)
    held_out: list[dict[str, np.ndarray]] = []
    positions = np.arange(k, dtype=np.int64)
    chunk = _chunk_size(n_items)
    starts = range(0, n_users, chunk)
    # Large worlds take minutes: show progress over user chunks (a no-op for the default single-chunk world).
    for c, lo in enumerate(progress(starts, "simulating users") if len(starts) >= 4 else starts):
        hi = min(n_users, lo + chunk)
        rng = _chunk_rng(stream, c)
        logits, rel, phi = _chunk_policy(spec, base, gf, lo, hi, rng)
        relevance_out[lo:hi] = rel
        # Process users in decreasing activity so the active set at step t is a prefix of the chunk.
        order = np.argsort(-activity[lo:hi], kind="stable")
        users = lo + order
        act = activity[users]
        phi, logits, rel = phi[order], logits[order], rel[order]
        # Unnormalised softmax weights w_i = exp(phi_i - max phi) in (0, 1]; clicked items get w = 0 (never shown
        # again). Propensity pi_i = 1 - exp(-w_i * theta_u) (Rosén), theta_u re-solved when the support changes.
        weights = np.exp(phi - phi.max(axis=1, keepdims=True))
        total_w = weights.sum(axis=1, dtype=np.float64)
        theta, slope = _solve_theta(weights, k, k / total_w)
        dirty = np.zeros(hi - lo, dtype=bool)  # support changed since theta was solved
        gone = np.zeros(hi - lo, dtype=bool)  # left: at most k unclicked items remain
        available = np.full(hi - lo, n_items, dtype=np.int64)
        recent = np.zeros((hi - lo, spec.n_genres), dtype=np.float32)  # h_u: recent click-genre distribution
        seen = np.zeros(hi - lo, dtype=bool)  # has the user clicked anything yet?

        n_active = np.searchsorted(-act, -np.arange(int(act.max())), side="left")  # users with act > t
        for t, m in enumerate(n_active):
            redo = np.flatnonzero(dirty[:m] & ~gone[:m])
            if redo.size:
                theta[redo], slope[redo] = _solve_theta(weights[redo], k, theta[redo])
                dirty[redo] = False
            # Gumbel-top-k: argmax_k (phi + Gumbel) == argmax_k (phi - log E), E ~ Exp(1) (floored so log E is finite).
            keys = rng.standard_exponential(size=(m, n_items), dtype=np.float32)
            np.log(np.maximum(keys, np.float32(1e-38), out=keys), out=keys)
            np.subtract(phi[:m], keys, out=keys)
            top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, 1), axis=1, kind="stable"), 1)
            del keys
            w_top = np.take_along_axis(weights[:m], top, 1)
            draw = w_top / total_w[:m, None]
            propensity = _rosen(w_top, theta[:m, None])
            # Dynamic click probability: sigmoid(l + SCALE * seq * (2 * o - 1)) after the first click, where
            # o = sum_g h_ug * G_ig is the share of the user's recent click-genre mass that item i covers.
            lg = np.take_along_axis(logits[:m], top, 1)
            overlap = np.einsum("ug,ukg->uk", recent[:m], gf[top])
            static = np.take_along_axis(rel[:m], top, 1)
            click_prob = click_probability(lg, static, overlap, seen[:m], spec.sequential_strength).astype(np.float32)
            clicked = (rng.random(size=(m, k), dtype=np.float32) < click_prob) & ~gone[:m, None]

            live = np.flatnonzero(~gone[:m])
            rows = ((offsets[users[live]] + t) * k)[:, None] + positions[None, :]
            out["user_id"][rows] = users[live, None]
            out["item_id"][rows] = top[live]
            out["step"][rows] = t
            out["position"][rows] = positions[None, :]
            out["draw_prob"][rows] = draw[live]
            out["propensity"][rows] = propensity[live]
            out["relevance"][rows] = np.take_along_axis(rel[live], top[live], 1)
            out["click_prob"][rows] = click_prob[live]
            out["clicked"][rows] = clicked[live]
            steps_taken[users[live]] += 1

            # Clicked items leave the user's support; h <- rho * h + (1 - rho) * mean genre distribution of clicks.
            n_clicks = clicked.sum(axis=1)
            clickers = np.flatnonzero(n_clicks > 0)
            if clickers.size:
                cu, ck = np.nonzero(clicked)
                # Warm start for the next solve: removing items lowers f(theta) by delta = sum of their pi and the
                # slope by sum w e^{-w theta}; one Newton step on that stays left of the new root (slope is taken
                # at a point <= theta, so it overestimates f' and under-steps).
                delta = np.bincount(cu, weights=propensity[cu, ck], minlength=m)[clickers]
                lost = np.bincount(cu, weights=w_top[cu, ck] * (1.0 - propensity[cu, ck]), minlength=m)[clickers]
                s_new = slope[clickers] - lost
                theta[clickers] += np.where(s_new > 0, delta / np.where(s_new > 0, s_new, 1.0), 0.0)
                weights[cu, top[cu, ck]] = 0.0
                # Re-sum rather than subtract: a clicked head item can hold all but 1e-20 of the mass.
                total_w[clickers] = weights[clickers].sum(axis=1, dtype=np.float64)
                phi[cu, top[cu, ck]] = -np.inf
                available[clickers] -= n_clicks[clickers]
                dirty[clickers] = True
                gone[clickers] |= available[clickers] <= k
                step_genres = np.einsum("uk,ukg->ug", clicked[clickers].astype(np.float32), gn[top[clickers]])
                step_genres /= n_clicks[clickers, None]
                old = recent[clickers]
                recent[clickers] = next_recent_genres(old, seen[clickers], step_genres)
                seen[clickers] = True
        # The held-out round on the support left after training (clicked items have weight 0).
        prob, round_rows = _evaluation_round(
            spec.eval_exposures_per_user, spec.eval_exploration, weights, rel, _chunk_rng(eval_stream, c)
        )
        exposure_out[users] = prob.astype(np.float32)
        round_rows["user_id"] = users[round_rows.pop("row")]
        held_out.append(round_rows)
    held = {name: np.concatenate([part[name] for part in held_out]) for name in held_out[0]}
    order = np.lexsort((held["position"], held["user_id"]))
    held = {name: col[order] for name, col in held.items()}
    keep = out["user_id"] >= 0
    if keep.all():  # the usual case: nobody ran out of items; avoid copying ~50 bytes x exposures
        return out, steps_taken, held
    return {name: col[keep] for name, col in out.items()}, steps_taken, held


def _evaluation_round(
    expected: int, exploration: float, weights: np.ndarray, relevance: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One held-out round per user row: Poisson sampling of the candidates, clicks ~ Bernoulli(r).

    ``weights`` are the logging policy's softmax weights with the items clicked in training set to 0 (not
    candidates C). p_i = (1 - eps) * (1 - exp(-w_i * theta)) + eps * m / |C|, theta solving
    sum_i (1 - exp(-w_i theta)) = m (the same equation as Rosén's slate propensities), m = ``expected``,
    eps = ``exploration``; so sum_i p_i = m. Every item is an independent Bernoulli(p_i) draw, so p_i is the exact
    exposure probability: Horvitz-Thompson needs nothing else, and eps > 0 bounds the weights 1/p by |C| / (eps m).
    A user with at most 2 * ``expected`` candidates left is shown all of them (p = 1).
    Returns p (float64, rows x items; 0 for non-candidates) and the exposed rows: row (chunk row), item_id,
    position (0 = highest p; ties by item id), propensity, relevance, clicked.
    """
    candidates = weights > 0
    n_cand = candidates.sum(axis=1)
    small = n_cand <= 2 * expected
    prob = np.zeros(weights.shape, dtype=np.float64)
    big = np.flatnonzero(~small)
    if big.size:
        theta, _ = _solve_theta(weights[big], expected, expected / weights[big].sum(axis=1, dtype=np.float64))
        policy = _rosen(weights[big], theta[:, None])
        prob[big] = (1.0 - exploration) * policy + exploration * expected / n_cand[big, None]
    prob[small] = 1.0
    prob[~candidates] = 0.0
    exposed = rng.random(size=prob.shape) < prob
    clicked_draw = rng.random(size=prob.shape, dtype=np.float32) < relevance
    # Position within the round: by decreasing p (the platform shows its likeliest items first), then item id.
    rank = np.argsort(np.argsort(-prob, axis=1, kind="stable"), axis=1, kind="stable")
    row, item = np.nonzero(exposed)
    position = rank[row, item]
    # Renumber positions 0..m-1 within each row (ranks of the exposed items among themselves).
    order = np.lexsort((position, row))
    row, item = row[order], item[order]
    starts = np.searchsorted(row, row, side="left")
    return prob, {
        "row": row,
        "item_id": item.astype(np.int64),
        "position": (np.arange(len(row)) - starts).astype(np.int32),
        "propensity": prob[row, item],
        "relevance": relevance[row, item].astype(np.float32),
        "clicked": clicked_draw[row, item],
    }


# ------------------------------------------------------------------------------------------------------ time


def _step_times(spec: WorldSpec, rng: np.random.Generator, activity: np.ndarray, start_epoch: int) -> np.ndarray:
    """Unix times of every user's steps (flat, user-major), increasing per user, with daily and weekly rhythm.

    Each user is active in a window of f * days (f ~ U(0.1, 1), at least a day) placed uniformly in the log.
    Step hours are drawn from the log's hours with weight HOUR_WEIGHTS[hour] * WEEKDAY_WEIGHTS[weekday] (inverse
    CDF), seconds uniformly within the hour; then sorted per user and pushed apart to at least one slate
    duration (k * POSITION_SECONDS + 60 s) so that every exposure of a user has a distinct, ordered timestamp.
    """
    n_users = len(activity)
    hours = spec.days * 24
    first_weekday = dt.date.fromisoformat(spec.start_date).weekday()
    h = np.arange(hours)
    weekday = (first_weekday + h // 24) % 7
    weight = HOUR_WEIGHTS[h % 24] * WEEKDAY_WEIGHTS[weekday]
    cum = np.concatenate([[0.0], np.cumsum(weight)])

    length = np.clip(np.rint(rng.uniform(0.1, 1.0, size=n_users) * hours), min(24, hours), hours).astype(np.int64)
    start = np.floor(rng.random(n_users) * (hours - length + 1)).astype(np.int64)
    user = np.repeat(np.arange(n_users), activity)
    lo, hi = cum[start][user], cum[start + length][user]
    hour = np.searchsorted(cum, lo + (hi - lo) * rng.random(len(user)), side="right") - 1
    hour = np.clip(hour, start[user], start[user] + length[user] - 1)
    secs = hour * 3600 + rng.integers(0, 3600, size=len(user))
    secs = secs[np.lexsort((secs, user))]

    # Enforce t_j >= t_{j-1} + gap per user: t'_j = j*gap + cummax_j(t_j - j*gap), segments kept apart by a big offset.
    gap = spec.exposures_per_step * POSITION_SECONDS + 60
    offsets = np.concatenate([[0], np.cumsum(activity)[:-1]])
    j = np.arange(len(user)) - offsets[user]
    big = hours * 3600 + int(activity.max()) * gap + 1
    shifted = secs - j * gap + user * big
    secs = np.maximum.accumulate(shifted) - user * big + j * gap
    return start_epoch + secs.astype(np.int64)


# ------------------------------------------------------------------------------------------------------- MAR


def _mar_log(spec: WorldSpec, rng: np.random.Generator, relevance: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Missing-at-random log: mar_fraction of users see m uniformly random distinct items; click ~ Bernoulli(r)."""
    n_users, n_items, m = spec.n_users, spec.n_items, spec.mar_exposures_per_user
    n_mar = int(round(spec.mar_fraction * n_users))
    mar_users = np.sort(rng.choice(n_users, size=n_mar, replace=False)) if n_mar else np.empty(0, np.int64)
    in_mar = np.zeros(n_users, dtype=bool)
    in_mar[mar_users] = True
    chunk = _chunk_size(n_items)
    items = np.empty((n_mar, m), dtype=np.int64)
    for lo in range(0, n_mar, chunk):
        hi = min(n_mar, lo + chunk)
        # m uniform distinct items = the m smallest of n i.i.d. uniform keys; listed in item order.
        keys = rng.random((hi - lo, n_items), dtype=np.float32)
        if m < n_items:
            items[lo:hi] = np.sort(np.argpartition(keys, m - 1, axis=1)[:, :m], axis=1)
        else:
            items[lo:hi] = np.arange(n_items)
    user_col = np.repeat(mar_users, m)
    item_col = items.ravel()
    rel = relevance[user_col, item_col]
    clicked = rng.random(len(rel), dtype=np.float32) < rel
    mar = pd.DataFrame(
        {"user_id": user_col.astype(np.int64), "item_id": item_col, "relevance": rel, "clicked": clicked}
    )
    return mar, in_mar
