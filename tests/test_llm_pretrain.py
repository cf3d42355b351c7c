"""Pretraining of the tiny LLM on the prior-weighted corpus (lure/llm/pretrain.py, docs/llm.md "Pretraining"): the
corpus weights, the rows (the masked rows are exactly Eq. 2's token sequence) and the language prior it leaves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lure.llm.evaluate import item_relevance
from lure.llm.model import build_tiny_llama
from lure.llm.pretrain import LIST_TITLES, Corpus, corpus_weights, pretrain
from lure.llm.tokenizer import train_tokenizer
from lure.rng import generator
from lure.spec.llm import PretrainSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEMPLATE = "next_item_compact"
WORDS = ["Amber", "Birch", "Cobalt", "Dune", "Ember", "Fjord", "Garnet", "Harbor", "Indigo", "Juniper"]
# Titles of one shape, so nothing but corpus frequency can tell the high-prior ones (even positions) from the rest.
TITLES = [f"{w} Story ({1990 + i})" for i, w in enumerate(WORDS)]
PRIOR = np.array([2.0, -2.0] * 5)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TITLES, vocab_size=300, template=TEMPLATE)


def test_corpus_weights_are_the_softmax_of_strength_times_prior():
    np.testing.assert_allclose(corpus_weights([0.0, 1.0, 2.0], math.log(2)), [1 / 7, 2 / 7, 4 / 7])
    np.testing.assert_allclose(corpus_weights([0.0, 1.0, 2.0], 0.0), [1 / 3] * 3)  # strength 0: uniform
    np.testing.assert_allclose(corpus_weights([800.0, 0.0], 1.0), [1.0, 0.0])  # no overflow
    with pytest.raises(ValueError, match="finite"):
        corpus_weights([0.0, float("nan")], 1.0)


def test_masked_rows_are_the_eq2_sequence_and_list_rows_the_history_block(tokenizer):
    corpus = Corpus(tokenizer, TITLES, corpus_weights(PRIOR, 1.0), 0.5, TEMPLATE, generator(0, "test"))
    rows = corpus.rows(400)
    texts = [tokenizer.decode(r) for r in rows]
    masked = [t for t in texts if t.startswith("<s>Next item.")]
    lists = [t for t in texts if not t.startswith("<s>Next item.")]
    assert 150 < len(masked) < 250  # masked_share 0.5
    for text in masked:  # the template's history-masked prompt ('N/A', Eq. 2/3's placeholder), then a completion
        assert text.startswith('<s>Next item. History: N/A Next: "') and text.endswith('"</s>'), text
        assert text[len('<s>Next item. History: N/A Next: "') : -len('"</s>')] in TITLES
    for text in lists:
        assert text.startswith('<s>"') and text.endswith('"</s>'), text
        listed = text[len('<s>"') : -len('"</s>')].split('", "')
        assert LIST_TITLES[0] <= len(listed) <= LIST_TITLES[1] and set(listed) <= set(TITLES), text


def test_titles_are_drawn_by_the_corpus_weights(tokenizer):
    weights = np.array([0.6, 0.3, 0.1] + [0.0] * 7)
    corpus = Corpus(tokenizer, TITLES, weights, 1.0, TEMPLATE, generator(0, "test"))
    prefix = len(corpus.masked_prompt)
    drawn = [corpus.completions.index(r[prefix:]) for r in corpus.rows(3000)]
    share = np.bincount(drawn, minlength=len(TITLES)) / len(drawn)
    np.testing.assert_allclose(share, weights, atol=0.03)


def _eq2_gap(tokenizer, strength: float) -> float:
    """Mean Eq. 2 relevance of the high-prior titles minus that of the low-prior ones, after 40 steps."""
    model = build_tiny_llama(tokenizer, hidden=32, layers=1, heads=2, seed=0)
    spec = PretrainSpec(steps=40, batch_size=32, learning_rate=1e-2, prior_strength=strength)
    info = pretrain(model, tokenizer, TITLES, PRIOR, spec, generator(0, "test"), TEMPLATE, progress=False)
    assert info["rows"] == 40 * 32 and info["loss_last"] < info["loss_first"], info
    eq2 = item_relevance(model, tokenizer, TITLES, template=TEMPLATE)
    return float(eq2[PRIOR > 0].mean() - eq2[PRIOR < 0].mean())


def test_pretraining_leaves_a_language_prior_only_with_the_corpus_weighting(tokenizer):
    """After the masked prompt, the base model prefers high-prior titles (measured: 2.4 nats); a uniform corpus
    (strength 0) leaves no such preference (measured: -0.08), so the gap comes from the weighting."""
    assert _eq2_gap(tokenizer, 1.0) > 1.0
    assert abs(_eq2_gap(tokenizer, 0.0)) < 0.5
