"""Atomic writers: every stage output goes through here so a crash never leaves half a file behind.

Each writer writes to a temporary file in the destination directory (same filesystem, so the final
``os.replace`` is atomic) and renames it into place only after the content is complete and flushed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Sorted keys and a trailing newline, so identical content gives identical bytes."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_yaml(path: str | os.PathLike[str], obj: Any, header: str = "") -> Path:
    body = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return write_text(path, header + body)


def write_parquet(path: str | os.PathLike[str], frame: Any) -> Path:
    """Write a pandas DataFrame as parquet without the index; deterministic for identical frames."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
    return Path(path)


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Atomic wrapper for third-party writers that take a path (matplotlib's savefig, numpy.save, ...)."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays appear in metrics; convert rather than fail.
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def fingerprint(root: str | os.PathLike[str]) -> str:
    """Content hash of every file under ``root`` (relative paths and bytes), to tag runs with their data."""
    import hashlib

    base = Path(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def write_npy(path: str | os.PathLike[str], array: Any) -> Path:
    """``np.save`` through a file handle: on a path it would append ".npy" to the temporary name."""
    import numpy as np

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    return write_with(path, save)
