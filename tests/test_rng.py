"""Named random streams: reproducible, independent of each other and of the order in which they are drawn."""

from __future__ import annotations

import numpy as np
import pytest

from lure.rng import generator, int_seed, stream


def test_same_name_and_seed_give_the_same_numbers() -> None:
    assert np.array_equal(generator(3, "pairs.sample").random(5), generator(3, "pairs.sample").random(5))
    assert int_seed(3, "train") == int_seed(3, "train")


def test_names_and_seeds_separate_streams() -> None:
    a = generator(0, "pairs.sample").random(1000)
    b = generator(0, "pairs.diagnostics").random(1000)
    c = generator(1, "pairs.sample").random(1000)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    # independent streams: correlation of 1000 uniforms within ~4/sqrt(1000) of 0
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.13 and abs(np.corrcoef(a, c)[0, 1]) < 0.13
    # the old `seed + i` idiom collided: seed 0's second stream was seed 1's first; names never do
    assert not np.array_equal(
        generator(0, "evaluate.bootstrap.ips").random(5), generator(1, "evaluate.bootstrap.naive").random(5)
    )


def test_a_stream_does_not_depend_on_draws_elsewhere() -> None:
    first = generator(7, "world.mar").random(10)
    generator(7, "world.items").random(10_000)  # drawing another stream in between changes nothing
    assert np.array_equal(generator(7, "world.mar").random(10), first)


def test_known_values_pin_the_derivation() -> None:
    # SeedSequence(entropy=seed, spawn_key=(blake2b-64 of the name, little endian),)): a change of the derivation
    # would silently change every result, so it is pinned here.
    import hashlib

    key = int.from_bytes(hashlib.blake2b(b"train", digest_size=8).digest(), "little")
    expected = np.random.SeedSequence(5, spawn_key=(key,)).generate_state(1, dtype=np.uint32)[0]
    assert int_seed(5, "train") == int(expected)
    assert stream(5, "train").spawn_key == (key,) and 0 <= int_seed(5, "train") < 2**32
    with pytest.raises(ValueError, match="non-empty name"):
        stream(5, "")
