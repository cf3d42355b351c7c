"""ESCI query-to-product retrieval (RecLAIF §5, "ESCI"): the instances, the BM25 baseline, Prec@K and NDCG@K.

The official data (github.com/amazon-science/esci-data) is two parquet files in one folder:

* ``shopping_queries_dataset_examples.parquet``: one row per (query, product) judgement: example_id, query,
  query_id, product_id, product_locale, esci_label (E/S/C/I = Exact, Substitute, Complement, Irrelevant),
  small_version, large_version, split;
* ``shopping_queries_dataset_products.parquet``: product_id, product_title, product_description,
  product_bullet_point, product_brand, product_color, product_locale (a product id is unique within a locale).

The paper's protocol and what we choose where it is silent:

* English only: ``product_locale == "us"`` in both files. Which version the paper used (``small_version``, the
  reduced Task 1 set, or all rows) is not stated: we use every US row.
* A query is kept with >= 10 Exact products; its 15 candidates are 10 Exact + 5 non-Exact (S, C or I), sampled
  without replacement and shuffled. The paper does not say what happens to a query with fewer than 5 non-Exact
  products: we drop it too, and count it apart (:class:`EsciStats`).
* The 60/20/20 train/valid/test split is over queries, by a seeded permutation (the official ``split`` column, made
  for another task, is ignored).
* The task: given the query and the 15 candidates, rank them and keep 5; Prec@5 and NDCG@5 with binary gains
  (Exact = relevant), against BM25 of the query over the candidates' texts.

Randomness is on named streams of :mod:`lure.rng`: one stream per query for its candidates, so an instance depends on
the seed and on its own query's rows only (not on row order, nor on which other queries the file holds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lure.data.sources.base import SourceFormatError, require_files
from lure.metrics.ranking import discount, idcg
from lure.reclaif.instances import INSTANCE_COLUMNS
from lure.rng import generator, stream

EXAMPLES_FILE = "shopping_queries_dataset_examples.parquet"
PRODUCTS_FILE = "shopping_queries_dataset_products.parquet"
# Only the columns we use are required (and read): the official files have more.
EXAMPLE_COLUMNS = ("query_id", "query", "product_id", "product_locale", "esci_label")
PRODUCT_COLUMNS = ("product_id", "product_locale", "product_title", "product_brand", "product_bullet_point")
LOCALE = "us"
LABELS = ("E", "S", "C", "I")
EXACT = "E"
SPLITS = ("train", "valid", "test")
CATALOGUE_COLUMNS = ("item_id", "product_id", "title", "text")


@dataclass(frozen=True)
class EsciStats:
    """What :func:`esci_instances` kept and why: ``queries_read`` = ``kept`` + both drops; ``used`` <= ``kept``
    (``max_queries``). A query with too few Exact products counts in ``dropped_few_exact`` only, whatever its
    others."""

    queries_read: int
    dropped_few_exact: int
    dropped_few_other: int
    kept: int
    used: int


def _parquet_columns(path: Path) -> list[str]:
    """The column names of a parquet file (its schema only: no data is read)."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a file that is not parquet
        raise SourceFormatError(f"{path}: not a readable parquet file ({err})") from err


