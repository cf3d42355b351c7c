"""Amazon reviews: Beauty 2014 5-core in the P5 layout, and Amazon Reviews 2023 from Hugging Face.

**amazon-beauty** (files in ``<raw_dir>/amazon-beauty/``), as used by P5-style LLM recommenders:

* ``sequential_data.txt``: one line per user, "user item item ...", P5 ids, items in time order;
* ``items_with_titles.tsv``: item_id (P5 id), asin, title (header line);
* ``datamaps.json`` (optional): P5's id maps; ``id2user`` gives the reviewer ids back;
* without ``items_with_titles.tsv``, titles come from ``datamaps.json`` (``id2item``) + McAuley's
  ``meta_Beauty.json.gz`` (one Python-literal dict per line with ``asin`` and ``title``).

Choices (docs/datasets.md): the P5 files carry no times and no ratings. timestamp = position in the user's
sequence (0, 1, 2, ...: ``time_kind = "sequence"``), which keeps the order (all that LOO and histories need)
but is not comparable across users; rating = 1.0 (implicit, ``min_rating`` does not apply); item_id = P5 id - 1,
user_id = P5 id - 1 (both contiguous in the files), raw_id = ASIN / reviewer id; genres "" and year -1 (not in
these files); repeated items within a sequence are kept (they are repeat purchases).

**amazon-2023** (McAuley-Lab/Amazon-Reviews-2023, ``data.source.category``): ``lure.data.fetch`` downloads the
reviews and the item metadata once with Hugging Face ``datasets`` and caches the needed columns as
``<raw_dir>/amazon-2023/reviews_<category>.parquet`` and ``meta_<category>.parquet``; this module reads those.
Processing follows the dataset's own benchmark scripts (hyp1231/AmazonReviews2023) and the LLM-rec papers built
on it: items keyed by ``parent_asin``; titles cleaned (HTML entities unescaped, tags removed, newlines/tabs and
non-ASCII characters turned into spaces, runs of spaces collapsed) and items without metadata or with an empty
cleaned title dropped; each user's reviews sorted by time and repeated (user, item) reviews dropped (the first
is kept); then the iterative 5-core on users and items. timestamp = review time in unix seconds (the dataset
gives milliseconds); rating = the 1-5 stars; genres = the deepest category of the item's category path ("" if
none); year = the year of "Date First Available" in ``details`` when present, else -1.
"""

from __future__ import annotations

import ast
import gzip
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lure.data.sources.base import (
    SOURCES,
    RawDataMissingError,
    RawDataset,
    SourceDefinition,
    SourceFormatError,
    contiguous,
    interactions_frame,
    items_frame,
    read_delimited,
    require_files,
    users_table,
)
from lure.spec.source import Amazon2023Source, AmazonBeautySource

BEAUTY_FILES = ("sequential_data.txt", "items_with_titles.tsv")
BEAUTY_META = ("datamaps.json", "meta_Beauty.json.gz")
HF_REPO = "McAuley-Lab/Amazon-Reviews-2023"
CORE_K = 5
REVIEW_COLUMNS = ["user_id", "parent_asin", "rating", "timestamp"]
META_COLUMNS = ["parent_asin", "title", "categories", "details"]


# ---------------------------------------------------------------- amazon-beauty (P5 files)


