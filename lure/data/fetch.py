"""Getting the raw files of a real dataset into ``<raw_dir>/<source>/``: use what is there, else download.

``ensure_raw`` is what ``prepare`` calls. It never touches files that are already present. When some are
missing it calls :func:`fetch`, which downloads the official archive with ``urllib`` (retrying network faults
with exponential backoff), extracts it into a temporary folder next to the target, checks the sha256 of every
file the adapter reads, and only then swaps the complete folder into place (``lure.io.atomic_dir``; files already
there that the archive lacks are copied over first), so an interrupted or corrupt download never leaves half a
dataset behind and never damages what was there. When the download is impossible (offline, no archive for this
source, checksum mismatch), the error says exactly which files to put where and where to get them.

Checksums are of the extracted files, not of the zip: they are what the adapters read, they are the same
whoever repackages the archive, and they are the values published with the MovieLens test copies
(``movielens.sha256``) and the Coat/LastFM copies used by the tests. A file also passes when its content with
CRLF line endings turned into LF has the expected hash (the MovieLens hashes are of LF text).

Set ``LURE_OFFLINE=1`` to skip download attempts (the error then comes at once).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lure.data.sources.amazon import BEAUTY_META, cache_files, download_amazon2023
from lure.data.sources.base import RawDataMissingError, source_dir
from lure.io import atomic_dir
from lure.registry import SOURCES

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """An official download: its URL and the sha256 of the files the adapter reads (paths inside the dataset
    folder, which is wherever in the zip these files are)."""

    url: str
    sha256: dict[str, str]


ARCHIVES: dict[str, Archive] = {
    "movielens-1m": Archive(
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        {
            "ratings.dat": "506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f",
            "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
            "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
        },
    ),
    "movielens-100k": Archive(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        {
            "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        },
    ),
    "coat": Archive(
        "https://www.cs.cornell.edu/~schnabts/mnar/coat.zip",
        {
            "train.ascii": "a87bd9e7eaf3b89f976df3f25d4aa5d5d871be8a00b58947df9e6e015559bd37",
            "test.ascii": "de6714ab105a5e0be8166be7fd313901b29f9a09c3bea307901457d1d71847e6",
        },
    ),
    "lastfm": Archive(
        "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",
        {
            "user_artists.dat": "001400dc3c7d2667fca6e4ea6dc6acc31a9dd28ad5cd0f74cea988c019934d3b",
            "artists.dat": "4c99dc28397ec559520d5bf5341f4c952c8c416c3de918548f88269b88039806",
        },
    ),
}

#: How to obtain each source by hand (appended to the error when files are missing).
MANUAL: dict[str, str] = {
    "movielens-1m": "download https://files.grouplens.org/datasets/movielens/ml-1m.zip and unzip it there (the files "
    "of its ml-1m/ folder go directly into {folder}/)",
    "movielens-100k": "download https://files.grouplens.org/datasets/movielens/ml-100k.zip and unzip it there (the "
    "files of its ml-100k/ folder go directly into {folder}/)",
    "coat": "download https://www.cs.cornell.edu/~schnabts/mnar/coat.zip and unzip it there (train.ascii, "
    "test.ascii and the user_item_features/ folder go directly into {folder}/)",
    "lastfm": "download https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip and unzip it "
    "there (user_artists.dat, artists.dat, ... directly in {folder}/)",
    "amazon-beauty": "there is no official archive of the P5 files: put sequential_data.txt and datamaps.json "
    "from the Beauty folder of the P5 data release (https://github.com/jeykigung/P5) in {folder}/, with "
    "items_with_titles.tsv (tab-separated, header 'item_id asin title', P5 item ids) or, instead of it, McAuley's "
    "meta_Beauty.json.gz (https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/meta_Beauty.json.gz)",
    "amazon-2023": "run prepare where Hugging Face is reachable with the 'datasets' package installed (pip install "
    "datasets): it caches {files} in {folder}/, which can then be copied to an offline machine",
}


class ChecksumError(RawDataMissingError):
    """A downloaded file does not have the published sha256 (corrupt download or changed upstream file)."""


# ---------------------------------------------------------------- what is missing


def missing_files(source: str, raw_dir: str | Path, *, amazon_category: str = "All_Beauty") -> list[Path]:
    """The files ``source`` needs that are not in ``<raw_dir>/<source>/`` (empty: ready to load)."""
    folder = source_dir(source, raw_dir)
    if source == "amazon-2023":
        needed: tuple[str, ...] = cache_files(amazon_category)
    elif source == "amazon-beauty":
        needed = ("sequential_data.txt",)
        if not (folder / "items_with_titles.tsv").is_file() and not all((folder / m).is_file() for m in BEAUTY_META):
            needed = (*needed, "items_with_titles.tsv")
    else:
        needed = SOURCES.get(source).required
    return [folder / name for name in needed if not (folder / name).is_file()]


def _describe_missing(paths: list[Path]) -> str:
    """Say "<raw_dir>/x/a.dat, b.dat, c.dat are missing": the folder once, then the bare file names."""
    folder = paths[0].parent
    names = [str(paths[0])] + [p.name if p.parent == folder else str(p) for p in paths[1:]]
    return f"{', '.join(names)} {'is' if len(paths) == 1 else 'are'} missing"


def missing_message(source: str, raw_dir: str | Path, paths: list[Path], reason: str, amazon_category: str) -> str:
    folder = source_dir(source, raw_dir)
    how = MANUAL[source].format(folder=folder, files=" and ".join(cache_files(amazon_category)))
    text = f"{_describe_missing(paths)} and could not be downloaded ({reason}); {how}"
    script = Path.cwd().parent / "shared" / "data" / "get-movielens.sh"
    if source.startswith("movielens") and script.is_file():
        sub = "ml-1m" if source == "movielens-1m" else "ml-100k"
        text += f", or run `bash {os.path.relpath(script)} DEST` and copy DEST/{sub}/* into {folder}/"
    return text


# ---------------------------------------------------------------- download, verify, install


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in (408, 425, 429) or exc.code >= 500
    return isinstance(
        exc, urllib.error.URLError | TimeoutError | ConnectionError | socket.timeout | http.client.HTTPException
    )


def download(url: str, dest: Path, *, attempts: int = 4, backoff_s: float = 1.0, timeout_s: float = 60.0) -> None:
    """Stream ``url`` into ``dest``; network faults are retried after backoff_s, 2·backoff_s, 4·backoff_s, ...

    Raises the last error when every attempt failed (or at once for an error a retry cannot fix, e.g. 404).
    """
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, open(dest, "wb") as out:
                while block := response.read(_CHUNK):
                    out.write(block)
            return
        except Exception as exc:
            if not _retryable(exc) or attempt == attempts - 1:
                raise
            time.sleep(backoff_s * 2**attempt)


def sha256_of(path: Path, *, normalise_newlines: bool = False) -> str:
    digest = hashlib.sha256()
    if normalise_newlines:
        digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
    else:
        with open(path, "rb") as fh:
            while block := fh.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


def verify(folder: Path, expected: dict[str, str]) -> None:
    """Every file of ``expected`` exists under ``folder`` with its sha256 (raw, or with CRLF turned into LF)."""
    for name, want in expected.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"{name} is not in the downloaded archive")
        if sha256_of(path) != want and sha256_of(path, normalise_newlines=True) != want:
            raise ChecksumError(
                f"{name}: sha256 {sha256_of(path)} does not match the published {want} (corrupt download or the "
                "upstream file changed); nothing was installed"
            )


def _dataset_root(extracted: Path, expected: dict[str, str]) -> Path:
    """The folder inside the archive that holds the dataset files (archives nest them differently)."""
    first = next(iter(expected))
    hits = sorted(p.parent for p in extracted.rglob(Path(first).name) if p.is_file() and "__MACOSX" not in p.parts)
    if not hits:
        raise ChecksumError(f"{first} is not in the downloaded archive")
    return hits[0]


def _install(root: Path, staging: Path, target: Path) -> None:
    """Fill ``staging`` (the folder that will replace ``target``): the verified dataset files, then copies of the
    entries of an existing ``target`` that the archive lacks (they are kept; the archive's own entries win)."""
    for entry in sorted(root.iterdir()):
        shutil.move(entry, staging / entry.name)
    if not target.is_dir():
        return
    for entry in sorted(target.iterdir()):
        dest = staging / entry.name
        if dest.exists() or dest.is_symlink():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, dest, symlinks=True)
        else:
            shutil.copy2(entry, dest, follow_symlinks=False)


