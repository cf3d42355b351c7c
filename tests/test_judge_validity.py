"""The validity check against real users (lure.judge.validity, stage judge-validity): pairs from ratings, the
history without the judged items, agreement by hand, and the path on Coat with scripted judges."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from lure.judge.labels import pair_labels
from lure.judge.run import run_judge
from lure.judge.validity import agreement, cap, gap, history_without, rating_pairs
from lure.requests import Backend, ChatRequest, Response, Usage
from lure.requests.ledger import Prices
from lure.spec.judge import DropInvalid, JudgeSpec
from tests.conftest import SHARED


def test_rating_pairs_are_within_user_unequal_and_higher_first():
    ratings = pd.DataFrame({"user_id": [0, 0, 0, 1, 1, 2], "item_id": [5, 6, 7, 5, 6, 9], "rating": [5, 3, 3, 2, 2, 4]})
    pairs = rating_pairs(ratings, per_user_pairs=10, seed=0, stream_name="t")
    # user 0: (5, 6) and (5, 7) differ, (6, 7) do not; user 1: equal ratings; user 2: one rating
    assert sorted(map(tuple, pairs[["user_id", "item_i", "item_j"]].to_numpy())) == [(0, 5, 6), (0, 5, 7)]
    assert (pairs["rating_i"] > pairs["rating_j"]).all()
    assert len(rating_pairs(ratings, per_user_pairs=1, seed=0, stream_name="t")) == 1
    assert len(cap(pairs, 1, 0, "c")) == 1 and len(cap(pairs, None, 0, "c")) == 2


def test_history_drops_the_judged_items_of_that_user_only():
    train = pd.DataFrame({"user_id": [0, 0, 1, 1], "item_id": [5, 8, 5, 8], "timestamp": [1, 2, 3, 4]})
    pairs = pd.DataFrame({"user_id": [0], "item_i": [5], "item_j": [9]})
    kept = history_without(train, pairs)
    assert list(map(tuple, kept[["user_id", "item_id"]].to_numpy())) == [(0, 8), (1, 5), (1, 8)]


def test_agreement_and_gap_by_hand():
    users = np.array([0, 0, 1, 1])
    y = np.array([1, -1, 1, 0])
    v = np.array([1.0, 1.0, 1.0, 0.0])  # the last pair was dropped
    got = agreement(users, y, v, resamples=200, confidence=0.9, seed=0, name="mar")
    assert got["accuracy"] == pytest.approx(2 / 3) and got["pairs"] == 3 and got["users"] == 2
    assert got["ci_low"] <= 2 / 3 <= got["ci_high"]
    assert gap({"mar": {"accuracy": 0.6}, "self_selected": {"accuracy": 0.7}}) == pytest.approx(0.1)
    assert gap({"mar": {"accuracy": None}, "self_selected": {"accuracy": 0.7}}) is None


class TitleOracle(Backend):
    """Knows which title is the higher-rated one of each prompt; answers in the prompt's A/B labels."""

    prices = Prices()

    def __init__(self, better: dict[frozenset[str], str], always_first: bool = False) -> None:
        self.better, self.always_first = better, always_first

    @property
    def identity(self):
        return {"backend": "oracle", "base_url": None, "model": str(self.always_first)}

    async def complete(self, request: ChatRequest) -> Response:
        text = request.messages[-1].content
        titles = re.findall(r'### Candidate ([AB])\nTitle: "(.*)"', text)
        winner = self.better[frozenset(t for _, t in titles)]
        label, title = titles[0] if self.always_first else next(t for t in titles if t[1] == winner)
        answer = {
            "winner": label,
            "confidence": 0.9,
            "rationales": [{"claim": "c", "evidence": title, "source": label}],
        }
        return Response(
            text=json.dumps(answer), finish_reason="stop", usage=Usage(prompt_tokens=0, completion_tokens=0)
        )


@pytest.mark.skipif(not (SHARED / "coat").is_dir(), reason=f"Coat is not in {SHARED} (real data, never committed)")
def test_the_validity_path_on_coat(tmp_path):
    from lure.data.prepare import prepare
    from lure.judge.validity import self_selected_ratings
    from lure.layout import Prepared
    from lure.spec.data import DataSpec

    data = DataSpec.model_validate({"source": {"name": "coat", "raw_dir": str(SHARED)}, "min_interactions_per_user": 3})
    prepare(data, 0, tmp_path)
    prepared = Prepared(tmp_path)
    mar = prepared.read_mar(columns=["user_id", "item_id", "rating"])
    selected = self_selected_ratings(prepared, data.source)
    assert set(selected["rating"]) == {1, 2, 3, 4, 5} and set(mar["rating"]) <= {1, 2, 3, 4, 5}
    parts = [
        cap(rating_pairs(log, 2, 0, f"p.{name}"), 40, 0, f"c.{name}").assign(log=name)
        for name, log in (("mar", mar), ("self_selected", selected))
    ]
    pairs = pd.concat(parts, ignore_index=True)
    unordered = pairs[["item_i", "item_j"]].apply(lambda r: frozenset(r), axis=1)
    pairs = pairs[~unordered.duplicated(keep=False)].reset_index(drop=True)  # one verdict per item pair
    items = prepared.read_items()
    history = history_without(prepared.read_split("holdout", "train"), pairs)
    titles = items["title"].to_numpy()
    shown = [" ".join(str(t).split()) for t in titles]
    better = {frozenset((shown[i], shown[j])): shown[i] for i, j in zip(pairs["item_i"], pairs["item_j"], strict=True)}
    assert len(better) == len(pairs) > 40
    spec = JudgeSpec(backend={"name": "openai", "model": "x"}, history_items=5)
    for oracle, expected in ((TitleOracle(better), 1.0), (TitleOracle(better, always_first=True), None)):
        answers, _ = run_judge(pairs, items, history, spec, 0, None, backend_factory=lambda plan, o=oracle: o)
        assert (answers["status"] == "valid").all()
        y, v, _ = pair_labels(answers, len(pairs), DropInvalid())
        for name in ("mar", "self_selected"):
            rows = np.flatnonzero(pairs["log"].to_numpy() == name)
            got = agreement(pairs["user_id"].to_numpy()[rows], y[rows], v[rows], 100, 0.95, 0, name)["accuracy"]
            if expected is not None:
                assert got == pytest.approx(expected)
            else:  # the first shown is i half the time: agreement is the share of pairs shown i first
                shown_first = answers.loc[rows, "i_first"].mean()
                assert got == pytest.approx(shown_first)
