"""RecLAIF's simulated teacher and judge, the judge-reply parser and the preference pairs, by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lure.reclaif.answer import read_answer
from lure.reclaif.judging import pair_counts, parse_explain_score, parse_verdict, preference_pairs
from lure.reclaif.simulated import (
    WorldTruth,
    explain_score,
    history_genres,
    judge_reply,
    option_scores,
    teacher_answer,
)

# one user (0), five items; r(0, i) and genres chosen so every score below is easy to compute by hand
RELEVANCE = np.array([[0.1, 0.8, 0.4, 0.2, 0.9]])
GENRES = {0: ("Drama",), 1: ("Comedy",), 2: ("Drama", "Comedy"), 3: ("Horror",), 4: ("Drama",)}
TRUTH = WorldTruth(RELEVANCE, GENRES)
TITLES = ["T0", "T1", "T2", "T3", "T4"]  # candidate j is item j
HISTORY = [0, 2, 4, 3]  # Drama x3, Comedy x1, Horror x1


def test_history_genres_by_count_then_name() -> None:
    assert history_genres(HISTORY, GENRES, 2) == ["Drama", "Comedy"]  # Comedy and Horror tie at 1: by name
    assert history_genres(HISTORY, GENRES, 3) == ["Drama", "Comedy", "Horror"]


def test_noiseless_teacher_ranks_by_true_relevance_with_genre_reasons() -> None:
    rng = np.random.default_rng(0)
    text = teacher_answer(0, HISTORY, [0, 1, 2, 3, 4], TITLES, TRUTH, 3, 0.0, 2, "compact", rng)
    assert text == 'Key preferences: Drama; Comedy\n1. "T4" - fits Drama\n2. "T1" - fits Comedy\n3. "T2" - fits Drama'
    m = read_answer(text, TITLES, 3)
    assert m.valid and m.ranked() == [4, 1, 2]


def test_noisy_teacher_still_names_k_distinct_candidates() -> None:
    rng = np.random.default_rng(1)
    orders = set()
    for _ in range(30):
        text = teacher_answer(0, HISTORY, [0, 1, 2, 3, 4], TITLES, TRUTH, 3, 5.0, 2, "paper", rng)
        m = read_answer(text, TITLES, 3)
        assert m.valid
        orders.add(tuple(m.ranked()))
    assert len(orders) > 1  # the noise changes the ranking


def test_option_scores_by_hand() -> None:
    m = read_answer('Key preferences: Drama; Horror\n1. "T1" - fits Comedy\n2. "T3" - adds Horror', TITLES, 2)
    s = option_scores(m, 0, HISTORY, [0, 1, 2, 3, 4], TRUTH, k=2)
    # DCG = 0.8 / log2(2) + 0.2 / log2(3); ideal = 0.9 + 0.8 / log2(3)
    assert s["relevance"] == pytest.approx(5 * (0.8 + 0.2 / math.log2(3)) / (0.9 + 0.8 / math.log2(3)))
    assert s["diversity"] == pytest.approx(5.0)  # {Comedy} vs {Horror}: Jaccard 0
    # preferences Drama, Horror are both in the top 3 (1.0); reasons name a genre of their item: both (1.0)
    assert s["explainability"] == pytest.approx(5.0)
    m2 = read_answer('Key preferences: Jazz\n1. "T0" - adds Comedy\n2. "T2" - fits Drama', TITLES, 2)
    s2 = option_scores(m2, 0, HISTORY, [0, 1, 2, 3, 4], TRUTH, k=2)
    assert s2["diversity"] == pytest.approx(5 * (1 - 1 / 2))  # {Drama} vs {Drama, Comedy}: Jaccard 1/2
    assert s2["explainability"] == pytest.approx(5 * (0 + 1 / 2) / 2)  # Jazz not a history genre; 1 of 2 reasons
    assert explain_score(m2, s2) == f"Score: {1 + round(99 * 1.25 / 5)}"


def test_judge_reply_round_trips_through_the_parser() -> None:
    a = {"relevance": 4.2, "diversity": 1.0, "explainability": 3.0}
    b = {"relevance": 2.0, "diversity": 5.0, "explainability": 5.0}
    w = {"relevance": 1.0, "diversity": 0.25, "explainability": 0.25}  # A: 5.2, B: 4.5
    v = parse_verdict(judge_reply(a, b, w, accuracy=1.0, position_bias=0.0, invalid_rate=0.0, uniforms=[0.5] * 4))
    assert v.status == "ok" and v.chosen == "A"
    assert v.scores["A"] == {"relevance": 4.0, "diversity": 1.0, "explainability": 3.0}
    # an inaccurate draw (U2 >= accuracy) picks the worse option; the position bias picks A whatever the scores
    assert parse_verdict(judge_reply(a, b, w, 0.8, 0.0, 0.0, [0.5, 0.5, 0.9, 0.5])).chosen == "B"
    assert parse_verdict(judge_reply(b, a, w, 1.0, 0.2, 0.0, [0.5, 0.1, 0.5, 0.5])).chosen == "A"
    assert parse_verdict(judge_reply(a, a, w, 1.0, 0.0, 0.0, [0.5] * 4)).status == "tie"
    assert parse_verdict(judge_reply(a, b, w, 1.0, 0.0, 0.5, [0.1, 0.5, 0.5, 0.5])).status == "invalid"


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Chosen Option: B", "ok"),
        ("- Chosen Option: [A]", "ok"),
        ("Chosen Option: Tie", "tie"),
        ("Option A Evaluation:\n- Relevance Score: 7\nChosen Option: A", "invalid"),
        ("I prefer the first.", "invalid"),
    ],
)
def test_parse_verdict_statuses(text: str, status: str) -> None:
    assert parse_verdict(text).status == status


def test_parse_explain_score() -> None:
    assert parse_explain_score("Score: 87") == 87.0
    assert math.isnan(parse_explain_score("Score: 0"))
    assert math.isnan(parse_explain_score("very clear"))


def test_preference_pairs_map_the_shown_order_back_to_the_samples() -> None:
    judged = pd.DataFrame(
        {
            "instance_id": ["i0", "i1", "i2", "i3"],
            "prompt": ["p0", "p1", "p2", "p3"],
            "sample_0": ["a0", "a1", "a2", "a3"],
            "sample_1": ["b0", "b1", "b2", "b3"],
            "first": [0, 1, 0, 1],  # which sample was option A
            "status": ["ok", "ok", "tie", "ok"],
            "chosen": ["A", "A", None, "B"],
        }
    )
    pairs = preference_pairs(judged)
    assert pairs["instance_id"].tolist() == ["i0", "i1", "i3"]
    assert pairs["chosen"].tolist() == ["a0", "b1", "a3"]
    assert pairs["rejected"].tolist() == ["b0", "a1", "b3"]
    assert pair_counts(judged["status"]) == {"judged": 4, "ok": 3, "tie": 1, "invalid": 0}
    with pytest.raises(ValueError, match="unknown judge statuses"):
        pair_counts(pd.Series(["ok", "maybe"]))


def test_an_invalid_answer_scores_zero_whatever_it_names() -> None:
    m = read_answer('Key preferences: Drama\n1. "T4" - fits Drama\n2. "T4" - fits Drama', TITLES, 2)  # duplicate
    assert not m.valid
    assert option_scores(m, 0, HISTORY, [0, 1, 2, 3, 4], TRUTH, k=2) == {
        "relevance": 0.0,
        "diversity": 0.0,
        "explainability": 0.0,
    }
