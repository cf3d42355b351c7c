"""Judged pairs scored by an LLM recommender (lure.llm.pair_scores) against a forward pass and the exact ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lure.llm.diagnostics import sequence_logprob
from lure.llm.evaluate import rank_llm
from lure.llm.generate import rank_catalogue
from lure.llm.model import build_tiny_llama
from lure.llm.pair_scores import score_llm_pairs, user_histories
from lure.llm.prompts import encode_completion, encode_prompt, render_prompt
from lure.llm.tokenizer import train_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEMPLATE = "next_item_compact"  # not the library's default template: the one passed in must be the one used
TITLES = [
    "Red River (1990)",
    "Blue Moon (1985)",
    "Green Field (2001)",
    "Night Train (1977)",
    "Old Road (1969)",
    "The Long Night (2011)",
    "Moon River (1995)",
    "Red Planet (2003)",
]
ITEM_IDS = [3, 7, 11, 20, 21, 40, 41, 55]  # not 0..n-1: ids must never be used as positions
TITLE = dict(zip(ITEM_IDS, TITLES, strict=True))
HISTORY_MAX = 2
# Holdout training interactions in canonical order (file order; user 5's timestamps say nothing about it).
TRAIN = pd.DataFrame(
    {
        "user_id": [5, 5, 5, 5, 9, 9, 9, 2],
        "item_id": [3, 7, 11, 20, 40, 3, 41, 21],
        "timestamp": [400, 300, 200, 100, 1, 2, 3, 4],
    }
)
# The most recent HISTORY_MAX items of each user, oldest first; user 4 has no training interaction.
HISTORY = {5: [11, 20], 9: [3, 41], 2: [21], 4: []}


@pytest.fixture(scope="module")
def tiny():
    tok = train_tokenizer(TITLES, [TITLES[:4], TITLES[3:]], vocab_size=400, template=TEMPLATE)
    return build_tiny_llama(tok, hidden=32, layers=2, heads=2, seed=3), tok


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    """Rows of several users interleaved, a non-default index and an extra column: all must come back as they are."""
    rows = [
        (9, 55, 7),
        (5, 40, 41),
        (2, 3, 55),
        (9, 7, 21),
        (5, 41, 40),
        (4, 11, 3),
        (5, 55, 21),
        (2, 40, 7),
        (9, 55, 7),  # a repeated pair
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_i", "item_j"])
    frame["w"] = np.arange(len(frame), dtype=np.float32) + 0.5
    return frame.set_index(pd.Index(np.arange(len(frame))[::-1] * 10))


@pytest.fixture(scope="module")
def scored(tiny, pairs) -> pd.DataFrame:
    model, tok = tiny
    items = pd.DataFrame({"item_id": ITEM_IDS, "title": TITLES})
    return score_llm_pairs(model, tok, TEMPLATE, items, TRAIN, HISTORY_MAX, pairs, max_length=512, batch=3)


def _prompt(tok, history: list[int]) -> list[int]:
    return encode_prompt(tok, render_prompt([TITLE[i] for i in history], TEMPLATE)).input_ids


def test_user_histories_are_the_most_recent_items_in_file_order() -> None:
    got = user_histories(TRAIN, [4, 9, 5, 2], HISTORY_MAX)
    assert [h.tolist() for h in got] == [HISTORY[4], HISTORY[9], HISTORY[5], HISTORY[2]]
    assert all(h.dtype == np.int64 for h in got)
    assert [h.tolist() for h in user_histories(TRAIN, [5], 10)] == [[3, 7, 11, 20]]
    with pytest.raises(ValueError, match="history_max"):
        user_histories(TRAIN, [5], 0)


def test_rows_come_back_in_order_with_float64_scores(scored, pairs) -> None:
    assert list(scored.columns) == [*pairs.columns, "score_i", "score_j"]
    assert scored.index.equals(pairs.index)
    pd.testing.assert_frame_equal(scored[pairs.columns], pairs)
    assert scored["score_i"].dtype == np.float64 and scored["score_j"].dtype == np.float64
    assert np.isfinite(scored[["score_i", "score_j"]].to_numpy()).all()
    assert (scored[["score_i", "score_j"]].to_numpy() < 0).all()
    first, repeated = scored.iloc[0], scored.iloc[-1]  # the same (u, i, j) twice: the same scores
    assert (first["score_i"], first["score_j"]) == (repeated["score_i"], repeated["score_j"])


def test_scores_are_the_completion_logprobs_after_the_users_prompt(tiny, scored) -> None:
    """s(u, i) = log P(title + terminator + EOS | prompt of u's last HISTORY_MAX items), by a plain forward pass."""
    model, tok = tiny
    for row in scored.itertuples():
        prompt = _prompt(tok, HISTORY[row.user_id])
        for item, got in ((row.item_i, row.score_i), (row.item_j, row.score_j)):
            expected = sequence_logprob(model, prompt, encode_completion(tok, TITLE[item], TEMPLATE))
            assert got == pytest.approx(expected, abs=1e-4), (row.user_id, item)


def test_the_history_and_template_matter_so_the_check_above_can_fail(tiny, scored) -> None:
    """Scores from another history (the oldest items, or the recent ones reversed) or the default template differ
    from the returned ones by far more than the tolerance above, so a wrong prompt would be caught."""
    model, tok = tiny
    row = scored[scored["user_id"] == 5].iloc[0]
    title = encode_completion(tok, TITLE[int(row["item_i"])], TEMPLATE)
    for wrong in ([3, 7], [20, 11]):
        assert abs(sequence_logprob(model, _prompt(tok, wrong), title) - row["score_i"]) > 1e-3, wrong
    default = encode_prompt(tok, render_prompt([TITLE[i] for i in HISTORY[5]])).input_ids
    assert abs(sequence_logprob(model, default, title) - row["score_i"]) > 1e-3
    mean = sequence_logprob(model, _prompt(tok, HISTORY[5]), title) / len(title)  # a length-normalised score
    assert abs(mean - row["score_i"]) > 1e-3


def test_pair_order_is_the_order_of_the_exact_ranking(tiny, scored) -> None:
    """For the same prompt, the exact ranking of the whole catalogue puts i above j exactly when score_i > score_j,
    and its scores are the pair scores (up to float32 rounding)."""
    model, tok = tiny
    for user, group in scored.groupby("user_id"):
        prompt = _prompt(tok, HISTORY[user])
        ranked = rank_llm(
            model,
            tok,
            [prompt],
            ITEM_IDS,
            TITLES,
            "exact",
            k=len(ITEM_IDS),
            beam=1,
            batch=3,
            progress=False,
            template=TEMPLATE,
        )[0].tolist()
        position = {item: p for p, item in enumerate(ranked)}
        full = rank_catalogue(model, tok, [prompt], TITLES, template=TEMPLATE)[0].numpy()
        catalogue = dict(zip(ITEM_IDS, full.tolist(), strict=True))
        for row in group.itertuples():
            assert row.score_i == pytest.approx(catalogue[row.item_i], abs=1e-5)
            assert row.score_j == pytest.approx(catalogue[row.item_j], abs=1e-5)
            if abs(row.score_i - row.score_j) > 1e-5:  # a tie within rounding may go either way
                assert (row.score_i > row.score_j) == (position[row.item_i] < position[row.item_j]), row


def test_unknown_pair_items_are_an_error(tiny, pairs) -> None:
    model, tok = tiny
    items = pd.DataFrame({"item_id": ITEM_IDS[:-1], "title": TITLES[:-1]})  # item 55 has no title
    with pytest.raises(KeyError, match="pair items have no title"):
        score_llm_pairs(model, tok, TEMPLATE, items, TRAIN, HISTORY_MAX, pairs, max_length=512)


def test_cpu_scoring_runs_on_one_thread_and_restores_the_count(tiny, pairs, monkeypatch) -> None:
    """Many small ops per user: intra-op threads would only synchronise (and spin on a shared machine)."""
    import lure.llm.generate

    model, tok = tiny
    seen: list[int] = []
    real = lure.llm.generate.rank_catalogue

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(lure.llm.generate, "rank_catalogue", spy)
    items = pd.DataFrame({"item_id": ITEM_IDS, "title": TITLES})
    torch.set_num_threads(2)
    try:
        score_llm_pairs(model, tok, TEMPLATE, items, TRAIN, HISTORY_MAX, pairs.head(3), max_length=512)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert seen == [1, 1, 1]  # three users, each scored once, single-threaded
