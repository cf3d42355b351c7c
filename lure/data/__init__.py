"""Datasets: the simulated world, the canonical parquet layout, item bins and evaluation splits.

Nothing is imported eagerly, so ``lure.layout`` (the file layout, needed by the CLI and the DVC generator) loads
without pandas or the world generator. The ``prepare`` stage's entry point is ``lure.data.prepare.prepare``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lure.data.world import World, generate_world

__all__ = ["World", "generate_world"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lure.data import world

        return getattr(world, name)
    raise AttributeError(f"module 'lure.data' has no attribute {name!r}")
