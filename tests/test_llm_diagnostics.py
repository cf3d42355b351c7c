"""Feature-ablation attributions (GDRT Figs. 2/7), cross-checked against the exact ranking code path."""

from __future__ import annotations

import numpy as np
import pytest

from lure.llm.diagnostics import Attribution, segment_attribution, sequence_logprob
from lure.llm.generate import rank_catalogue
from lure.llm.model import build_tiny_llama
from lure.llm.prompts import encode_completion, encode_prompt, render_prompt
from lure.llm.tokenizer import train_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TITLES = ["Toy Story", "Heat", "Alien", "Aliens", "Up", "The Matrix", "Casino"]


@pytest.fixture(scope="module")
def tiny():
    tok = train_tokenizer(TITLES, vocab_size=300)
    return build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=1).eval(), tok


def test_sequence_logprob_matches_exact_ranking(tiny) -> None:
    model, tok = tiny
    prompt = render_prompt(["Heat", "Alien"])
    mine = sequence_logprob(model, encode_prompt(tok, prompt).input_ids, encode_completion(tok, "Casino"))
    ref = float(rank_catalogue(model, tok, [prompt], ["Casino"], method="generic")[0, 0])
    assert mine == pytest.approx(ref, abs=1e-4)


def test_history_and_task_attribution_are_logprob_differences(tiny) -> None:
    # The target is the title after its first token, scored with that token in the context (exact ranking path:
    # a prompt that ends in y_1 scores y_2: plus the terminator and EOS; the terminator included here).
    model, tok = tiny
    histories, targets = [["Heat", "Alien"], ["Up"]], ["Aliens", "Toy Story"]
    att = segment_attribution(model, tok, histories, targets, include_terminator=True)
    for n, (history, target) in enumerate(zip(histories, targets, strict=False)):
        y = encode_completion(tok, target)
        prompts = [
            encode_prompt(tok, render_prompt(history)).input_ids + y[:1],
            encode_prompt(tok, render_prompt(history, mask=("history",))).input_ids + y[:1],
            encode_prompt(tok, render_prompt(history, mask=("task",))).input_ids + y[:1],
        ]
        full, no_hist, no_task = rank_catalogue(model, tok, prompts, sequences=[y[1:]], method="generic")[:, 0].tolist()
        assert att.history[n] == pytest.approx(full - no_hist, abs=1e-4)
        assert att.task[n] == pytest.approx(full - no_task, abs=1e-4)
    assert np.all(np.isfinite(att.first_token)) and np.any(att.first_token != 0)


def test_ratios_use_mean_attributions() -> None:
    att = Attribution(task=np.array([1.0, 3.0]), history=np.array([2.0, 2.0]), first_token=np.array([0.5, 1.5]))
    r = att.ratios()
    assert r["ratio_task_to_history"] == pytest.approx(2.0 / 2.0)
    assert r["ratio_first_token_to_history"] == pytest.approx(1.0 / 2.0)
    assert np.isnan(Attribution(np.ones(1), np.zeros(1), np.ones(1)).ratios()["ratio_task_to_history"])
