"""Seeded randomness on named, independent streams derived from the spec's master seed.

Every random draw of the pipeline comes from ``stream(seed, name)``: a ``numpy.random.SeedSequence`` whose entropy is
the master seed and whose spawn key is a stable hash of ``name``. Two names give statistically independent streams,
and a stream depends on its name only, never on how many other streams were drawn before it. So adding a draw in one
place (a new diagnostic, a new estimator) never shifts another's numbers, and the same (seed, name) gives the same
numbers in every process and on every machine.

Names are dotted, owner first: ``"world.items"``, ``"pairs.sample"``, ``"evaluate.bootstrap.ips"``. Libraries that take
an integer seed (scikit-learn, implicit, torch, transformers) get ``int_seed(seed, name)``.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _key(name: str) -> int:
    """A stable 64-bit key of ``name`` (Python's ``hash`` is salted per process, so it cannot be used)."""
    if not name:
        raise ValueError("a random stream needs a non-empty name")
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


def stream(seed: int, name: str) -> np.random.SeedSequence:
    """The named stream of ``seed``: independent of every other name, whatever is drawn elsewhere."""
    return np.random.SeedSequence(int(seed), spawn_key=(_key(name),))


def generator(seed: int, name: str) -> np.random.Generator:
    """A NumPy generator on the named stream."""
    return np.random.default_rng(stream(seed, name))


def int_seed(seed: int, name: str) -> int:
    """A 32-bit integer seed from the named stream, for libraries that take an int (sklearn, implicit, torch)."""
    return int(stream(seed, name).generate_state(1, dtype=np.uint32)[0])
