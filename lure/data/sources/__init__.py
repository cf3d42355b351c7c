"""Adapters of the real datasets: each reads one dataset's files into a :class:`RawDataset`.

``load_source(name, raw_dir)`` reads ``<raw_dir>/<name>/``; ``lure.data.fetch.ensure_raw`` downloads the files
first where that is possible. What each adapter chooses (timestamps, ratings, titles) is in docs/datasets.md.
"""

from __future__ import annotations

from lure.data.sources.base import (
    RawDataMissingError,
    RawDataset,
    SourceFormatError,
    SourceInfo,
    load_source,
    registry,
    source_dir,
)

__all__ = [
    "RawDataMissingError",
    "RawDataset",
    "SourceFormatError",
    "SourceInfo",
    "load_source",
    "registry",
    "source_dir",
]
