"""RecLAIF task instances: what one recommender prompt is about, in one frame shape for every task.

A sequential instance (Beauty, LastFM, movies, the world; RecLAIF §5) is a window of the canonical splits: the last
``history`` items before the target, and ``candidates`` items shown in random order -- the target and
``candidates - 1`` negatives drawn uniformly without replacement from the catalogue minus the history and the
target ("randomly sampled candidates", as in Chen et al.'s S-DPO splits that RecLAIF follows for LastFM). A retrieval
instance (ESCI) is a query with its candidates (:mod:`lure.reclaif.esci`). Both have the columns of
:data:`INSTANCE_COLUMNS`:

``instance_id`` (str), ``split``, ``task`` ('sequential' | 'retrieval'), ``user_id`` (-1 for retrieval),
``context`` (history texts oldest first, or [query]), ``history`` (item ids of the context; empty for retrieval),
``candidates`` (item ids, in the order shown), ``candidate_texts``, ``relevant`` (item ids: [target], or the Exact
products), ``target`` (the next item; -1 for retrieval).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from lure.rng import generator

INSTANCE_COLUMNS = (
    "instance_id",
    "split",
    "task",
    "user_id",
    "context",
    "history",
    "candidates",
    "candidate_texts",
    "relevant",
    "target",
)


def report_key(dataset_label: str, task: str) -> str:
    """Key of a RecLAIF run in ``reclaif-eval``'s metrics and the paper tables: the dataset's label, or ``esci``
    for the retrieval task (whose instances do not come from the spec's dataset)."""
    return "esci" if task == "retrieval" else dataset_label


def sample_negatives(
    rng: np.random.Generator, n_items: int, exclude: np.ndarray, size: int, item_ids: np.ndarray | None = None
) -> np.ndarray:
    """``size`` distinct items drawn uniformly from ``item_ids`` (default 0..n_items-1) minus ``exclude``."""
    pool = np.arange(n_items) if item_ids is None else np.asarray(item_ids)
    allowed = pool[~np.isin(pool, exclude)]
    if len(allowed) < size:
        raise ValueError(f"only {len(allowed)} items are left to sample {size} negative candidates from")
    return rng.choice(allowed, size=size, replace=False)


def sequential_instances(
    windows: pd.DataFrame,
    titles: Mapping[int, str],
    split: str,
    history: int,
    candidates: int,
    seed: int,
    max_instances: int | None = None,
) -> pd.DataFrame:
    """RecLAIF instances from window rows (user_id, history, item_id): a seeded sample of ``max_instances`` rows
    (all when None), each with the last ``history`` items and ``candidates`` shuffled candidates.

    The random stream is named by the split, so the train and test instances never share draws and adding rows to
    one split does not change the other's."""
    if candidates < 2:
        raise ValueError(f"reclaif.candidates must be at least 2, got {candidates}")
    rng = generator(seed, f"reclaif.instances.{split}")
    if max_instances is not None and len(windows) > max_instances:
        rows = np.sort(rng.choice(len(windows), size=max_instances, replace=False))
        windows = windows.iloc[rows]
    item_ids = np.fromiter(titles.keys(), dtype=np.int64)
    n_items = int(item_ids.max()) + 1
    records = []
    for user, hist, target in zip(windows["user_id"], windows["history"], windows["item_id"], strict=True):
        hist = [int(i) for i in list(hist)[-history:]]
        target = int(target)
        negatives = sample_negatives(rng, n_items, np.array([*hist, target]), candidates - 1, item_ids)
        shown = rng.permutation(np.r_[target, negatives]).astype(int).tolist()
        records.append(
            {
                "instance_id": f"{split}-{len(records)}",
                "split": split,
                "task": "sequential",
                "user_id": int(user),
                "context": [titles[i] for i in hist],
                "history": hist,
                "candidates": shown,
                "candidate_texts": [titles[i] for i in shown],
                "relevant": [target],
                "target": target,
            }
        )
    return pd.DataFrame.from_records(records, columns=list(INSTANCE_COLUMNS))


def check_instances(frame: pd.DataFrame, source: str) -> None:
    """Raise when ``frame`` lacks a column of :data:`INSTANCE_COLUMNS` or has a candidate list with duplicates."""
    missing = [c for c in INSTANCE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: RecLAIF instances lack column(s) {missing}; expected {list(INSTANCE_COLUMNS)}")
    for iid, cands in zip(frame["instance_id"], frame["candidates"], strict=True):
        if len(set(cands)) != len(cands):
            raise ValueError(f"{source}: instance {iid} lists a candidate twice")
