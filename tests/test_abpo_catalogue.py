"""The recommender as a distribution over the catalogue (lure.abpo.catalogue), on a tiny random Llama: the
renormalised title probabilities sum to one over the catalogue, and the sampler draws from that distribution."""

from __future__ import annotations

import math

import pytest
import torch

from lure.abpo.catalogue import catalogue_logprobs, sample_items
from lure.llm.model import build_tiny_llama
from lure.llm.prompts import encode_completion
from lure.llm.tokenizer import train_tokenizer
from lure.llm.trie import TokenTrie

TITLES = ["Heat", "Heat 2", "Alien", "Aliens", "Brazil", "Up"]


@pytest.fixture(scope="module")
def setup() -> tuple[object, object, TokenTrie, list[int]]:
    tok = train_tokenizer(TITLES * 5, vocab_size=300)
    model = build_tiny_llama(tok, hidden=16, layers=1, heads=2, seed=3).eval()
    trie = TokenTrie.from_titles(tok, TITLES)
    prompt = tok("History: Heat, Up. Next:")["input_ids"]
    return tok, model, trie, prompt


def log_pi(setup: tuple, temperature: float = 1.0) -> torch.Tensor:
    tok, model, trie, prompt = setup
    completions = [encode_completion(tok, t) for t in TITLES]
    with torch.no_grad():
        token_logp, _, _ = catalogue_logprobs(
            model, trie, [prompt] * len(TITLES), completions, tok.pad_token_id, temperature
        )
    return token_logp.sum(dim=1)


def test_title_probabilities_sum_to_one_over_the_catalogue(setup: tuple) -> None:
    for temperature in (1.0, 0.5, 2.0):
        assert torch.logsumexp(log_pi(setup, temperature), dim=0).item() == pytest.approx(0.0, abs=1e-5)


def test_sampler_draws_from_the_renormalised_distribution(setup: tuple) -> None:
    tok, model, trie, prompt = setup
    n = 3000
    tokens, items = sample_items(model, trie, prompt, n, 1.0, torch.Generator().manual_seed(0))
    assert all(t == encode_completion(tok, TITLES[i]) for t, i in zip(tokens, items, strict=True))
    freq = torch.bincount(torch.tensor(items), minlength=len(TITLES)).double() / n
    p = log_pi(setup).exp().double()
    # each frequency within 4 binomial standard errors of its probability
    assert (freq - p).abs().max().item() < 4 * math.sqrt(0.25 / n)
