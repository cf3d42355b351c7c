"""Window-protocol evaluation helpers (lure.llm.evaluate) against hand-computed values and independent paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lure.llm.data import sample_windows
from lure.llm.diagnostics import sequence_logprob
from lure.llm.evaluate import (
    accuracy,
    coverage,
    fairness,
    item_relevance,
    rank_llm,
    rank_scores,
    true_relevance,
)
from lure.llm.model import build_tiny_llama
from lure.llm.prompts import completion_title_span, encode_completion, encode_prompt, render_prompt
from lure.llm.tokenizer import train_tokenizer

TITLES = ["Red River (1990)", "Blue Moon (1985)", "Green Field (2001)", "Night Train (1977)", "Old Road (1969)"]


@pytest.fixture(scope="module")
def tiny():
    tok = train_tokenizer(TITLES, [TITLES[:3], TITLES[2:]], vocab_size=400)
    return build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=0), tok


def test_accuracy_keys_and_values_per_window() -> None:
    # The metrics are lure.metrics.ranking's (tested in test_metrics_ranking.py); here: one HIT and one NDCG column
    # per K, by target rank. Ranks of item 1: 2, 1, absent (-1 padding never matches).
    ranked = np.array([[3, 1, 2], [1, 2, 3], [7, -1, -1]])
    acc = accuracy(ranked, [1, 1, 1], ks=[1, 2])
    assert list(acc) == ["hit_at_1", "ndcg_at_1", "hit_at_2", "ndcg_at_2"]
    np.testing.assert_array_equal(acc["hit_at_1"], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(acc["hit_at_2"], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(acc["ndcg_at_1"], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(acc["ndcg_at_2"], [0.6309297535714575, 1.0, 0.0], rtol=1e-15)  # D(2) = 1/log2(3)


def test_true_relevance_and_coverage_by_hand() -> None:
    relevance = np.array([[0.1, 0.9, 0.5, 0.3], [0.8, 0.2, 0.4, 0.6]])
    ranked = np.array([[1, 2, 0], [3, -1, -1]])  # user 0: items 1, 2, 0; user 1: item 3 (beam found fewer)
    got = true_relevance(ranked, [0, 1], relevance, k=2)
    np.testing.assert_allclose(got, [(0.9 + 0.5) / 2, 0.6])  # k cuts item 0; the -1 slots are skipped
    np.testing.assert_allclose(true_relevance(ranked, [1, 0], relevance, k=3), [(0.2 + 0.4 + 0.8) / 3, 0.3])
    assert coverage(ranked, 2, n_items=4) == 3 / 4  # items 1, 2, 3
    assert coverage(np.array([[0, 1], [0, 1]]), 2, n_items=10) == 0.2  # the same list for everyone


def test_rank_scores_ties_and_exclusion() -> None:
    scores = np.array([[0.5, 0.9, 0.9, 0.1], [1.0, 0.0, 0.2, 0.3]])
    np.testing.assert_array_equal(rank_scores(scores, 2), [[1, 2], [0, 3]])
    np.testing.assert_array_equal(rank_scores(scores, 2, exclude=[[1], [0, 3]]), [[2, 0], [2, 1]])


def test_fairness_of_ranked_ids_skips_empty_slots() -> None:
    # MGU/DGU themselves are tested in test_metrics_fairness.py; here: the top-K of ranked id arrays, -1 skipped.
    groups = {10: 0, 11: 0, 12: 1, 13: 1}
    ranked = np.array([[10, -1, 13], [10, 12, 11]])
    histories = [np.array([12, 13]), np.array([13, 11])]
    # K = 2: recs 10 | 10, 12 -> group0 2/3, group1 1/3; histories 12, 13, 13, 11 -> 1/4, 3/4
    # GU = (2/3 - 1/4, 1/3 - 3/4) = (5/12, -5/12); MGU = 5/12, DGU = 10/12
    out = fairness(ranked, histories, groups, k=2, n_groups=2, average="pooled")
    assert list(out) == ["mgu_at_2", "dgu_at_2", "gu"]
    assert out["gu"] == pytest.approx([5 / 12, -5 / 12], abs=1e-15)
    assert out["mgu_at_2"] == pytest.approx(5 / 12, abs=1e-15) and out["dgu_at_2"] == pytest.approx(10 / 12, abs=1e-15)


def test_item_relevance_is_the_mean_token_logprob_under_the_masked_prompt(tiny) -> None:
    model, tok = tiny
    rel = item_relevance(model, tok, TITLES, batch=2)
    full = item_relevance(model, tok, TITLES, batch=2, include_terminator=True)
    prompt = encode_prompt(tok, render_prompt([], mask=("history",))).input_ids
    for title, value, with_terminator in zip(TITLES, rel, full, strict=True):
        seq = encode_completion(tok, title)
        _, end = completion_title_span(tok, title)
        assert value == pytest.approx(sequence_logprob(model, prompt, seq[:end]) / end, abs=1e-4)  # Eq. 2
        assert with_terminator == pytest.approx(sequence_logprob(model, prompt, seq) / len(seq), abs=1e-4)


def test_exact_and_beam_ranking_agree_on_the_top_item(tiny) -> None:
    model, tok = tiny
    prompts = [encode_prompt(tok, render_prompt(TITLES[:2])).input_ids]
    ids = [100, 101, 102, 103, 104]
    exact = rank_llm(model, tok, prompts, ids, TITLES, "exact", k=5, beam=5, batch=4, progress=False)
    beam = rank_llm(model, tok, prompts, ids, TITLES, "beam", k=5, beam=5, batch=4, progress=False)
    assert sorted(exact[0].tolist()) == ids  # exact ranks the whole catalogue
    assert exact[0, 0] == beam[0, 0]
    # by hand: the exact order is the order of the sequence log-probabilities
    manual = [sequence_logprob(model, prompts[0], encode_completion(tok, t)) for t in TITLES]
    assert exact[0].tolist() == [ids[j] for j in np.argsort(-np.array(manual), kind="stable")]
    excluded = rank_llm(
        model, tok, prompts, ids, TITLES, "exact", k=5, beam=5, batch=4, exclude=[[int(exact[0, 0])]], progress=False
    )
    assert excluded[0, :4].tolist() == exact[0, 1:].tolist()
    beam_ex = rank_llm(
        model, tok, prompts, ids, TITLES, "beam", k=5, beam=5, batch=4, exclude=[[int(exact[0, 0])]], progress=False
    )
    assert int(exact[0, 0]) not in beam_ex[0].tolist()


def test_sample_windows_is_seeded_ordered_and_complete_when_small() -> None:
    frame = pd.DataFrame({"user_id": range(10), "item_id": range(10)})
    s = sample_windows(frame, 4, seed=3, stream="windows.test")
    assert len(s) == 4 and s["user_id"].is_monotonic_increasing
    assert s.equals(sample_windows(frame, 4, 3, "windows.test")) and not s.equals(
        sample_windows(frame, 4, 4, "windows.test")
    )
    assert not s.equals(sample_windows(frame, 4, 3, "windows.train")), "another stream, another sample"
    assert len(sample_windows(frame, None, 0, "w")) == 10 and len(sample_windows(frame, 50, 0, "w")) == 10


def test_sasrec_scores_histories_like_users_with_the_same_sequence() -> None:
    from lure.models.sasrec import SASRecRecommender

    train = pd.DataFrame({"user_id": [0, 0, 0, 1, 1, 1, 1], "item_id": [1, 2, 3, 3, 2, 4, 0]})
    model = SASRecRecommender(hidden=8, layers=1, heads=1, max_len=5, epochs=2, batch_size=2).fit(train, 2, 5, 0)
    by_user = model.score(np.array([0, 1]))
    by_history = model.score_histories([[1, 2, 3], [3, 2, 4, 0]])
    np.testing.assert_allclose(by_history, by_user, rtol=1e-5, atol=1e-6)
    assert torch.is_tensor(torch.as_tensor(by_history))
