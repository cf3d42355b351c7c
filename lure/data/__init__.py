"""Datasets: the simulated world, the canonical parquet layout, item bins and evaluation splits."""

from __future__ import annotations

from lure.data.prepare import prepare
from lure.data.world import World, generate_world

__all__ = ["World", "generate_world", "prepare"]