def read_esci(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The US (English) rows of the two official ESCI files in ``folder``: (examples, products).

    Both files' columns are checked before either is read, so one error lists everything that is wrong with the
    download. Only the needed columns are read (the products file holds 1.8 M rows with long descriptions). Labels
    must be E/S/C/I and a product id unique within the US products: otherwise the candidates' relevance or texts
    would be ambiguous.
    """
    folder = Path(folder)
    require_files(folder, (EXAMPLES_FILE, PRODUCTS_FILE))
    problems = []
    for name, required in ((EXAMPLES_FILE, EXAMPLE_COLUMNS), (PRODUCTS_FILE, PRODUCT_COLUMNS)):
        found = _parquet_columns(folder / name)
        missing = [c for c in required if c not in found]
        if missing:
            problems.append(f"{folder / name}: missing column(s) {', '.join(missing)} (found {', '.join(found)})")
    if problems:
        raise SourceFormatError("; ".join(problems) + " — expected the official ESCI parquet files")

    examples = pd.read_parquet(folder / EXAMPLES_FILE, columns=list(EXAMPLE_COLUMNS))
    examples = examples[examples["product_locale"] == LOCALE].reset_index(drop=True)
    bad = ~examples["esci_label"].isin(LABELS)
    if bad.any():
        raise SourceFormatError(
            f"{folder / EXAMPLES_FILE}: esci_label must be one of {'/'.join(LABELS)}, "
            f"got {examples.loc[bad, 'esci_label'].iloc[0]!r} ({int(bad.sum())} rows)"
        )
    for column in ("query_id", "query", "product_id"):
        if examples[column].isna().any():
            n_missing = int(examples[column].isna().sum())
            raise SourceFormatError(f"{folder / EXAMPLES_FILE}: {column} is missing in {n_missing} rows")

    products = pd.read_parquet(folder / PRODUCTS_FILE, columns=list(PRODUCT_COLUMNS))
    products = products[products["product_locale"] == LOCALE].reset_index(drop=True)
    twice = products["product_id"].duplicated()
    if twice.any():
        raise SourceFormatError(
            f"{folder / PRODUCTS_FILE}: product_id {products.loc[twice, 'product_id'].iloc[0]!r} appears twice "
            f"in locale {LOCALE!r} ({int(twice.sum())} duplicates)"
        )
    return examples, products


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)} (has {', '.join(map(str, frame.columns))})")


def _split_labels(n: int, ratios: Sequence[float]) -> np.ndarray:
    """Split names for n positions: the first round(0.6 n) train, up to round(0.8 n) valid, the rest test."""
    cuts = np.rint(np.cumsum(ratios) * n).astype(np.int64)
    cuts[-1] = n
    return np.asarray(SPLITS, dtype=object)[np.searchsorted(cuts, np.arange(n), side="right")]


def _text(products: pd.DataFrame) -> pd.Series:
    """Title, brand and bullet points joined by newlines (empty parts left out): what BM25 and embeddings read."""
    parts = [products[c].fillna("").astype(str).str.strip() for c in ("product_title", "product_brand")]
    parts.append(products["product_bullet_point"].fillna("").astype(str).str.strip())
    return pd.Series(
        ["\n".join(p for p in row if p) for row in zip(*parts, strict=True)], index=products.index, dtype=object
    )


def esci_instances(
    examples: pd.DataFrame,
    products: pd.DataFrame,
    seed: int,
    n_exact: int = 10,
    n_other: int = 5,
    ratios: Sequence[float] = (0.6, 0.2, 0.2),
    max_queries: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, EsciStats]:
    """The paper's retrieval instances: one row per kept query, its candidates, and the catalogue they index.

    ``examples`` and ``products`` are :func:`read_esci`'s (already US-only). A query is kept when it has at least
    ``n_exact`` Exact and ``n_other`` non-Exact products; the paper only states the first condition, and without
    the second a query could not get its 5 non-Exact candidates: we drop those queries as well and count them in
    :class:`EsciStats` (``dropped_few_other``). Each kept query draws ``n_exact`` Exact + ``n_other`` others without
    replacement from its own stream ``reclaif.esci.candidates.<query_id>`` (rows sorted by product id first), then
    shuffles them, so the output does not depend on the input's row order. Kept query ids, sorted, are permuted with
    the stream ``reclaif.esci.split``; ``max_queries`` keeps the first of that permutation (a random subset), which
    is then cut by ``ratios`` (train, valid, test; rounded cumulative shares).

    Returns ``(instances, catalogue, stats)``. ``instances`` has exactly :data:`INSTANCE_COLUMNS`: instance_id
    ("esci-<query_id>"), split, task ("retrieval"), user_id (-1: queries are anonymous), context ([query]),
    candidates (item ids), candidate_texts (their titles), relevant (the Exact candidates, in candidate order) and
    target (-1: several items are relevant); rows by split, then query id. ``catalogue`` has item_id (0..n-1 in
    product id order), product_id, title and text (title, brand and bullet points) of every candidate.
    """
    _require(examples, ("query_id", "query", "product_id", "esci_label"), "examples")
    _require(products, ("product_id", "product_title", "product_brand", "product_bullet_point"), "products")
    if n_exact < 1 or n_other < 0:
        raise ValueError(f"need n_exact >= 1 and n_other >= 0, got n_exact={n_exact}, n_other={n_other}")
    ratios = [float(r) for r in ratios]
    if len(ratios) != len(SPLITS) or min(ratios) < 0 or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"ratios must be 3 non-negative shares (train, valid, test) summing to 1, got {ratios}")
    if max_queries is not None and max_queries < 1:
        raise ValueError(f"max_queries must be >= 1 or None, got {max_queries}")
    pairs = examples.duplicated(["query_id", "product_id"])
    if pairs.any():
        first = examples.loc[pairs].iloc[0]
        raise ValueError(
            f"examples: (query_id, product_id) = ({first['query_id']!r}, {first['product_id']!r}) appears twice "
            f"({int(pairs.sum())} duplicates): its relevance would be ambiguous"
        )

    rows = examples[["query_id", "query", "product_id"]].copy()
    rows["exact"] = (examples["esci_label"] == EXACT).to_numpy()
    rows = rows.sort_values(["query_id", "exact", "product_id"], ascending=[True, False, True], kind="stable")
    rows = rows.reset_index(drop=True)
    counts = rows.groupby("query_id", sort=True)["exact"].agg(["sum", "size"])
    n_e = counts["sum"].to_numpy(dtype=np.int64)
    n_o = counts["size"].to_numpy(dtype=np.int64) - n_e
    few_exact = n_e < n_exact
    few_other = ~few_exact & (n_o < n_other)
    keep = ~few_exact & ~few_other
    kept_ids = counts.index.to_numpy()[keep]

    chosen = kept_ids[generator(seed, "reclaif.esci.split").permutation(len(kept_ids))]
    if max_queries is not None:
        chosen = chosen[:max_queries]
    splits = _split_labels(len(chosen), ratios)
    rank = pd.Series(range(len(SPLITS)), index=list(SPLITS))[splits].to_numpy()  # train, valid, test
    order = np.lexsort((chosen, rank))
    chosen, splits = chosen[order], splits[order]

    starts = np.r_[0, np.cumsum(counts["size"].to_numpy(dtype=np.int64))][:-1]
    where = pd.Series(np.arange(len(counts)), index=counts.index)[chosen].to_numpy()
    width = n_exact + n_other
    picked = np.empty((len(chosen), width), dtype=np.int64)
    for i, (qid, q) in enumerate(zip(chosen, where, strict=True)):
        rng = np.random.default_rng(stream(seed, f"reclaif.esci.candidates.{qid}"))
        start, e = int(starts[q]), int(n_e[q])
        exact = start + rng.choice(e, size=n_exact, replace=False)
        other = start + e + rng.choice(int(n_o[q]), size=n_other, replace=False)
        picked[i] = np.r_[exact, other][rng.permutation(width)]

    product_ids = rows["product_id"].to_numpy(dtype=object)
    flat = product_ids[picked.ravel()]
    catalogue_ids, item_flat = np.unique(flat.astype(str), return_inverse=True)
    lookup = pd.Index(products["product_id"].astype(str).to_numpy(dtype=object))
    if not lookup.is_unique:
        raise ValueError(f"products: product_id {lookup[lookup.duplicated()][0]!r} appears twice (texts ambiguous)")
    rows_of = lookup.get_indexer(catalogue_ids.astype(object))
    if (rows_of < 0).any():
        raise ValueError(
            f"products: {int((rows_of < 0).sum())} candidate product(s) have no row, "
            f"e.g. {catalogue_ids[rows_of < 0][0]!r}"
        )
    info = products.iloc[rows_of].reset_index(drop=True)
    catalogue = pd.DataFrame(
        {
            "item_id": np.arange(len(catalogue_ids), dtype=np.int64),
            "product_id": catalogue_ids.astype(object),
            "title": info["product_title"].fillna("").astype(str).str.strip().to_numpy(dtype=object),
            "text": _text(info).to_numpy(dtype=object),
        }
    )

    items = item_flat.reshape(picked.shape)
    titles = catalogue["title"].to_numpy(dtype=object)[items]
    exact_mask = rows["exact"].to_numpy()[picked]
    queries = rows["query"].to_numpy(dtype=object)[starts[where]]
    instances = pd.DataFrame(
        {
            "instance_id": [f"esci-{q}" for q in chosen],
            "split": splits.astype(object),
            "task": "retrieval",
            "user_id": np.full(len(chosen), -1, dtype=np.int64),
            "context": [[str(q)] for q in queries],
            "history": [[] for _ in queries],
            "candidates": [[int(x) for x in row] for row in items],
            "candidate_texts": [list(row) for row in titles],
            "relevant": [[int(x) for x in row[m]] for row, m in zip(items, exact_mask, strict=True)],
            "target": np.full(len(chosen), -1, dtype=np.int64),
        },
        columns=list(INSTANCE_COLUMNS),
    )
    stats = EsciStats(
        queries_read=len(counts),
        dropped_few_exact=int(few_exact.sum()),
        dropped_few_other=int(few_other.sum()),
        kept=int(keep.sum()),
        used=len(chosen),
    )
    return instances, catalogue, stats


def bm25_scores(instances: pd.DataFrame, catalogue: pd.DataFrame) -> list[np.ndarray]:
    """BM25 score of each instance's query (its ``context``, joined) against each of its candidates' ``text``.

    BM25's IDF and average document length are corpus statistics, and re-ranking 15 candidates has no natural
    corpus: we take one corpus = every distinct candidate of ``instances``, so call this once per split (train,
    valid and test each get their own statistics, and no split's texts leak into another's). bm25s's defaults
    (Lucene variant, k1 = 1.5, b = 0.75) and its tokenizer (lower-cased words of 2+ characters, English stopwords,
    no stemming); a query word repeated counts twice, as in bm25s. The scores are bm25s's own index, read as a
    sparse (document x token) matrix and multiplied by the queries' token counts for every (instance, candidate)
    pair at once (one call instead of a full-corpus score vector per query).
    """
    import bm25s
    import scipy.sparse as sp
    from bm25s.tokenization import Tokenizer

    _require(instances, ("context", "candidates"), "instances")
    _require(catalogue, ("item_id", "text"), "catalogue")
    lengths = np.fromiter((len(c) for c in instances["candidates"]), dtype=np.int64, count=len(instances))
    flat = np.fromiter((int(x) for c in instances["candidates"] for x in c), dtype=np.int64, count=int(lengths.sum()))
    corpus_items, doc_flat = np.unique(flat, return_inverse=True)
    cat_ids = catalogue["item_id"].to_numpy(dtype=np.int64)
    cat_order = np.argsort(cat_ids, kind="stable")
    pos = np.searchsorted(cat_ids, corpus_items, sorter=cat_order)
    pos = np.minimum(pos, max(len(cat_ids) - 1, 0))
    found = (cat_ids[cat_order[pos]] == corpus_items) if len(cat_ids) else np.zeros(len(corpus_items), bool)
    if not found.all():
        raise ValueError(f"catalogue: candidate item {int(corpus_items[~found][0])} has no row")
    texts = catalogue["text"].fillna("").astype(str).to_numpy(dtype=object)[cat_order[pos]]
    if len(corpus_items) == 0:
        return [np.zeros(0) for _ in range(len(instances))]

    tokenizer = Tokenizer(stopwords="en", stemmer=None)
    corpus_tokens = tokenizer.tokenize(list(texts), update_vocab=True, return_as="ids", show_progress=False)
    vocab = tokenizer.get_vocab_dict()
    index = bm25s.BM25(method="lucene")
    index.index((corpus_tokens, vocab), show_progress=False)
    n_tokens = len(index.scores["indptr"]) - 1
    doc_token = sp.csc_matrix(
        (index.scores["data"], index.scores["indices"], index.scores["indptr"]),
        shape=(index.scores["num_docs"], n_tokens),
    ).tocsr()

    queries = [" ".join(map(str, c)) for c in instances["context"]]
    # update_vocab=False: words absent from the corpus score 0 everywhere and are dropped; allow_empty=False keeps
    # a query without known words from matching the empty documents' placeholder token
    query_tokens = tokenizer.tokenize(
        queries, update_vocab=False, return_as="ids", show_progress=False, allow_empty=False
    )
    q_rows = np.repeat(np.arange(len(queries)), [len(t) for t in query_tokens])
    q_cols = np.fromiter((t for ts in query_tokens for t in ts), dtype=np.int64, count=len(q_rows))
    query_counts = sp.csr_matrix(
        (np.ones(len(q_rows)), (q_rows, q_cols)), shape=(len(queries), n_tokens)
    )  # duplicates are summed: token counts
    pair_instance = np.repeat(np.arange(len(instances)), lengths)
    scores = np.asarray(doc_token[doc_flat].multiply(query_counts[pair_instance]).sum(axis=1)).ravel()
    return np.split(scores, np.cumsum(lengths)[:-1])


def bm25_rank(instances: pd.DataFrame, catalogue: pd.DataFrame) -> list[list[int]]:
    """The BM25 baseline: each instance's candidates by descending :func:`bm25_scores`, ties in candidate order.

    The corpus is every candidate of ``instances`` (see :func:`bm25_scores`): pass one split at a time.
    """
    scores = bm25_scores(instances, catalogue)
    out = []
    for candidates, s in zip(instances["candidates"], scores, strict=True):
        order = np.argsort(-s, kind="stable")
        out.append([int(candidates[i]) for i in order])
    return out


def retrieval_metrics(
    ranked: Sequence[Sequence[int]], relevant: Sequence[Sequence[int]], k: int = 5
) -> dict[str, np.ndarray]:
    """Per-instance ``prec@k`` = |top-k ∩ relevant| / k and ``ndcg@k`` = sum_{r<=k} rel_r D(r) / IDCG(min(|rel|, k)).

    Binary gains (the paper's Exact vs the rest); D and IDCG are :mod:`lure.metrics.ranking`'s. A list shorter than k
    counts its missing positions as non-relevant (Prec still divides by k). A ranked list that repeats an item in its
    top k, or an instance with no relevant item (NDCG undefined), is an error rather than a silent score.
    """
    if len(ranked) != len(relevant):
        raise ValueError(f"{len(ranked)} ranked lists for {len(relevant)} relevant sets")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = len(ranked)
    gains = np.zeros((n, k))
    n_relevant = np.empty(n, dtype=np.int64)
    for i, (items, rel) in enumerate(zip(ranked, relevant, strict=True)):
        top = [int(x) for x in list(items)[:k]]
        if len(set(top)) != len(top):
            raise ValueError(f"ranked list {i} repeats an item in its top {k}: {top}")
        rel_set = {int(x) for x in rel}
        if not rel_set:
            raise ValueError(f"instance {i} has no relevant item: NDCG@{k} is undefined")
        n_relevant[i] = len(rel_set)
        gains[i, : len(top)] = [x in rel_set for x in top]
    dcg = gains @ discount(np.arange(1, k + 1))
    return {
        f"prec@{k}": gains.sum(axis=1) / k,
        f"ndcg@{k}": dcg / idcg(np.minimum(n_relevant, k)),
    }
