"""Coat (Schnabel et al., ICML 2016): 290 users x 300 coats, ratings 1-5 on two logs.

* ``train.ascii``: the self-selected (missing-not-at-random) ratings, 24 a user: these are the interactions;
* ``test.ascii``: ratings of 16 coats per user drawn uniformly at random (missing-at-random): the unbiased
  target, returned as ``mar`` and written to ``truth/mar.parquet``;
* ``user_item_features/item_features.ascii`` + ``item_features_map.txt`` (optional): one-hot gender, jacket
  type, colour, "on front page"; used to write readable titles and genres.

Both matrices are dense, whitespace-separated, 0 = no rating.

Choices (docs/datasets.md): Coat has no timestamps, so every timestamp is 0 (``time_kind = "none"``; prepare
orders each user's interactions randomly with the spec's seed, which makes every split a seeded random split);
user_id / item_id are the matrix row / column; titles are "Coat <id>: women's black bomber jacket" when the
feature files are there, otherwise "Coat <id>"; genres = the jacket type; year unknown (-1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lure.data.sources.base import (
    MAR_COLUMNS,
    SOURCES,
    Archive,
    RawDataset,
    SourceDefinition,
    SourceFormatError,
    interactions_frame,
    items_frame,
    require_files,
    users_table,
)
from lure.spec.source import CoatSource

COAT_FILES = ("train.ascii", "test.ascii")
FEATURES = "user_item_features/item_features.ascii"
FEATURE_MAP = "user_item_features/item_features_map.txt"
N_USERS, N_ITEMS = 290, 300


def read_matrix(path: Path, shape: tuple[int, int] | None = (N_USERS, N_ITEMS)) -> np.ndarray:
    """A dense whitespace-separated integer matrix; every row must have the same width (and ``shape`` if set)."""
    rows = [line.split() for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        bad = next(i for i, r in enumerate(rows) if len(r) != len(rows[0]))
        raise SourceFormatError(
            f"{path}: row {bad + 1} has {len(rows[bad])} values, row 1 has {len(rows[0])}: expected a dense matrix"
        )
    try:
        matrix = np.array(rows, dtype=np.float64)
    except ValueError as exc:
        raise SourceFormatError(f"{path}: non-numeric value ({exc}); expected integers 0-5") from None
    if shape is not None and matrix.shape != shape:
        raise SourceFormatError(f"{path}: shape {matrix.shape}, expected {shape} (users x items)")
    if (matrix != np.round(matrix)).any():
        raise SourceFormatError(f"{path}: non-integer value; expected integers")
    return matrix.astype(np.int64)


def _ratings(matrix: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not np.isin(matrix, np.arange(6)).all():
        raise SourceFormatError(f"{path}: ratings must be 0 (missing) or 1-5")
    users, items = np.nonzero(matrix)  # row-major: by user, then item
    return users.astype(np.int64), items.astype(np.int64), matrix[users, items].astype(np.float64)


def item_descriptions(folder: Path, n_items: int = N_ITEMS) -> tuple[list[str], list[str]]:
    """(titles, genres) from the optional item features; ("Coat <id>", "") where the files are absent."""
    plain = [f"Coat {i}" for i in range(n_items)], ["" for _ in range(n_items)]
    if not (folder / FEATURES).is_file() or not (folder / FEATURE_MAP).is_file():
        return plain
    names = [line.strip() for line in (folder / FEATURE_MAP).read_text(encoding="utf-8").splitlines() if line.strip()]
    onehot = read_matrix(folder / FEATURES, shape=(n_items, len(names)))
    groups: dict[str, list[tuple[int, str]]] = {}
    for col, name in enumerate(names):
        key, _, value = name.partition(":")
        groups.setdefault(key, []).append((col, value))

    def value(key: str, row: np.ndarray) -> str:
        cols = [(c, v) for c, v in groups.get(key, []) if row[c] == 1]
        return cols[0][1] if cols else ""

    titles, genres = [], []
    for i in range(n_items):
        row = onehot[i]
        gender = {"men": "men's", "women": "women's"}.get(value("gender", row), "")
        colour = value("color", row)
        colour = {"other": "", "multi": "multicoloured"}.get(colour, colour)
        kind = value("jackettype", row)
        noun = "jacket" if kind in ("", "other") else f"{kind} jacket"
        words = " ".join(w for w in (gender, colour, noun) if w)
        titles.append(f"Coat {i}: {words}")
        genres.append(kind if kind and kind != "other" else "")
    return titles, genres


def load_coat(folder: Path) -> RawDataset:
    """Coat from ``folder`` (train.ascii, test.ascii; item features optional)."""
    folder = Path(folder)
    require_files(folder, COAT_FILES)
    train, test = read_matrix(folder / "train.ascii"), read_matrix(folder / "test.ascii")
    u, i, r = _ratings(train, folder / "train.ascii")
    mu, mi, mr = _ratings(test, folder / "test.ascii")
    titles, genres = item_descriptions(folder)
    items = items_frame(np.arange(N_ITEMS), titles, genres, np.full(N_ITEMS, -1))
    mar = interactions_frame(mu, mi, None, mr)[MAR_COLUMNS]
    return RawDataset(
        name="coat",
        items=items,
        interactions=interactions_frame(u, i, None, r),
        users=users_table(np.arange(N_USERS)),
        time_kind="none",
        explicit=True,
        mar=mar,
    )


SOURCES.add(
    SourceDefinition(
        "coat",
        lambda folder, source: load_coat(folder),
        required=COAT_FILES,
        archive=Archive(
            "https://www.cs.cornell.edu/~schnabts/mnar/coat.zip",
            {
                "train.ascii": "a87bd9e7eaf3b89f976df3f25d4aa5d5d871be8a00b58947df9e6e015559bd37",
                "test.ascii": "de6714ab105a5e0be8166be7fd313901b29f9a09c3bea307901457d1d71847e6",
            },
        ),
        manual="download https://www.cs.cornell.edu/~schnabts/mnar/coat.zip and unzip it there (train.ascii, "
        "test.ascii and the user_item_features/ folder go directly into {folder}/)",
        spec=CoatSource,
        reads=("data.source",),
        description="Coat shopping (Schnabel et al. 2016), MNAR + MAR",
    )
)
