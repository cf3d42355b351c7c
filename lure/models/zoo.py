"""The classic baseline zoo behind one interface, plus batched top-K retrieval and pair scoring.

Every recommender is fitted on a training interaction frame (``user_id``, ``item_id``; ids are dense
0..n-1, as the canonical files guarantee) and scores whole catalogue rows for a batch of users. The LLM
recommenders do not use this protocol: ``stages/llm_eval.py`` ranks them on the window test split (exact ranking or
constrained beam search, ``lure.llm.evaluate.rank_llm``) and fits the zoo models it compares them with through
:func:`build_model`.

All models see the training data as a *binary* user x item matrix (a repeated pair counts once).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lure.registry import ZOO, Definition
from lure.spec.eval import ALSParams, BPRParams, EvalSpec, ItemKNNParams, SASRecParams


@runtime_checkable
class Recommender(Protocol):
    """A fitted recommender scores every catalogue item for a batch of users (higher = more relevant)."""

    n_users: int
    n_items: int

    def fit(self, train: pd.DataFrame, n_users: int, n_items: int, seed: int) -> Recommender: ...

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        """float32 array of shape (len(user_ids), n_items)."""
        ...


def interaction_matrix(train: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary float32 CSR user x item matrix of the training pairs (duplicates count once)."""
    users = train["user_id"].to_numpy(dtype=np.int64)
    items = train["item_id"].to_numpy(dtype=np.int64)
    if len(users) and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"ids out of range: users must be in [0, {n_users}), items in [0, {n_items})")
    x = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    x.sort_indices()
    return x


class _Base:
    n_users: int = 0
    n_items: int = 0

    def _check(self, user_ids: np.ndarray) -> np.ndarray:
        if not self.n_items:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        users = np.asarray(user_ids, dtype=np.int64)
        if users.size and (users.min() < 0 or users.max() >= self.n_users):
            raise ValueError(f"user ids must be in [0, {self.n_users})")
        return users


class RandomRecommender(_Base):
    """Uniform random scores, a pure function of (seed, user, item): the same for any batching or call order."""

    def fit(self, train: pd.DataFrame, n_users: int, n_items: int, seed: int) -> RandomRecommender:
        self.n_users, self.n_items, self.seed = n_users, n_items, seed
        return self

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        users = self._check(user_ids).astype(np.uint64)
        cells = users[:, None] * np.uint64(self.n_items) + np.arange(self.n_items, dtype=np.uint64)[None, :]
        return _hash_uniform(cells, self.seed)