def read_sequences(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, position) arrays of a P5 ``sequential_data.txt``, in file order."""
    users, items, positions = [], [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 2 or not all(t.isdigit() for t in tokens):
            raise SourceFormatError(
                f"{path}: line {n}: malformed line {line[:200]!r}; expected 'user item item ...' "
                "(space-separated integer ids, at least one item)"
            )
        ids = np.array(tokens, dtype=np.int64)
        users.append(np.full(len(ids) - 1, ids[0]))
        items.append(ids[1:])
        positions.append(np.arange(len(ids) - 1))
    if not users:
        raise SourceFormatError(f"{path}: no sequences; expected lines 'user item item ...'")
    user = np.concatenate(users)
    starts = np.r_[True, user[1:] != user[:-1]]
    if len(np.unique(user[starts])) != int(starts.sum()):
        raise SourceFormatError(f"{path}: a user has more than one line")
    return user, np.concatenate(items), np.concatenate(positions)


def _beauty_titles(folder: Path) -> pd.DataFrame:
    """P5 item id, asin, title: from items_with_titles.tsv, else datamaps.json + meta_Beauty.json.gz."""
    if (folder / "items_with_titles.tsv").is_file():
        table = read_delimited(
            folder / "items_with_titles.tsv", "\t", ["p5", "asin", "title"], {"p5": "int64"}, header=True
        )
        return table
    if not all((folder / name).is_file() for name in BEAUTY_META):
        raise RawDataMissingError(
            f"{folder / 'items_with_titles.tsv'} missing (item titles), and so is "
            f"{' or '.join(str(folder / n) for n in BEAUTY_META if not (folder / n).is_file())} (the fallback)"
        )
    id2item = json.loads((folder / "datamaps.json").read_text(encoding="utf-8"))["id2item"]
    titles: dict[str, str] = {}
    with gzip.open(folder / "meta_Beauty.json.gz", "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            try:
                record = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                raise SourceFormatError(
                    f"{folder / 'meta_Beauty.json.gz'}: line {n}: not a Python dict literal"
                ) from None
            if "asin" in record:
                titles[record["asin"]] = str(record.get("title", ""))
    p5 = np.array(sorted(int(k) for k in id2item), dtype=np.int64)
    asin = [id2item[str(k)] for k in p5]
    return pd.DataFrame({"p5": p5, "asin": asin, "title": [titles.get(a, "") for a in asin]})


def load_beauty(folder: Path) -> RawDataset:
    """Amazon Beauty 5-core (P5 files) from ``folder``."""
    folder = Path(folder)
    require_files(folder, BEAUTY_FILES[:1])
    user, item, position = read_sequences(folder / "sequential_data.txt")
    table = _beauty_titles(folder).sort_values("p5", kind="stable").reset_index(drop=True)
    ids = table["p5"].to_numpy()
    if len(np.unique(ids)) != len(ids):
        raise SourceFormatError(f"{folder}: item ids of the title table are not unique")
    pos = np.minimum(np.searchsorted(ids, item), len(ids) - 1)
    known = ids[pos] == item
    if not known.all():
        raise SourceFormatError(
            f"{folder / 'sequential_data.txt'}: item {int(item[~known][0])} has no row in the title table"
        )
    user_id, user_p5 = contiguous(user)
    user_raw = user_p5.astype(str)
    if (folder / "datamaps.json").is_file():
        id2user = json.loads((folder / "datamaps.json").read_text(encoding="utf-8")).get("id2user", {})
        user_raw = np.array([id2user.get(str(u), str(u)) for u in user_p5], dtype=object)
    titles = table["title"].astype(str).str.strip().to_numpy()
    items = items_frame(table["asin"].to_numpy(), titles, np.full(len(ids), ""), np.full(len(ids), -1))
    inter = interactions_frame(user_id, pos, position, np.ones(len(user_id)))
    return RawDataset(
        name="amazon-beauty",
        items=items,
        interactions=inter,
        users=users_table(user_raw),
        time_kind="sequence",
        explicit=False,
    )


# ---------------------------------------------------------------- amazon-2023 (Hugging Face)


_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


def clean_title(text: object) -> str:
    """Title cleaning of the Amazon 2023 benchmark scripts: unescape HTML, drop tags, non-ASCII and control
    characters to spaces, collapse spaces. Lists are joined with ", " (some metadata fields are lists)."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    if isinstance(text, list | tuple | np.ndarray):
        text = ", ".join(str(t) for t in text)
    out = html.unescape(str(text))
    out = _TAG.sub("", out)
    out = re.sub(r"[^\x20-\x7E]", " ", out)
    return _SPACES.sub(" ", out).strip()


