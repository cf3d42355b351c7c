"""Properties of the simulated world: each test checks one claim of docs/world.md and can fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from lure.data.canonical import gini
from lure.data.vocab import FORMULAIC_FRAMES, GENRE_WORDS, GENRES
from lure.data.world import generate_world, inclusion_probabilities, logging_logits
from lure.spec.source import MAX_GENRES, WorldSpec

SMALL = {"n_users": 150, "n_items": 120}


@pytest.fixture(scope="module")
def world(world_150x120_seed7):
    """``generate_world(WorldSpec(**SMALL), seed=7)``, built once per session (conftest.py)."""
    return world_150x120_seed7


def test_vocabulary_covers_every_allowed_genre():
    assert len(GENRES) == MAX_GENRES == len(set(GENRES))


def test_titles_unique_and_end_with_year(world):
    items = world.items
    assert items["title"].is_unique
    for title, year in zip(items["title"], items["year"], strict=True):
        assert title.endswith(f" ({year})")
    # Forcing many collisions (tiny vocabulary per item, one year) still yields unique titles.
    crowded = generate_world(
        WorldSpec(
            n_users=10, n_items=3000, n_genres=2, user_genres=1, genres_per_item_max=1, year_min=2000, year_max=2001
        ),
        seed=0,
    )
    assert crowded.items["title"].is_unique
    assert crowded.items["title"].str.contains(r" [IVXLCDM]+ \(\d{4}\)$").any()


#: A formulaic title: one of the frames with its slot filled, an optional sequel numeral, the year.
FORMULAIC = "^(?:" + "|".join(f.replace("{}", ".+") for f in FORMULAIC_FRAMES) + r")(?: [IVXLCDM]+)? \(\d{4}\)$"


@pytest.fixture(scope="module")
def default_world():
    """The default spec's world (seed 0): the size the issue's independence claims are about."""
    return generate_world(WorldSpec(), seed=0)


def test_title_prior_is_independent_of_popularity_genre_and_relevance(default_world):
    w = default_world
    rho = w.items["title_prior"].to_numpy()
    assert rho.dtype == np.float64 and abs(rho.mean()) < 0.1 and abs(rho.std() - 1) < 0.1  # N(0, 1)
    clicks = np.bincount(w.exposures.loc[w.exposures["clicked"], "item_id"], minlength=len(rho))
    for name, other in {
        "popularity prior": w.items["popularity_prior"],
        "training clicks": clicks,
        "quality": w.items["quality"],
        "mean true relevance": w.relevance.mean(axis=0),
        "number of genres": w.item_genres.sum(axis=1),
        "year": w.items["year"],
    }.items():
        assert abs(stats.spearmanr(rho, other).statistic) < 0.1, name
    # Genres: the share of rho's variance the genre indicators explain (OLS R^2); about 12/800 by chance.
    design = np.column_stack([np.ones(len(rho)), w.item_genres.astype(float)])
    fitted = design @ np.linalg.lstsq(design, rho, rcond=None)[0]
    assert 1 - ((rho - fitted) ** 2).sum() / ((rho - rho.mean()) ** 2).sum() < 0.05


def test_formulaic_titles_are_exactly_the_highest_prior_share(default_world):
    items = default_world.items
    formulaic = items["formulaic_title"].to_numpy()
    assert formulaic.sum() == round(0.2 * len(items))  # title_prior_share's default
    # only (and all) the highest-prior items: every formulaic item's prior beats every other item's
    assert items.loc[formulaic, "title_prior"].min() > items.loc[~formulaic, "title_prior"].max()
    matches = items["title"].str.match(FORMULAIC)
    np.testing.assert_array_equal(matches.to_numpy(), formulaic)
    assert items["title"].is_unique
    for title, year in zip(items["title"], items["year"], strict=True):
        assert title.endswith(f" ({year})")
    # The frames are shared by all genres: formulaic items span (almost) every genre.
    assert default_world.item_genres[formulaic].any(axis=0).sum() >= 10


def test_frame_words_are_in_no_genre_word_list():
    """A frame never reads like a genre-word title (why "The Last ..." is not a frame: Mystery has "Last")."""
    genre_words = {w for words in GENRE_WORDS.values() for part in words for phrase in part for w in phrase.split()}
    frame_words = {w for f in FORMULAIC_FRAMES for w in f.replace("{}", "").split()} - {
        "of",
        "the",
        "The",
        "for",
        "from",
    }
    assert frame_words and not frame_words & genre_words, frame_words & genre_words


def test_title_prior_share_changes_titles_only():
    """share 0: no formulaic title; any share: the rest of the world bit-for-bit the same (the prior's own stream)."""
    off = generate_world(WorldSpec(**SMALL, title_prior_share=0.0), seed=5)
    on = generate_world(WorldSpec(**SMALL, title_prior_share=0.3), seed=5)
    assert not off.items["formulaic_title"].any()
    assert not off.items["title"].str.match(FORMULAIC).any()
    assert on.items["formulaic_title"].sum() == round(0.3 * SMALL["n_items"])
    same = [c for c in on.items.columns if c not in ("title", "formulaic_title")]
    pd.testing.assert_frame_equal(off.items[same], on.items[same])  # title_prior included: drawn either way
    plain = ~on.items["formulaic_title"]
    pd.testing.assert_series_equal(off.items.loc[plain, "title"], on.items.loc[plain, "title"])
    assert (off.items.loc[~plain, "title"] != on.items.loc[~plain, "title"]).all()
    for name in ("relevance", "exposure_prob", "item_genres"):
        np.testing.assert_array_equal(getattr(off, name), getattr(on, name), err_msg=name)
    for name in ("users", "exposures", "mar", "evaluation"):
        pd.testing.assert_frame_equal(getattr(off, name), getattr(on, name), obj=name)


def test_items_have_one_to_three_known_genres(world):
    counts = world.item_genres.sum(axis=1)
    assert counts.min() >= 1 and counts.max() <= 3
    names = world.items["genres"].str.split("|")
    assert all(len(g) == c for g, c in zip(names, counts, strict=True))
    assert {g for gs in names for g in gs} <= set(world.genres)


def test_relevance_is_a_probability_matrix(world):
    r = world.relevance
    assert r.shape == (SMALL["n_users"], SMALL["n_items"]) and r.dtype == np.float32
    assert (r > 0).all() and (r < 1).all()
    exp = world.exposures
    np.testing.assert_array_equal(exp["relevance"], r[exp["user_id"], exp["item_id"]])


def test_same_seed_same_world_other_seed_differs():
    a = generate_world(WorldSpec(**SMALL), seed=3)
    b = generate_world(WorldSpec(**SMALL), seed=3)
    c = generate_world(WorldSpec(**SMALL), seed=4)
    pd.testing.assert_frame_equal(a.exposures, b.exposures)
    pd.testing.assert_frame_equal(a.items, b.items)
    np.testing.assert_array_equal(a.relevance, b.relevance)
    assert not a.items["title"].equals(c.items["title"])
    assert not np.array_equal(a.relevance, c.relevance)


def test_slates_have_k_distinct_items_and_no_reclicks(world):
    exp = world.exposures
    k = WorldSpec(**SMALL).exposures_per_step
    per_step = exp.groupby(["user_id", "step"])["item_id"].agg(["size", "nunique"])
    assert (per_step["size"] == k).all() and (per_step["nunique"] == k).all()
    clicks = exp[exp["clicked"]]
    assert not clicks.duplicated(["user_id", "item_id"]).any()
    # A clicked item is never shown again to that user (the platform removes consumed items).
    first_click = clicks.groupby(["user_id", "item_id"])["step"].min().rename("click_step")
    later = exp.join(first_click, on=["user_id", "item_id"], how="inner")
    assert (later["step"] <= later["click_step"]).all()


def test_propensities_in_unit_interval_and_sum_to_k(world):
    exp = world.exposures
    assert (exp["propensity"] > 0).all() and (exp["propensity"] <= 1).all()
    assert (exp["draw_prob"] > 0).all() and (exp["draw_prob"] <= exp["propensity"] + 1e-12).all()


def test_propensities_match_recomputation_from_the_seed(world):
    """Rebuild the logging distribution of a few (user, step) pairs from scratch and recompute both columns."""
    spec = WorldSpec(**SMALL)
    k = spec.exposures_per_step
    exp = world.exposures
    users = np.array([0, 41, 149])
    phi = logging_logits(spec, 7, users).astype(np.float64)
    for row, user in enumerate(users):
        log = exp[exp["user_id"] == user]
        for step in sorted({0, 1, 3, int(log["step"].max())}):
            clicked_before = log.loc[(log["step"] < step) & log["clicked"], "item_id"].to_numpy()
            logits = phi[row].copy()
            logits[clicked_before] = -np.inf
            weights = np.exp(logits - logits.max())
            draw = weights / weights.sum()
            incl = inclusion_probabilities(weights[None, :], k)[0]
            assert incl.sum() == pytest.approx(k, rel=1e-5)
            shown = log[log["step"] == step]
            np.testing.assert_allclose(shown["draw_prob"], draw[shown["item_id"]], rtol=1e-5)
            np.testing.assert_allclose(shown["propensity"], incl[shown["item_id"]], rtol=1e-4)


def test_inclusion_probabilities_exact_for_uniform_and_close_to_monte_carlo():
    n, k = 60, 6
    np.testing.assert_allclose(inclusion_probabilities(np.ones((1, n)), k)[0], k / n, rtol=1e-5)
    rng = np.random.default_rng(0)
    phi = 1.5 * np.log(1.0 / np.arange(1, n + 1)) + rng.normal(0, 0.5, n)  # strongly skewed softmax
    weights = np.exp(phi - phi.max())
    rosen = inclusion_probabilities(weights[None, :], k)[0]
    reps = 40_000
    keys = phi[None, :] + rng.gumbel(size=(reps, n))
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    monte_carlo = np.bincount(top.ravel(), minlength=n) / reps
    naive = 1 - (1 - weights / weights.sum()) ** k
    common = monte_carlo > 0.05
    assert np.abs(rosen[common] / monte_carlo[common] - 1).max() < 0.08
    assert np.abs(rosen - monte_carlo).max() < 0.02
    # The naive formula is clearly worse on the same distribution (why it is not used).
    assert np.abs(naive - monte_carlo).max() > 2 * np.abs(rosen - monte_carlo).max()


def test_exposure_bias_concentrates_exposures_on_popular_items():
    flat = generate_world(WorldSpec(**SMALL, exposure_bias=0.0), seed=11)
    biased = generate_world(WorldSpec(**SMALL, exposure_bias=3.0), seed=11)
    # Same seed, logging knob only: catalogue and truth are identical.
    pd.testing.assert_frame_equal(flat.items, biased.items)
    np.testing.assert_array_equal(flat.relevance, biased.relevance)
    n = SMALL["n_items"]
    g_flat = gini(np.bincount(flat.exposures["item_id"], minlength=n))
    g_biased = gini(np.bincount(biased.exposures["item_id"], minlength=n))
    assert g_biased > g_flat + 0.2
    # And exposure counts follow the popularity prior more closely.
    prior = flat.items["popularity_prior"].to_numpy()
    rho_flat = stats.spearmanr(prior, np.bincount(flat.exposures["item_id"], minlength=n)).statistic
    rho_biased = stats.spearmanr(prior, np.bincount(biased.exposures["item_id"], minlength=n)).statistic
    assert rho_biased > rho_flat


def test_click_rate_of_exposed_items_rises_with_true_relevance(world):
    exp = world.exposures
    assert stats.spearmanr(exp["relevance"], exp["clicked"]).statistic > 0.3
    quintile = pd.qcut(exp["relevance"], 5, labels=False)
    rates = exp.groupby(quintile)["clicked"].mean().to_numpy()
    assert (np.diff(rates) > 0).all()


def test_logging_policy_is_informative_but_biased(world):
    """Logged slates are more relevant than random ones, and skewed towards the popularity prior."""
    exp = world.exposures
    first = exp[exp["step"] == 0]  # before the small catalogue gets used up by clicks
    assert first["relevance"].mean() > world.relevance.mean() * 1.5
    prior = world.items["popularity_prior"].to_numpy()
    assert prior[exp["item_id"]].mean() > prior.mean() * 1.3


def _consecutive_overlap(clicks: pd.DataFrame, item_genres: np.ndarray) -> float:
    """Mean Jaccard overlap of the genres of consecutive clicks of the same user."""
    g = item_genres[clicks["item_id"].to_numpy()]
    same_user = clicks["user_id"].to_numpy()[1:] == clicks["user_id"].to_numpy()[:-1]
    inter = (g[1:] & g[:-1]).sum(axis=1)
    union = (g[1:] | g[:-1]).sum(axis=1)
    return float((inter / union)[same_user].mean())


def _sequential_gap(strength: float) -> float:
    w = generate_world(WorldSpec(n_users=300, n_items=120, sequential_strength=strength), seed=5)
    clicks = w.exposures[w.exposures["clicked"]]
    observed = _consecutive_overlap(clicks, w.item_genres)
    rng = np.random.default_rng(0)
    shuffled = []
    for _ in range(5):  # shuffle the order of each user's clicks, keeping users and their click sets
        perm = clicks.assign(key=rng.random(len(clicks))).sort_values(["user_id", "key"], kind="stable")
        shuffled.append(_consecutive_overlap(perm, w.item_genres))
    return observed - float(np.mean(shuffled))


def test_sequential_taste_makes_consecutive_clicks_share_genres():
    gap_on = _sequential_gap(1.0)
    gap_off = _sequential_gap(0.0)
    assert gap_on > 0.02
    assert abs(gap_off) < gap_on / 2


def test_timestamps_increase_per_user_and_fall_in_the_log_window(world):
    exp = world.exposures
    assert (exp.groupby("user_id")["timestamp"].diff().dropna() > 0).all()
    spec = WorldSpec(**SMALL)
    assert exp["timestamp"].min() >= world.start_epoch
    # Steps are spread over `days`; spacing a user's steps may push the last ones slightly past the end.
    assert exp["timestamp"].max() < world.start_epoch + (spec.days + 2) * 86400


def test_hour_of_day_and_weekday_are_not_uniform(world):
    times = pd.to_datetime(world.exposures.drop_duplicates(["user_id", "step"])["timestamp"], unit="s")
    hours = np.bincount(times.dt.hour, minlength=24)
    assert stats.chisquare(hours).pvalue < 1e-6
    assert hours[19:23].sum() > 3 * hours[2:6].sum()  # evening peak vs night
    weekday = np.bincount(times.dt.day_of_week, minlength=7) / 52
    assert weekday[5:].mean() > weekday[:4].mean()  # weekend lift


def test_mar_log_is_uniform_over_items_and_follows_relevance():
    spec = WorldSpec(n_users=400, n_items=120, mar_fraction=0.5, mar_exposures_per_user=30)
    w = generate_world(spec, seed=2)
    mar = w.mar
    assert mar["user_id"].nunique() == 200 and len(mar) == 200 * 30
    assert not mar.duplicated(["user_id", "item_id"]).any()
    assert set(mar["user_id"]) == set(w.users.loc[w.users["in_mar"], "user_id"])
    counts = np.bincount(mar["item_id"], minlength=spec.n_items)
    assert stats.chisquare(counts).pvalue > 1e-3  # flat over items (the logged exposures are not)
    logged = np.bincount(w.exposures["item_id"], minlength=spec.n_items)
    assert stats.chisquare(logged).pvalue < 1e-6
    np.testing.assert_array_equal(mar["relevance"], w.relevance[mar["user_id"], mar["item_id"]])
    assert stats.spearmanr(mar["relevance"], mar["clicked"]).statistic > 0.2


def test_user_activity_counts_steps_and_preferences_are_concentrated(world):
    steps = world.exposures.groupby("user_id")["step"].nunique()
    np.testing.assert_array_equal(world.users.set_index("user_id")["activity"].loc[steps.index], steps)
    weights = np.array(world.users["genre_weights"].tolist())
    assert weights.shape[1] == WorldSpec().user_genres
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    assert (np.diff(weights, axis=1) <= 0).all()  # listed by decreasing weight


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exposures_per_step": 120, "n_items": 120}, "exposures_per_step must be < n_items"),
        ({"year_min": 2000, "year_max": 2000}, "year_min must be < year_max"),
        ({"user_genres": 5, "n_genres": 4}, "user_genres must be <= n_genres"),
        ({"genres_per_item_min": 3, "genres_per_item_max": 2}, "genres_per_item_min must be <= genres_per_item_max"),
        ({"mar_exposures_per_user": 200, "n_items": 100}, "mar_exposures_per_user must be <= n_items"),
        ({"exposure_bias": 11.0}, "less than or equal to 10"),
        ({"sequential_strength": -0.1}, "greater than or equal to 0"),
        ({"title_prior_share": 1.5}, "less than or equal to 1"),
        ({"start_date": "2023-02-30"}, "valid YYYY-MM-DD"),
        ({"n_users": 1_000_000, "n_items": 200_000}, "relevance matrix"),
        ({"unknown_knob": 1}, "Extra inputs are not permitted"),
    ],
)
def test_world_spec_rejects_bad_values(overrides, message):
    with pytest.raises(ValidationError, match=message):
        WorldSpec(**overrides)


def test_world_spec_fields_are_described():
    for name, field in WorldSpec.model_fields.items():
        assert field.description, name