def fetch(
    source: str,
    raw_dir: str | Path,
    *,
    amazon_category: str = "All_Beauty",
    attempts: int = 4,
    backoff_s: float = 1.0,
) -> Path:
    """Download ``source`` into ``<raw_dir>/<source>/`` and return that folder.

    Raises :class:`RawDataMissingError` (naming the files and how to get them) when there is no download for this
    source or it failed, and :class:`ChecksumError` when a downloaded file is not the published one.
    """
    raw_dir = Path(raw_dir)
    target = source_dir(source, raw_dir)
    if source == "amazon-2023":
        target.mkdir(parents=True, exist_ok=True)
        download_amazon2023(target, amazon_category)
        return target
    if source not in ARCHIVES:
        raise RawDataMissingError(f"{source} has no automatic download")
    archive = ARCHIVES[source]
    with atomic_dir(target) as staging:  # replaces target only when complete; on any error nothing changes
        work = staging / ".download"  # the zip and its extraction, removed before the swap
        work.mkdir()
        zip_path = work / "archive.zip"
        download(archive.url, zip_path, attempts=attempts, backoff_s=backoff_s)
        try:
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(work / "x")  # extractall drops absolute paths and ".." components
        except zipfile.BadZipFile as exc:
            raise ChecksumError(f"{archive.url} is not a valid zip archive ({exc})") from None
        root = _dataset_root(work / "x", archive.sha256)
        verify(root, archive.sha256)
        _install(root, staging, target)
        shutil.rmtree(work)
    return target


def ensure_raw(
    source: str,
    raw_dir: str | Path,
    *,
    amazon_category: str = "All_Beauty",
    attempts: int = 4,
    backoff_s: float = 1.0,
) -> Path:
    """``<raw_dir>/<source>/`` with every file the adapter needs: as found, else fetched, else a clear error."""
    missing = missing_files(source, raw_dir, amazon_category=amazon_category)
    if not missing:
        return source_dir(source, raw_dir)
    if os.environ.get("LURE_OFFLINE", "") not in ("", "0"):
        reason = "LURE_OFFLINE is set"
    elif source == "amazon-beauty":
        reason = "there is no official download of these files"
    else:
        try:
            fetch(source, raw_dir, amazon_category=amazon_category, attempts=attempts, backoff_s=backoff_s)
        except ChecksumError as exc:
            raise ChecksumError(missing_message(source, raw_dir, missing, str(exc), amazon_category)) from exc
        except Exception as exc:  # noqa: BLE001 - offline, HTTP error, missing package: all end the same way
            reason = f"{type(exc).__name__}: {exc}"
        else:
            still = missing_files(source, raw_dir, amazon_category=amazon_category)
            if not still:
                return source_dir(source, raw_dir)
            missing, reason = still, "the download did not contain them"
    raise RawDataMissingError(missing_message(source, raw_dir, missing, reason, amazon_category))