def clean_titles(titles: pd.Series) -> pd.Series:
    return titles.map(clean_title).astype(object)


def five_core(frame: pd.DataFrame, k: int = CORE_K, user: str = "user", item: str = "item") -> pd.DataFrame:
    """Iterative k-core: drop users and items with fewer than ``k`` rows until none is left (order kept)."""
    u = pd.factorize(frame[user])[0]
    i = pd.factorize(frame[item])[0]
    keep = np.ones(len(frame), dtype=bool)
    while True:
        nu = np.bincount(u[keep], minlength=u.max() + 1 if len(u) else 0)
        ni = np.bincount(i[keep], minlength=i.max() + 1 if len(i) else 0)
        drop = keep & ((nu[u] < k) | (ni[i] < k))
        if not drop.any():
            break
        keep &= ~drop
    return frame[keep].reset_index(drop=True)


def first_reviews(reviews: pd.DataFrame) -> pd.DataFrame:
    """Each user's reviews in time order (stable), a repeated (user, item) review dropped (the first is kept)."""
    ordered = reviews.sort_values(["user", "timestamp"], kind="stable")
    return ordered[~ordered.duplicated(["user", "item"], keep="first")].reset_index(drop=True)


def _year(details: pd.Series) -> np.ndarray:
    found = (
        details.fillna("").astype(str).str.extract(r"Date First Available\W+[^\"]*?\b((?:19|20)\d{2})\b", expand=False)
    )
    return pd.to_numeric(found, errors="coerce").fillna(-1).to_numpy(dtype=np.int64)


def _deepest_category(categories: pd.Series) -> np.ndarray:
    def last(value: object) -> str:
        if value is None or isinstance(value, float):
            return ""
        values = list(value)
        return clean_title(values[-1]).replace("|", "/") if values else ""

    return categories.map(last).to_numpy(dtype=object)


def build_amazon2023(reviews: pd.DataFrame, meta: pd.DataFrame, k: int = CORE_K) -> RawDataset:
    """The 2023 pipeline on in-memory frames (``REVIEW_COLUMNS`` and ``META_COLUMNS``); timestamps in ms."""
    missing = [c for c in REVIEW_COLUMNS if c not in reviews.columns] + [
        c for c in META_COLUMNS if c not in meta.columns
    ]
    if missing:
        raise SourceFormatError(f"amazon-2023: columns {missing} missing from the cached reviews/meta")
    meta = meta.drop_duplicates("parent_asin", keep="first").reset_index(drop=True)
    meta = meta.assign(clean=clean_titles(meta["title"]))
    meta = meta[meta["clean"].str.len() > 0]
    frame = pd.DataFrame(
        {
            "user": reviews["user_id"].astype(str).to_numpy(),
            "item": reviews["parent_asin"].astype(str).to_numpy(),
            "rating": reviews["rating"].to_numpy(dtype=np.float64),
            "timestamp": reviews["timestamp"].to_numpy(dtype=np.int64) // 1000,
        }
    )
    frame = frame[frame["item"].isin(meta["parent_asin"].astype(str))]
    frame = five_core(first_reviews(frame), k)
    item_id, item_raw = contiguous(frame["item"].to_numpy())
    user_id, user_raw = contiguous(frame["user"].to_numpy())
    meta = meta.set_index(meta["parent_asin"].astype(str)).loc[item_raw]
    items = items_frame(
        item_raw, meta["clean"].to_numpy(), _deepest_category(meta["categories"]), _year(meta["details"])
    )
    return RawDataset(
        name="amazon-2023",
        items=items,
        interactions=interactions_frame(user_id, item_id, frame["timestamp"], frame["rating"]),
        users=users_table(user_raw),
        time_kind="unix",
        explicit=True,
    )


def cache_files(category: str) -> tuple[str, str]:
    """Names of the cached reviews and metadata of ``category`` inside ``<raw_dir>/amazon-2023/``."""
    return f"reviews_{category}.parquet", f"meta_{category}.parquet"


