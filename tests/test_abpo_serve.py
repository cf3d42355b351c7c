"""The LLM recommender as a serving policy and one round's update on its log, on a tiny random Llama."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lure.abpo.logs import policy_log
from lure.abpo.serve import Recommender
from lure.abpo.train import update_on_log
from lure.abpo.update import UpdateSettings
from lure.llm.model import build_tiny_llama
from lure.llm.tokenizer import train_tokenizer

TITLES = {0: "Heat", 1: "Heat 2", 2: "Alien", 3: "Aliens", 4: "Brazil", 5: "Up"}
WINDOWS = pd.DataFrame(
    {
        "context_id": [0, 1, 2, 3],
        "user_id": [0, 1, 2, 3],
        "history": [[0, 5], [2], [4, 1], [3]],
        "item_id": [1, 3, 2, 0],
    }
)


@pytest.fixture()
def policy() -> Recommender:
    tok = train_tokenizer(list(TITLES.values()) * 5 + ["History: Next:"], vocab_size=300)
    model = build_tiny_llama(tok, hidden=16, layers=1, heads=2, seed=3).eval()
    return Recommender.build(model, tok, "next_item_compact", TITLES, 128)


def test_served_items_carry_their_catalogue_probability(policy: Recommender) -> None:
    prompts = policy.prompts(WINDOWS)
    for temperature in (1.0, 0.5):
        every = [policy.log_probs([p] * len(TITLES), list(TITLES), temperature) for p in prompts]
        assert np.exp(np.array(every)).sum(axis=1) == pytest.approx(np.ones(len(prompts)), abs=1e-5)
        actions, mu = policy.serve(prompts, temperature, torch.Generator().manual_seed(0))
        assert mu == pytest.approx(np.exp([every[n][a] for n, a in enumerate(actions)]), rel=1e-5)


@pytest.mark.parametrize("method", ["sft_positive", "grpo", "abpo"])
def test_one_round_updates_the_model_through_one_loop(policy: Recommender, method: str) -> None:
    log = policy_log(
        1,
        WINDOWS["context_id"],
        WINDOWS["user_id"],
        WINDOWS["history"],
        np.array([1, 3, 2, 0]),
        np.full(4, 0.2),
        np.array([1, 0, 1, 0]),
        "prior:sft",
    )
    before = [p.detach().clone() for p in policy.model.parameters()]
    settings = UpdateSettings(method, group_size=4, anchor=method == "abpo", snips=method == "abpo")
    stats = update_on_log(
        policy, None, log, settings, 2, 1, 1e-2, np.random.default_rng(0), torch.Generator().manual_seed(1)
    )
    assert stats["steps"] == 2 and stats["contexts"] == 2.0
    if method == "grpo":  # GRPO learns only where a rollout named the exposed item
        assert stats["rollouts_naming_exposed"] > 0, "no signal in this draw: pick another generator seed"
    moved = sum(float((p.detach() - b).abs().sum()) for p, b in zip(policy.model.parameters(), before, strict=True))
    assert moved > 0
    assert not policy.model.training  # left ready to serve


class _Scores:
    """A zoo model's interface: scores of every item per user."""

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.tile(np.log([1.0, 2.0, 3.0, 2.0]), (len(users), 1))


def test_a_zoo_prior_serves_a_softmax_of_its_scores() -> None:
    from lure.abpo.serve import zoo_serve

    windows = pd.DataFrame({"user_id": np.zeros(20_000, dtype=int), "history": [[0]] * 20_000})
    actions, mu = zoo_serve(_Scores(), windows, 1.0, np.random.default_rng(0))
    expected = np.array([1, 2, 3, 2]) / 8
    assert mu == pytest.approx(expected[actions])
    assert np.bincount(actions, minlength=4) / len(actions) == pytest.approx(expected, abs=0.01)


def test_a_zoo_prior_adds_its_window_stage() -> None:
    from lure.pipeline.stages import pipeline_stages
    from lure.spec.load import validate_spec

    stages = {s.name: s for s in pipeline_stages(validate_spec({"abpo": {"prior": "itemknn"}}))}
    assert "window-itemknn" in stages and "data/llm/window-models/itemknn" in stages["banditlog"].deps
    assert "window-itemknn" not in {s.name for s in pipeline_stages(validate_spec({}))}
