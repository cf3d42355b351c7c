"""Adapters of the real datasets: each reads one dataset's files into a :class:`RawDataset`.

Each adapter module registers its sources in ``lure.registry.SOURCES`` (a :class:`SourceDefinition` each: the loader,
the files it needs, the spec fields it reads). ``load_source(source)`` reads ``<raw_dir>/<name>/`` of a ``data.source``;
``lure.data.fetch.ensure_raw`` downloads the files first where that is possible. What each adapter chooses
(timestamps, ratings, titles) is in docs/datasets.md.
"""

from __future__ import annotations

from lure.data.sources.base import (
    RawDataMissingError,
    RawDataset,
    SourceDefinition,
    SourceFormatError,
    load_source,
    source_dir,
)

__all__ = [
    "RawDataMissingError",
    "RawDataset",
    "SourceDefinition",
    "SourceFormatError",
    "load_source",
    "source_dir",
]