def _hash_uniform(cells: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of (cell + seed * golden), top 24 bits -> float32 in [0, 1) (exact in float32)."""
    with np.errstate(over="ignore"):
        z = cells + np.uint64((seed + 1) * 0x9E3779B97F4A7C15 % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(40)).astype(np.float32)) * np.float32(2.0**-24)


class PopularityRecommender(_Base):
    """Score = number of training users of the item (the same list for everyone, minus their own items)."""

    def fit(self, train: pd.DataFrame, n_users: int, n_items: int, seed: int) -> PopularityRecommender:
        self.n_users, self.n_items = n_users, n_items
        x = interaction_matrix(train, n_users, n_items)
        self.counts = np.asarray(x.sum(axis=0), dtype=np.float32).ravel()
        return self

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        users = self._check(user_ids)
        return np.broadcast_to(self.counts, (len(users), self.n_items)).copy()


class ItemKNNRecommender(_Base):
    """Item-based kNN.

    sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| · |U_j|)       (cosine of the binary item columns; sim(i, i) = 0)
    W[:, j]   = sim(·, j) pruned to its ``neighbors`` largest entries (ties: lower item id first)
    score(u, j) = Σ_{i ∈ I_u} W[i, j]                 (X_u · W)

    W is built in blocks of target items (X^T X[:, block] as a dense items x block array), so memory stays
    bounded for large catalogues.
    """

    def __init__(self, neighbors: int = 100, block_cells: int = 8_000_000) -> None:
        self.neighbors = neighbors
        self.block_cells = block_cells

    def fit(self, train: pd.DataFrame, n_users: int, n_items: int, seed: int) -> ItemKNNRecommender:
        self.n_users, self.n_items = n_users, n_items
        x = interaction_matrix(train, n_users, n_items)
        self.x = x
        xt = x.T.tocsr()
        xc = x.tocsc()  # cheap column blocks
        counts = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
        inv_norm = np.zeros(n_items)
        inv_norm[counts > 0] = 1.0 / np.sqrt(counts[counts > 0])
        k = min(self.neighbors, max(n_items - 1, 1))
        block = max(1, self.block_cells // max(n_items, 1))
        rows, cols, vals = [], [], []
        for start in range(0, n_items, block):
            stop = min(start + block, n_items)
            co = (xt @ xc[:, start:stop]).toarray()  # items x b co-occurrence counts
            sim = (co * inv_norm[:, None] * inv_norm[None, start:stop]).astype(np.float32)
            sim[np.arange(start, stop), np.arange(stop - start)] = 0.0
            keep = _top_mask(sim.T, k).T  # per target column j, its k largest (ties by lower item id)
            keep &= sim > 0
            r, c = np.nonzero(keep)
            rows.append(r)
            cols.append(c + start)
            vals.append(sim[r, c])
        self.w = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_items, n_items)
        )
        return self

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        users = self._check(user_ids)
        return np.asarray((self.x[users] @ self.w).toarray(), dtype=np.float32)


class _FactorModel(_Base):
    """Score = user_factors[u] · item_factors (implicit's models, fitted on the CPU)."""

    user_factors: np.ndarray
    item_factors: np.ndarray

    def _make(self, seed: int):  # pragma: no cover - overridden
        raise NotImplementedError

    def fit(self, train: pd.DataFrame, n_users: int, n_items: int, seed: int) -> _FactorModel:
        # Import implicit (and the BLAS it loads) *before* limiting threads, or the limit misses that library.
        import implicit.cpu.als
        import implicit.cpu.bpr  # noqa: F401
        from threadpoolctl import threadpool_limits

        self.n_users, self.n_items = n_users, n_items
        x = interaction_matrix(train, n_users, n_items)
        # implicit's advice: one BLAS thread (it parallelises itself); also keeps results bit-reproducible.
        with threadpool_limits(1, "blas"):
            model = self._make(seed)
            model.fit(x, show_progress=False)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        return self

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        users = self._check(user_ids)
        # einsum (not BLAS gemm): each score is summed in the same order whatever the batch or thread count,
        # so top-K lists do not depend on batch_size; as fast as gemm at these widths.
        return np.einsum("uf,if->ui", self.user_factors[users], self.item_factors)


class ALSRecommender(_FactorModel):
    """Implicit ALS: minimise Σ_{u,i} c_ui (p_ui − x_u·y_i)² + λ(‖x‖² + ‖y‖²), c_ui = 1 + α·1[(u,i) observed]."""

    def __init__(
        self,
        factors: int = 64,
        iterations: int = 15,
        regularization: float = 0.01,
        alpha: float = 1.0,
        threads: int = 1,
    ) -> None:
        self.factors, self.iterations, self.regularization, self.alpha = factors, iterations, regularization, alpha
        self.threads = threads

    def _make(self, seed: int):
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            calculate_training_loss=False,
            num_threads=self.threads,
            random_state=seed,
        )


class BPRRecommender(_FactorModel):
    """BPR-MF: SGD on −log σ(x_u·y_i − x_u·y_j) + reg, i observed, j a sampled unobserved item (one thread)."""

    def __init__(
        self, factors: int = 64, iterations: int = 50, learning_rate: float = 0.01, regularization: float = 0.01
    ) -> None:
        self.factors, self.iterations = factors, iterations
        self.learning_rate, self.regularization = learning_rate, regularization

    def _make(self, seed: int):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        # num_threads=1: implicit's multi-threaded BPR is Hogwild (racy updates), so not reproducible.
        return BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            num_threads=1,
            verify_negative_samples=True,
            random_state=seed,
        )


