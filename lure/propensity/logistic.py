"""LURE §3: P(observed | u, i) by logistic regression on user, item and time features, with prior correction.

Fit: every observed training pair (label 1) against ``negative_ratio`` uniformly sampled unobserved pairs per
observed pair (label 0). The model learns the odds *of the sample*; with s = sampled negatives / all unobserved
pairs (and a = kept observed / all observed when ``max_fit_pairs`` subsamples them)

    P(obs) / P(unobs) = (sample odds) * s / a      i.e.  logit pi = logit_sample + log s - log a

(case-control "prior correction", King & Zeng 2001, "Logistic Regression in Rare Events Data"), so the
output is a probability of the population of pairs, not of the sample. Derivation: ``docs/propensity.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from lure.propensity.data import PropensityData, contains, hour_weekday
from lure.registry import PROPENSITY_MODELS, Definition
from lure.rng import generator
from lure.spec.propensity import LogisticModel

#: Iterations of L-BFGS (standardised features converge in well under 100).
MAX_ITER = 300


class LogisticPropensity:
    """logit pi(u,i) = b + log s - log a + w_f log(1+n_u) + w_p log(1+n_i) + w_h H_u + w_age[age_i] + c_u  (LURE §3)

    Features (Pipeline: StandardScaler -> LogisticRegression(C)): log user frequency log(1 + n_u), log item
    popularity log(1 + n_i) (training counts), user-genre entropy H_u, item age bin (one-hot), and the hour of
    day and weekday (one-hot: their effects are not monotone) of the interaction; an unobserved pair takes the
    time of a random training interaction of its own user. Datasets whose timestamps are all 0 drop the time
    features (``uses_time`` = False). In the fit, an observed pair's counts leave its own interaction out
    (n_u - 1, n_i - 1): predictions are asked for pairs outside the training log, whose counts are all "other"
    interactions, and an item seen once must not look popular because of the very pair being classified.
    At prediction time the pair has no time: c_u = log mean_t exp(w_hour[h_t] + w_wday[d_t]) over u's training
    interactions marginalises it (exact when pi << 1, where sigmoid ~ exp).
    """

    name = "logistic"

    def __init__(self, negative_ratio: int = 4, c: float = 1.0, max_fit_pairs: int = 2_000_000, seed: int = 0):
        self.negative_ratio = int(negative_ratio)
        self.c = float(c)
        self.max_fit_pairs = int(max_fit_pairs)
        self.seed = int(seed)

    # ------------------------------------------------------------------------------------------------ fit

    def fit(self, data: PropensityData) -> LogisticPropensity:
        rng = generator(self.seed, "propensity.logistic")
        train = data.train.drop_duplicates(["user_id", "item_id"], keep="first")
        users = train["user_id"].to_numpy(dtype=np.int64)
        items = train["item_id"].to_numpy(dtype=np.int64)
        n_obs = len(users)
        n_pairs = len(data.train_users) * data.n_items  # the population: training users x catalogue

        # Subsample observed pairs only when observed + negatives exceed the cap: a = kept share of them.
        n_pos = min(n_obs, max(1, self.max_fit_pairs // (1 + self.negative_ratio)))
        keep = np.sort(rng.choice(n_obs, size=n_pos, replace=False)) if n_pos < n_obs else np.arange(n_obs)
        n_neg = self.negative_ratio * n_pos
        neg_u, neg_i = self._sample_unobserved(data, n_neg, rng)
        self.sample_rate_observed_ = n_pos / n_obs  # a
        self.sample_rate_unobserved_ = n_neg / (n_pairs - n_obs)  # s

        # Per-user / per-item tables (indexed by id) the features are read from.
        self.uses_time_ = data.has_time()
        self.n_age_bins_ = int(data.items["age_bin"].max()) + 1
        self.age_bin_ = data.items["age_bin"].to_numpy(dtype=np.int64)
        self.user_count_ = data.user_counts().astype(np.float64)
        self.item_count_ = data.item_counts().astype(np.float64)
        self.log_user_freq_ = np.log1p(self.user_count_)
        self.log_item_pop_ = np.log1p(self.item_count_)
        self.entropy_ = data.user_genre_entropy()

        ts = data.train["timestamp"].to_numpy(dtype=np.int64)
        hour, wday = hour_weekday(ts)
        pos_rows = train.index.to_numpy()[keep]  # rows of data.train (drop_duplicates kept the original index)
        neg_rows = self._random_interaction_of(data, neg_u, rng)  # a random interaction of each negative's user
        u = np.concatenate([users[keep], neg_u])
        i = np.concatenate([items[keep], neg_i])
        h = np.concatenate([hour[pos_rows], hour[neg_rows]])
        d = np.concatenate([wday[pos_rows], wday[neg_rows]])
        y = np.concatenate([np.ones(n_pos, dtype=np.int8), np.zeros(n_neg, dtype=np.int8)])

        self.pipeline_ = Pipeline(
            [
                ("scale", StandardScaler()),
                ("logit", LogisticRegression(C=self.c, max_iter=MAX_ITER, tol=1e-6)),
            ]
        )
        self.pipeline_.fit(self.features(u, i, h, d, observed=y.astype(bool)), y)
        self._unpack_linear(data, hour, wday)
        return self

    @staticmethod
    def _sample_unobserved(data: PropensityData, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n pairs uniform over (training user, catalogue item) pairs not observed in training (with replacement)."""
        observed = data.observed_keys()
        users = data.train_users
        out_u, out_i, got = [], [], 0
        while got < n:
            want = int((n - got) * 1.1) + 16
            u = users[rng.integers(0, len(users), size=want)]
            i = rng.integers(0, data.n_items, size=want)
            ok = ~contains(observed, u * data.n_items + i)
            out_u.append(u[ok][: n - got])
            out_i.append(i[ok][: n - got])
            got += len(out_u[-1])
        return np.concatenate(out_u), np.concatenate(out_i)

    @staticmethod
    def _random_interaction_of(data: PropensityData, user_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Row of a uniformly random training interaction of each given user (rows of data.train)."""
        order = np.argsort(data.train["user_id"].to_numpy(dtype=np.int64), kind="stable")
        counts = data.user_counts()
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pick = starts[user_ids] + (rng.random(len(user_ids)) * counts[user_ids]).astype(np.int64)
        return order[pick]

    def features(
        self, u: np.ndarray, i: np.ndarray, hour: np.ndarray, wday: np.ndarray, observed: np.ndarray | None = None
    ) -> np.ndarray:
        """Design matrix (float32): log(1+n_u), log(1+n_i), H_u, one-hot age bin [, one-hot hour, one-hot weekday]."""
        n = len(u)
        width = 3 + self.n_age_bins_ + (24 + 7 if self.uses_time_ else 0)
        x = np.zeros((n, width), dtype=np.float32)
        if observed is None:  # a pair outside the training log: its counts are all "other" interactions
            x[:, 0] = self.log_user_freq_[u]
            x[:, 1] = self.log_item_pop_[i]
        else:  # leave-one-out: an observed pair's own interaction is not evidence for itself
            x[:, 0] = np.log1p(self.user_count_[u] - observed)
            x[:, 1] = np.log1p(self.item_count_[i] - observed)
        x[:, 2] = self.entropy_[u]
        rows = np.arange(n)
        x[rows, 3 + self.age_bin_[i]] = 1.0
        if self.uses_time_:
            base = 3 + self.n_age_bins_
            x[rows, base + hour] = 1.0
            x[rows, base + 24 + wday] = 1.0
        return x

    def feature_names(self) -> list[str]:
        names = ["log_user_freq", "log_item_pop", "user_genre_entropy"]
        names += [f"age_bin_{b}" for b in range(self.n_age_bins_)]
        if self.uses_time_:
            names += [f"hour_{h}" for h in range(24)] + [f"weekday_{d}" for d in range(7)]
        return names

    def _unpack_linear(self, data: PropensityData, hour: np.ndarray, wday: np.ndarray) -> None:
        """Fold the scaler into the logistic weights: logit = b + w . x on raw features, then per-user/item terms."""
        scale: StandardScaler = self.pipeline_.named_steps["scale"]
        logit: LogisticRegression = self.pipeline_.named_steps["logit"]
        w = logit.coef_[0] / scale.scale_
        b = float(logit.intercept_[0] - (w * scale.mean_).sum())
        self.coef_ = dict(zip(self.feature_names(), w.tolist(), strict=True))
        self.coef_standardised_ = dict(zip(self.feature_names(), logit.coef_[0].tolist(), strict=True))
        # Prior correction: population logit = sample logit + log s - log a (module docstring).
        self.correction_ = float(np.log(self.sample_rate_unobserved_) - np.log(self.sample_rate_observed_))
        self.intercept_ = b + self.correction_
        # Time marginalised per user: c_u = log mean_{t in train_u} exp(w_hour[h_t] + w_wday[d_t]).
        time_term = np.zeros(data.n_user_slots)
        if self.uses_time_:
            base = 3 + self.n_age_bins_
            effect = w[base + hour] + w[base + 24 + wday]
            users = data.train["user_id"].to_numpy(dtype=np.int64)
            counts = data.user_counts()
            mean_exp = np.bincount(users, weights=np.exp(effect), minlength=data.n_user_slots)
            time_term = np.log(np.divide(mean_exp, counts, out=np.ones_like(mean_exp), where=counts > 0))
        self.user_term_ = w[0] * self.log_user_freq_ + w[2] * self.entropy_ + time_term
        self.item_term_ = w[1] * self.log_item_pop_ + w[3 + self.age_bin_]

    # -------------------------------------------------------------------------------------------- predict

    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """pi(u,i) = sigmoid(b + log s - log a + user_term[u] + item_term[i])  (population probability)."""
        return expit(self.intercept_ + self.user_term_[user_ids] + self.item_term_[item_ids])

    def predict_at(self, user_ids: np.ndarray, item_ids: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """pi(u,i | time) through the fitted sklearn Pipeline itself (plus the prior correction)."""
        hour, wday = hour_weekday(timestamps)
        logit = self.pipeline_.decision_function(self.features(user_ids, item_ids, hour, wday))
        return expit(logit + self.correction_)

    def summary(self) -> dict[str, Any]:
        """Flat, MLflow-legal numbers: sampling rates, correction, whether time was used, the weights."""
        out: dict[str, Any] = {
            "logistic_uses_time": int(self.uses_time_),
            "logistic_sample_rate_unobserved": self.sample_rate_unobserved_,
            "logistic_sample_rate_observed": self.sample_rate_observed_,
            "logistic_prior_correction": self.correction_,
            "logistic_intercept": self.intercept_,
        }
        for name in ("log_user_freq", "log_item_pop", "user_genre_entropy"):
            out[f"logistic_coef_{name}"] = self.coef_[name]
        return out


PROPENSITY_MODELS.add(
    Definition(
        "logistic",
        lambda spec, seed: LogisticPropensity(spec.negative_ratio, spec.c, spec.max_fit_pairs, seed),
        spec=LogisticModel,
        reads=("propensity.model",),
    )
)
