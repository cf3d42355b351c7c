"""One update step of each method on a tiny random Llama: the direction each moves log pi(exposed | x)."""

from __future__ import annotations

import copy

import pytest
import torch

from lure.abpo.catalogue import catalogue_logprobs
from lure.abpo.update import LoggedBatch, UpdateSettings, step_loss
from lure.llm.model import build_tiny_llama
from lure.llm.prompts import encode_completion
from lure.llm.tokenizer import train_tokenizer
from lure.llm.trie import TokenTrie

TITLES = ["Heat", "Heat 2", "Alien", "Aliens", "Brazil", "Up"]


@pytest.fixture(scope="module")
def world() -> tuple[object, object, TokenTrie, list[int]]:
    tok = train_tokenizer(TITLES * 5, vocab_size=300)
    model = build_tiny_llama(tok, hidden=16, layers=1, heads=2, seed=3)
    return tok, model, TokenTrie.from_titles(tok, TITLES), tok("History: Heat, Up. Next:")["input_ids"]


def batch_of(tok: object, prompt: list[int], item: int, reward: int, mu: float = 0.2) -> LoggedBatch:
    return LoggedBatch(
        prompts=[prompt],
        anchors=[encode_completion(tok, TITLES[item])],
        actions=torch.tensor([item]),
        log_mu=torch.log(torch.tensor([mu])),
        rewards=torch.tensor([reward]),
    )


def moved(world: tuple, settings: UpdateSettings, item: int, reward: int) -> float:
    """log pi(item | x) after one SGD step minus before."""
    tok, base, trie, prompt = world
    model = copy.deepcopy(base)
    batch = batch_of(tok, prompt, item, reward)

    def log_pi() -> float:
        with torch.no_grad():
            lp, _, _ = catalogue_logprobs(model, trie, [prompt], batch.anchors, tok.pad_token_id)
        return float(lp.sum())

    before = log_pi()
    loss, _ = step_loss(model, None, trie, batch, settings, tok.pad_token_id, torch.Generator().manual_seed(0))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return log_pi() - before


def test_sft_on_a_positive_raises_its_probability_and_ignores_a_no_response(world: tuple) -> None:
    assert moved(world, UpdateSettings("sft_positive"), 2, 1) > 0
    assert moved(world, UpdateSettings("ips_sft"), 2, 1) > 0
    assert moved(world, UpdateSettings("sft_positive"), 2, 0) == 0.0


def test_abpo_anchor_pulls_a_positive_up_and_pushes_a_no_response_down(world: tuple) -> None:
    abpo = UpdateSettings("abpo", group_size=3, tempering="none", penalty=1.0)
    assert moved(world, abpo, 2, 1) > 0
    assert moved(world, abpo, 2, 0) < 0


def test_grpo_without_a_rollout_naming_the_exposed_item_has_no_signal(world: tuple) -> None:
    # every reward 0 (a no-response): all advantages 0, the step changes nothing
    grpo = UpdateSettings("grpo", group_size=3, anchor=False, snips=False, tempering="none")
    assert moved(world, grpo, 2, 0) == pytest.approx(0.0, abs=1e-7)


def test_method_settings_grpo_is_abpo_with_the_anchor_off() -> None:
    from lure.abpo.update import method_settings
    from lure.spec.abpo import AbpoSpec, VariantSpec

    section = AbpoSpec(group_size=3, penalty=0.5)
    grpo = method_settings(VariantSpec(method="grpo"), section)
    assert (grpo.anchor, grpo.snips, grpo.tempering, grpo.group_size) == (False, False, "none", 3)
    abpo = method_settings(
        VariantSpec(method="abpo", snips=False, tempering="direct", tempering_at="advantage"), section
    )
    assert (abpo.anchor, abpo.snips, abpo.tempering, abpo.penalty) == (True, False, "direct", 0.5)
    assert abpo.tempering_at == "advantage"