def _als(spec: EvalSpec) -> Recommender:
    p = spec.als
    return ALSRecommender(
        factors=p.factors, iterations=p.iterations, regularization=p.regularization, alpha=p.alpha, threads=spec.threads
    )


def _bpr(spec: EvalSpec) -> Recommender:
    p = spec.bpr
    return BPRRecommender(
        factors=p.factors, iterations=p.iterations, learning_rate=p.learning_rate, regularization=p.regularization
    )


def _sasrec(spec: EvalSpec) -> Recommender:
    from lure.models.sasrec import SASRecRecommender  # imports torch only when SASRec is used

    p = spec.sasrec
    return SASRecRecommender(
        hidden=p.hidden,
        layers=p.layers,
        heads=p.heads,
        max_len=p.max_len,
        dropout=p.dropout,
        epochs=p.epochs,
        batch_size=p.batch_size,
        learning_rate=p.learning_rate,
        threads=spec.threads,
    )


# The zoo's definitions (registry: lure.registry.ZOO). Each says its parameter section, the spec fields its stage
# reads besides ``seed`` and ``eval.topk``, and builds an unfitted model from the ``eval`` section.
ZOO.add(Definition("random", lambda spec: RandomRecommender(), description="uniform random scores (seeded)"))
ZOO.add(Definition("popularity", lambda spec: PopularityRecommender(), description="training-set popularity"))
ZOO.add(
    Definition(
        "itemknn",
        lambda spec: ItemKNNRecommender(neighbors=spec.itemknn.neighbors),
        spec=ItemKNNParams,
        reads=("eval.itemknn",),
        description="item-based kNN, cosine similarity",
    )
)
ZOO.add(Definition("als", _als, spec=ALSParams, reads=("eval.als", "eval.threads"), description="implicit ALS"))
ZOO.add(Definition("bpr", _bpr, spec=BPRParams, reads=("eval.bpr",), description="implicit BPR"))
ZOO.add(
    Definition(
        "sasrec", _sasrec, spec=SASRecParams, reads=("eval.sasrec", "eval.threads"), description="SASRec (torch)"
    )
)


def build_model(name: str, eval_spec: EvalSpec | None = None) -> Recommender:
    """An unfitted zoo model configured from the ``eval`` section (defaults if None)."""
    return ZOO.get(name).build(eval_spec or EvalSpec())


