"""Getting the raw files of a real dataset into ``<raw_dir>/<name>/``: use what is there, else download.

``ensure_raw(source)`` (``source``: the spec's ``data.source``) is what ``prepare`` calls. It never touches files
that are already present. When some are missing it calls :func:`fetch`, which downloads the official archive with
``urllib`` (retrying network faults with exponential backoff), extracts it into a temporary folder next to the
target, checks the sha256 of every file the adapter reads, and only then swaps the complete folder into place
(``lure.io.atomic_dir``; files already there that the archive lacks are copied over first), so an interrupted or
corrupt download never leaves half a dataset behind and never damages what was there. When the download is
impossible (offline, no archive for this source, checksum mismatch), the error says exactly which files to put where
and where to get them.

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
from pathlib import Path

from lure.data.sources.base import RawDataMissingError, source_dir
from lure.io import atomic_dir
from lure.registry import SOURCES
from lure.spec.source import RealSource

_CHUNK = 1 << 20


class ChecksumError(RawDataMissingError):
    """A downloaded file does not have the published sha256 (corrupt download or changed upstream file)."""


# ---------------------------------------------------------------- what is missing


def missing_files(source: RealSource) -> list[Path]:
    """The files ``source`` needs that are not in ``<raw_dir>/<name>/`` (empty: ready to load)."""
    folder = source_dir(source)
    needed = SOURCES.get(source.name).files_needed(folder, source)
    return [folder / name for name in needed if not (folder / name).is_file()]


def _describe_missing(paths: list[Path]) -> str:
    """Say "<raw_dir>/x/a.dat, b.dat, c.dat are missing": the folder once, then the bare file names."""
    folder = paths[0].parent
    names = [str(paths[0])] + [p.name if p.parent == folder else str(p) for p in paths[1:]]
    return f"{', '.join(names)} {'is' if len(paths) == 1 else 'are'} missing"


def missing_message(source: RealSource, paths: list[Path], reason: str) -> str:
    folder = source_dir(source)
    definition = SOURCES.get(source.name)
    files = " and ".join(definition.files_needed(folder, source))
    how = definition.manual.format(folder=folder, files=files)
    text = f"{_describe_missing(paths)} and could not be downloaded ({reason}); {how}"
    script = Path.cwd().parent / "shared" / "data" / "get-movielens.sh"
    if definition.script_subdir and script.is_file():
        sub = definition.script_subdir
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


def fetch(source: RealSource, *, attempts: int = 4, backoff_s: float = 1.0) -> Path:
    """Download ``source`` into ``<raw_dir>/<name>/`` and return that folder.

    Raises :class:`RawDataMissingError` (naming the files and how to get them) when there is no download for this
    source or it failed, and :class:`ChecksumError` when a downloaded file is not the published one.
    """
    target = source_dir(source)
    definition = SOURCES.get(source.name)
    if definition.download is not None:  # a download of its own (Hugging Face datasets)
        target.mkdir(parents=True, exist_ok=True)
        definition.download(target, source)
        return target
    archive = definition.archive
    if archive is None:
        raise RawDataMissingError(f"{source.name} has no automatic download")
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


def ensure_raw(source: RealSource, *, attempts: int = 4, backoff_s: float = 1.0) -> Path:
    """``<raw_dir>/<name>/`` with every file the adapter needs: as found, else fetched, else a clear error."""
    missing = missing_files(source)
    if not missing:
        return source_dir(source)
    definition = SOURCES.get(source.name)
    if os.environ.get("LURE_OFFLINE", "") not in ("", "0"):
        reason = "LURE_OFFLINE is set"
    elif definition.archive is None and definition.download is None:
        reason = "there is no official download of these files"
    else:
        try:
            fetch(source, attempts=attempts, backoff_s=backoff_s)
        except ChecksumError as exc:
            raise ChecksumError(missing_message(source, missing, str(exc))) from exc
        except Exception as exc:  # noqa: BLE001 - offline, HTTP error, missing package: all end the same way
            reason = f"{type(exc).__name__}: {exc}"
        else:
            still = missing_files(source)
            if not still:
                return source_dir(source)
            missing, reason = still, "the download did not contain them"
    raise RawDataMissingError(missing_message(source, missing, reason))