def load_amazon2023(folder: Path, category: str = "All_Beauty") -> RawDataset:
    """Amazon Reviews 2023 ``category`` from the parquet cache that ``lure.data.fetch`` writes in ``folder``."""
    folder = Path(folder)
    require_files(folder, cache_files(category))
    reviews_file, meta_file = cache_files(category)
    reviews = pd.read_parquet(folder / reviews_file, columns=REVIEW_COLUMNS)
    meta = pd.read_parquet(folder / meta_file, columns=META_COLUMNS)
    return build_amazon2023(reviews, meta)


def download_amazon2023(folder: Path, category: str) -> None:
    """Fetch ``category`` with Hugging Face ``datasets`` and cache the needed columns as parquet (atomically).

    Uses the dataset's parquet configs (``datasets`` >= 4 no longer runs loading scripts); an older ``datasets``
    that asks for ``trust_remote_code`` is retried with it.
    """
    from lure.io import write_parquet

    try:
        import datasets
    except ImportError:
        raise RawDataMissingError(
            "amazon-2023 needs the Hugging Face 'datasets' package to download the reviews: pip install datasets"
        ) from None

    def load(config: str, columns: list[str]) -> pd.DataFrame:
        try:
            ds = datasets.load_dataset(HF_REPO, config, split="full")
        except Exception as exc:
            if "trust_remote_code" not in str(exc):
                raise
            ds = datasets.load_dataset(HF_REPO, config, split="full", trust_remote_code=True)
        frame = ds.select_columns(columns).to_pandas()
        if "details" in frame.columns:
            frame["details"] = frame["details"].map(lambda d: d if isinstance(d, str) else json.dumps(d, default=str))
        return frame

    reviews_file, meta_file = cache_files(category)
    # Meta first: it is the smaller download, so a bad category name fails fast.
    meta = load(f"raw_meta_{category}", META_COLUMNS)
    reviews = load(f"raw_review_{category}", REVIEW_COLUMNS)
    write_parquet(folder / meta_file, meta)
    write_parquet(folder / reviews_file, reviews)


def _beauty_needed(folder: Path, source: AmazonBeautySource) -> tuple[str, ...]:
    """sequential_data.txt, plus items_with_titles.tsv unless McAuley's metadata (BEAUTY_META) is there instead."""
    if (folder / "items_with_titles.tsv").is_file() or all((folder / m).is_file() for m in BEAUTY_META):
        return ("sequential_data.txt",)
    return ("sequential_data.txt", "items_with_titles.tsv")


SOURCES.add(
    SourceDefinition(
        "amazon-beauty",
        lambda folder, source: load_beauty(folder),
        required=BEAUTY_FILES,
        needed=_beauty_needed,
        manual="there is no official archive of the P5 files: put sequential_data.txt and datamaps.json "
        "from the Beauty folder of the P5 data release (https://github.com/jeykigung/P5) in {folder}/, with "
        "items_with_titles.tsv (tab-separated, header 'item_id asin title', P5 item ids) or, instead of it, McAuley's "
        "meta_Beauty.json.gz (https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/meta_Beauty.json.gz)",
        spec=AmazonBeautySource,
        reads=("data.source",),
        description="Amazon Beauty 5-core, P5 files",
    )
)

SOURCES.add(
    SourceDefinition(
        "amazon-2023",
        lambda folder, source: load_amazon2023(folder, category=source.category),
        required=(),
        needed=lambda folder, source: cache_files(source.category),
        download=lambda folder, source: download_amazon2023(folder, source.category),
        label=lambda source: f"amazon-2023-{source.category}",
        manual="run prepare where Hugging Face is reachable with the 'datasets' package installed (pip install "
        "datasets): it caches {files} in {folder}/, which can then be copied to an offline machine",
        spec=Amazon2023Source,
        reads=("data.source",),
        description="Amazon Reviews 2023 (Hugging Face), 5-core",
    )
)