def _top_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of each row's k largest finite entries; ties at the cut go to the lower column index.

    Rows with fewer than k finite entries keep all of them (−inf marks excluded items).
    """
    n_cols = scores.shape[1]
    k = min(k, n_cols)
    if k == 0:
        return np.zeros_like(scores, dtype=bool)
    kth = np.partition(scores, n_cols - k, axis=1)[:, n_cols - k][:, None]  # k-th largest per row
    above = scores > kth
    tied = scores == kth
    need = k - above.sum(axis=1, keepdims=True)
    keep = above | (tied & (np.cumsum(tied, axis=1) <= need))
    return keep & np.isfinite(scores)


def top_k(
    model: Recommender, user_ids: np.ndarray, train: pd.DataFrame, k: int, batch_size: int | None = None
) -> pd.DataFrame:
    """Each user's k best items that are not in their training items.

    Returns a frame ``user_id, rank (1..k), item_id, score`` sorted by (user in the order given, rank); within
    a list ties in score are ordered by item id, and ties at the cut also go to the lower item id. A user with
    fewer than k untrained items gets a shorter list. Users are scored in batches of ``batch_size`` (default:
    about 4M score cells per batch) so memory stays bounded.
    """
    users = np.asarray(user_ids, dtype=np.int64)
    n_items = model.n_items
    seen = interaction_matrix(train, model.n_users, n_items)
    batch = batch_size or max(1, 4_000_000 // max(n_items, 1))
    parts_u, parts_i, parts_s = [], [], []
    for start in range(0, len(users), batch):
        ub = users[start : start + batch]
        scores = np.array(model.score(ub), dtype=np.float32, copy=True)
        if scores.shape != (len(ub), n_items):
            raise ValueError(f"{type(model).__name__}.score returned shape {scores.shape}, want {(len(ub), n_items)}")
        scores[np.isnan(scores)] = -np.inf
        tr = seen[ub]
        scores[np.repeat(np.arange(len(ub)), np.diff(tr.indptr)), tr.indices] = -np.inf
        rows, cols = np.nonzero(_top_mask(scores, k))
        vals = scores[rows, cols]
        order = np.lexsort((cols, -vals, rows))
        parts_u.append(ub[rows[order]])
        parts_i.append(cols[order].astype(np.int64))
        parts_s.append(vals[order])
    u = np.concatenate(parts_u) if parts_u else np.empty(0, np.int64)
    items = np.concatenate(parts_i) if parts_i else np.empty(0, np.int64)
    s = np.concatenate(parts_s) if parts_s else np.empty(0, np.float32)
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.empty(0, np.int64)
    rank = np.arange(len(u)) - np.repeat(starts, np.diff(np.r_[starts, len(u)])) + 1
    return pd.DataFrame({"user_id": u, "rank": rank.astype(np.int64), "item_id": items, "score": s})


def score_pairs(
    model: Recommender,
    user_ids: np.ndarray,
    items_i: np.ndarray,
    items_j: np.ndarray,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores s(u, i) and s(u, j) of each pair row (u, i, j); every distinct user is scored once."""
    users = np.asarray(user_ids, dtype=np.int64)
    ii = np.asarray(items_i, dtype=np.int64)
    jj = np.asarray(items_j, dtype=np.int64)
    if not (users.shape == ii.shape == jj.shape):
        raise ValueError("user_ids, items_i and items_j must have the same length")
    out_i = np.empty(len(users), np.float32)
    out_j = np.empty(len(users), np.float32)
    uniq, inv = np.unique(users, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    batch = batch_size or max(1, 4_000_000 // max(model.n_items, 1))
    for start in range(0, len(uniq), batch):
        stop = min(start + batch, len(uniq))
        scores = np.asarray(model.score(uniq[start:stop]), dtype=np.float32)
        rows = order[bounds[start] : bounds[stop]]
        local = inv[rows] - start
        out_i[rows] = scores[local, ii[rows]]
        out_j[rows] = scores[local, jj[rows]]
    return out_i, out_j


def ranked_users(test_users: np.ndarray, mar_users: np.ndarray | None) -> np.ndarray:
    """The users a zoo model ranks: the held-out log's, and the missing-at-random log's where there is one (the MAR
    estimate ranks for them too)."""
    users = np.asarray(test_users, dtype=np.int64)
    if mar_users is not None:
        users = np.concatenate([users, np.asarray(mar_users, dtype=np.int64)])
    return np.unique(users)


def fit_rank_score(
    name: str,
    eval_spec: EvalSpec,
    fit_on: pd.DataFrame,
    seen: pd.DataFrame,
    users: np.ndarray,
    pairs: pd.DataFrame,
    n_items: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit zoo model ``name`` on ``fit_on``; return its top-``eval.topk`` lists for ``users`` (items of ``seen``
    excluded) and ``pairs`` (user_id, item_i, item_j) with score_i, score_j. The zoo stage fits on the training
    log; the augment stage on real + synthetic rows, excluding only the real training items."""
    n_users = int(max(fit_on["user_id"].max(), seen["user_id"].max(), users.max())) + 1
    model = build_model(name, eval_spec).fit(fit_on, n_users, n_items, seed)
    topk = top_k(model, users, seen, eval_spec.topk)
    s_i, s_j = score_pairs(model, pairs["user_id"].to_numpy(), pairs["item_i"].to_numpy(), pairs["item_j"].to_numpy())
    return topk, pairs[["user_id", "item_i", "item_j"]].assign(score_i=s_i, score_j=s_j)
