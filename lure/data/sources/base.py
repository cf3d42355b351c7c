"""What every real-dataset adapter returns, shared parsing helpers, and the registry ``load_source``.

An adapter turns the files of one dataset into a :class:`RawDataset`: contiguous integer ids, a catalogue with
titles, and the interaction log with its ratings and (where the data has them) timestamps. Everything that is
the same for every source (rating filter, k-core, sequence order, bins, splits, files) happens later, in
``lure.data.prepare``, so two sources never differ in how they are cut.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from lure.registry import SOURCES, Definition
from lure.spec.source import RealSource, SourceSpec

#: How the ``timestamp`` column of a source is to be read.
#: * "unix": real unix seconds (MovieLens, Amazon 2023);
#: * "sequence": only the order is known: timestamp = position in the user's sequence (Amazon Beauty, P5 files);
#: * "none": no order at all: timestamp = 0 everywhere (Coat, LastFM); prepare orders each user randomly (seeded).
TimeKind = Literal["unix", "sequence", "none"]

ITEM_COLUMNS = ["item_id", "raw_id", "title", "genres", "year"]
RAW_INTERACTION_COLUMNS = ["user_id", "item_id", "timestamp", "rating"]
MAR_COLUMNS = ["user_id", "item_id", "rating"]
_UNIT_SEP = b"\x1f"  # stands in for multi-character separators while parsing


class SourceFormatError(ValueError):
    """A raw file that does not have the expected format; the message names the file, the line and what was
    expected."""


class RawDataMissingError(FileNotFoundError):
    """Raw files of a source are absent and could not be fetched; the message says which files to put where."""


@dataclass(frozen=True)
class RawDataset:
    """One real dataset, read but not yet filtered.

    * ``items``: item_id (int64, contiguous 0..n-1, the catalogue order), raw_id (the dataset's own id, str),
      title (str), genres ("|"-joined str, "" if none), year (int64 release year, -1 if unknown);
    * ``interactions``: user_id (int64, contiguous 0..m-1), item_id, timestamp (int64, see ``time_kind``),
      rating (float64; explicit stars, or the source's documented implicit value), in the source's own order;
    * ``users``: user_id, raw_id (str): the map back to the dataset's user ids;
    * ``mar``: optional missing-at-random ratings (Coat's test set): user_id, item_id, rating;
    * ``explicit``: whether ``rating`` is an explicit star rating (``data.source.min_rating`` may filter it);
    * ``notes``: extra source-specific statistics, reported by prepare as ``raw_<key>``.
    """

    name: str
    items: pd.DataFrame
    interactions: pd.DataFrame
    users: pd.DataFrame
    time_kind: TimeKind
    explicit: bool
    mar: pd.DataFrame | None = None
    notes: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_dataset(self)


def check_dataset(ds: RawDataset) -> None:
    """Invariants every adapter must meet; a violation is a bug in the adapter, so fail loudly and early."""
    items, inter, users = ds.items, ds.interactions, ds.users
    if list(items.columns) != ITEM_COLUMNS:
        raise AssertionError(f"{ds.name}: items columns {list(items.columns)} != {ITEM_COLUMNS}")
    if list(inter.columns) != RAW_INTERACTION_COLUMNS:
        raise AssertionError(f"{ds.name}: interactions columns {list(inter.columns)} != {RAW_INTERACTION_COLUMNS}")
    if not np.array_equal(items["item_id"].to_numpy(), np.arange(len(items))):
        raise AssertionError(f"{ds.name}: item_id must be 0..n-1 in catalogue order")
    if not np.array_equal(users["user_id"].to_numpy(), np.arange(len(users))):
        raise AssertionError(f"{ds.name}: user_id must be 0..m-1 in the users table")
    for frame, cols in ((inter, ("user_id", "item_id", "timestamp")), (items, ("item_id", "year"))):
        for col in cols:
            if frame[col].dtype != np.int64:
                raise AssertionError(f"{ds.name}: {col} must be int64, got {frame[col].dtype}")
    if inter["rating"].dtype != np.float64:
        raise AssertionError(f"{ds.name}: rating must be float64, got {inter['rating'].dtype}")
    if len(inter) and (inter["item_id"].max() >= len(items) or inter["user_id"].max() >= len(users)):
        raise AssertionError(f"{ds.name}: an interaction refers to an unknown user or item")
    if ds.mar is not None and list(ds.mar.columns) != MAR_COLUMNS:
        raise AssertionError(f"{ds.name}: mar columns {list(ds.mar.columns)} != {MAR_COLUMNS}")


# ---------------------------------------------------------------- parsing helpers shared by the adapters


def require_files(folder: Path, names: Sequence[str]) -> None:
    """Fail with the full list of what is missing (not just the first), so one download fixes everything."""
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise RawDataMissingError(f"{', '.join(str(folder / n) for n in missing)} missing")


def read_delimited(
    path: Path,
    sep: str,
    names: Sequence[str],
    dtypes: dict[str, type | str],
    *,
    encoding: str = "utf-8",
    header: bool = False,
) -> pd.DataFrame:
    """Read a delimited text file with exactly ``len(names)`` fields a line, without quoting (titles hold quotes).

    Every non-blank line must have exactly ``len(names) - 1`` separators: pandas would silently pad a short line
    with empty fields, so the count is checked first, on the raw bytes with numpy (milliseconds for a million
    lines). The first offending line is reported as :class:`SourceFormatError` with its 1-based number, its text
    and the expected layout; so is a value that does not parse as its dtype. Windows line endings and a final
    newline are accepted; blank lines are skipped. A multi-character separator ("::") is swapped for a control
    byte so pandas' C parser reads it (ASCII bytes never occur inside a UTF-8 or latin-1 multibyte character).
    """
    layout = sep.join(names)
    data = path.read_bytes().replace(b"\r\n", b"\n")
    sep_bytes = sep.encode("ascii")
    if len(sep_bytes) > 1:
        if _UNIT_SEP in data:
            raise SourceFormatError(f"{path}: unexpected control byte 0x1f; expected lines {layout}")
        data = data.replace(sep_bytes, _UNIT_SEP)
        sep_bytes = _UNIT_SEP
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == 0x0A)
    if len(raw) and raw[-1] != 0x0A:
        ends = np.r_[ends, len(raw)]  # last line without a final newline
    starts = np.r_[0, ends[:-1] + 1] if len(ends) else np.empty(0, np.int64)
    blank = ends == starts
    seps = np.bincount(np.searchsorted(ends, np.flatnonzero(raw == sep_bytes[0])), minlength=len(ends))
    bad = np.flatnonzero(~blank & (seps[: len(ends)] != len(names) - 1))
    if len(bad):
        row = int(bad[0])
        line = data[starts[row] : ends[row]].decode(encoding, errors="replace").replace(_UNIT_SEP.decode(), sep)
        raise SourceFormatError(
            f"{path}: line {row + 1}: malformed line {line[:200]!r}: has {seps[row] + 1} fields, "
            f"expected {len(names)}: {layout}"
        )
    content = np.flatnonzero(~blank)
    first_data = 1 if header else 0
    line_no = content[first_data:] + 1  # 1-based file line of each parsed row
    options: dict[str, Any] = {
        "sep": sep_bytes.decode(),
        "header": None,
        "skiprows": int(content[0]) + 1 if header and len(content) else None,
        "names": list(names),
        "quoting": csv.QUOTE_NONE,
        "keep_default_na": False,
        "na_filter": False,
        "skip_blank_lines": True,
        "encoding": encoding,
        "engine": "c",
    }
    if len(line_no) == 0:
        return pd.DataFrame(
            {n: pd.Series(dtype=object if dtypes.get(n, str) in (str, "str") else dtypes[n]) for n in names}
        )
    typed = {n: (object if k in (str, "str") else k) for n, k in ((n, dtypes.get(n, str)) for n in names)}
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=typed, **options)
    except UnicodeDecodeError as exc:
        raise SourceFormatError(f"{path}: not valid {encoding} text ({exc})") from None
    except (ValueError, OverflowError):
        # A value that is not a number: parse as text to say exactly where.
        frame = pd.read_csv(io.BytesIO(data), dtype=str, **options)
        for name in names:
            kind = dtypes.get(name, str)
            if kind in (str, "str"):
                continue
            col = frame[name]
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
            broken = np.isnan(values)
            if np.dtype(kind).kind in "iu":
                broken |= values != np.floor(np.nan_to_num(values))
            hit = np.flatnonzero(broken)
            if len(hit):
                row = int(hit[0])
                raise SourceFormatError(
                    f"{path}: line {line_no[row]}: field {name!r} = {col.iloc[row]!r} is not a valid "
                    f"{np.dtype(kind).name}; expected {len(names)} fields: {layout}"
                ) from None
        raise
    for name in names:
        if dtypes.get(name, str) in (str, "str"):
            frame[name] = frame[name].astype(object)
    return frame


def year_from_title(titles: pd.Series) -> np.ndarray:
    """The release year written at the end of a MovieLens title, "Toy Story (1995)" -> 1995; -1 if absent."""
    years = titles.str.extract(r"\((\d{4})\)\s*$", expand=False)
    return pd.to_numeric(years, errors="coerce").fillna(-1).to_numpy(dtype=np.int64)


def contiguous(raw: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map raw ids to 0..n-1 in sorted order of the raw ids: (codes, sorted unique raw ids).

    Sorted (not first-appearance) order keeps the ids independent of the file's row order.
    """
    uniques, codes = np.unique(np.asarray(raw), return_inverse=True)
    return codes.astype(np.int64), uniques


def users_table(raw_ids: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"user_id": np.arange(len(raw_ids), dtype=np.int64), "raw_id": np.asarray(raw_ids).astype(str).astype(object)}
    )


def interactions_frame(
    user_id: np.ndarray, item_id: np.ndarray, timestamp: np.ndarray | None, rating: np.ndarray
) -> pd.DataFrame:
    n = len(user_id)
    return pd.DataFrame(
        {
            "user_id": np.asarray(user_id, dtype=np.int64),
            "item_id": np.asarray(item_id, dtype=np.int64),
            "timestamp": np.zeros(n, np.int64) if timestamp is None else np.asarray(timestamp, dtype=np.int64),
            "rating": np.asarray(rating, dtype=np.float64),
        }
    )


def items_frame(
    raw_id: Sequence[object], title: Sequence[str], genres: Sequence[str], year: Sequence[int]
) -> pd.DataFrame:
    n = len(raw_id)
    return pd.DataFrame(
        {
            "item_id": np.arange(n, dtype=np.int64),
            "raw_id": np.asarray(raw_id).astype(str).astype(object),
            "title": np.asarray(title, dtype=object),
            "genres": np.asarray(genres, dtype=object),
            "year": np.asarray(year, dtype=np.int64),
        }
    )


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class Archive:
    """An official download: its URL and the sha256 of the files the adapter reads (paths inside the dataset
    folder, which is wherever in the zip these files are)."""

    url: str
    sha256: dict[str, str]


@dataclass(frozen=True)
class SourceDefinition(Definition):
    """A data source (``data.source``; ``spec`` is its member of the union, ``lure.spec.source``). A real
    dataset: ``build(folder, source)`` reads ``<raw_dir>/<name>/``, where ``required`` are the files it needs
    (``raw_files``: fetched or checked by the ``validate`` stage). ``prepare(data_section, seed, out_dir)`` writes
    the canonical files; None means the path every real dataset shares (``lure.data.prepare``). The simulated world
    has no files and its own ``prepare``.
    """

    required: tuple[str, ...] = ()
    raw_files: bool = True
    prepare: Callable[..., dict[str, float]] | None = None
    #: The official zip (fetched and sha256-checked by ``lure.data.fetch``), if there is one.
    archive: Archive | None = None
    #: A download of its own, ``download(folder, source)`` (e.g. through Hugging Face ``datasets``).
    download: Callable[[Path, Any], None] | None = None
    #: The files needed when they depend on what is there or on the source's fields: ``needed(folder, source)``.
    needed: Callable[[Path, Any], tuple[str, ...]] | None = None
    #: How to obtain the files by hand ({folder}: the dataset folder, {files}: the files needed).
    manual: str = ""
    #: The sub-folder that ``shared/data/get-movielens.sh DEST`` writes this dataset to, if it does.
    script_subdir: str = ""

    #: The dataset's key in reports and paper-table mappings, ``label(source)`` (default: the name).
    label: Callable[[Any], str] | None = None

    def dataset_label(self, source: SourceSpec) -> str:
        return self.label(source) if self.label else self.name

    def files_needed(self, folder: Path, source: RealSource) -> tuple[str, ...]:
        return self.needed(folder, source) if self.needed else self.required


def source_dir(source: RealSource) -> Path:
    """Where the files of a real source live: ``<raw_dir>/<name>/``."""
    return Path(source.raw_dir) / source.name


def load_source(source: RealSource) -> RawDataset:
    """Read a real source (the spec's ``data.source``) from ``<raw_dir>/<name>/`` (no download;
    ``lure.data.fetch.ensure_raw`` does that)."""
    return SOURCES.get(source.name).build(source_dir(source), source)


def dataset_label(source: SourceSpec) -> str:
    """Key of a dataset in the metrics that several datasets' runs fill (llm-report, exposynth) and in the paper
    tables' mappings: its source definition's label (``world`` for the simulated world)."""
    return SOURCES.get(source.name).dataset_label(source)
