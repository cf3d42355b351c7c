"""The judge stage's path (lure.judge.run, lure.judge.labels.pair_labels, lure.judge.evaluate, calibration_report):
what is asked, the simulated judge behind the request layer, what is cached, how answers become labels, and the
metrics against hand-computed values."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lure.calibrate import calibration_report
from lure.judge.evaluate import judge_report
from lure.judge.labels import pair_labels
from lure.judge.parse import judge_reply
from lure.judge.prompt import presentation_orders
from lure.judge.run import plan_answers, position_stats, run_judge
from lure.judge.simulated import simulate_replies
from lure.layout import Prepared
from lure.pairs import sample_pairs
from lure.requests import (
    Backend,
    ChatRequest,
    OpenAIConfig,
    Response,
    ResponseCache,
    TokenLogprob,
    TopLogprob,
    Usage,
    build_backend,
)
from lure.requests.ledger import Prices
from lure.requests.loopback import Faults, LoopbackServer
from lure.spec.calibrate import CalibrateSpec
from lure.spec.judge import DownweightInvalid, DropInvalid, JudgeSpec, PairwiseMetricsSpec
from lure.spec.pairs import PairsSpec


@pytest.fixture(scope="module")
def world(prepared_150x120_seed7, logistic_150x120_seed7):
    prepared = Prepared(prepared_150x120_seed7)
    pairs = sample_pairs(PairsSpec(mode="labeled", per_user=3), prepared_150x120_seed7, logistic_150x120_seed7, seed=0)
    return pairs, prepared.read_items(), prepared.read_split("holdout", "train")


def test_plan_orders_samples_and_subset(world):
    pairs, items, train = world
    drawn = presentation_orders(len(pairs), 3)
    one = plan_answers(pairs, items, train, JudgeSpec(), seed=3)
    assert list(one.pair) == list(range(len(pairs)))
    assert [p.presentation.i_first for p in one.prompts] == list(drawn)
    both = plan_answers(pairs, items, train, JudgeSpec(order="both", samples=2), seed=3)
    assert len(both.prompts) == 4 * len(pairs)
    for pair in (0, 5):
        rows = np.flatnonzero(both.pair == pair)
        assert sorted(both.sample[rows]) == [0, 0, 1, 1]
        assert sorted(both.prompts[k].presentation.i_first for k in rows) == [False, False, True, True]
    sub = plan_answers(pairs, items, train, JudgeSpec(max_pairs=7), seed=3)
    assert len(sub.prompts) == 7 and len(set(sub.pair)) == 7 and (np.diff(sub.pair) > 0).all()


def test_the_simulated_judge_through_the_request_layer_equals_its_direct_replies(world, tmp_path):
    pairs, items, train = world
    spec = JudgeSpec()
    answers, result = run_judge(pairs, items, train, spec, seed=3, cache=None)
    plan = plan_answers(pairs, items, train, spec, seed=3)
    pop = items["popularity"].to_numpy(np.float64)
    direct, _ = simulate_replies(
        plan.prompts,
        pairs["r_i"].to_numpy(),
        pairs["r_j"].to_numpy(),
        pop[pairs["item_i"]],
        pop[pairs["item_j"]],
        spec.backend,
        seed=3,
    )
    statuses = pd.Series([judge_reply(r, p.presentation).status for r, p in zip(direct, plan.prompts, strict=True)])
    texts = pd.Series([p.text for p in plan.prompts])
    once = ~texts.duplicated(keep=False)  # a prompt asked twice (a pair sampled twice) gets one answer
    assert once.sum() > 0.9 * len(texts)
    assert list(answers["status"][once]) == list(statuses[once])
    assert (answers.groupby(texts)["status"].nunique() == 1).all()
    assert result.ledger.failed == 0 and set(statuses) >= {"valid", "invalid_json", "bad_evidence"}


def test_schema_following_answers_are_cached_and_the_rest_asked_again(world, tmp_path):
    pairs, items, train = world
    spec = JudgeSpec()
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        first, r1 = run_judge(pairs, items, train, spec, seed=3, cache=cache)
        second, r2 = run_judge(pairs, items, train, spec, seed=3, cache=cache)
    asked = ["user_id", "item_i", "item_j", "i_first", "sample"]  # a pair sampled twice is one request
    unusable = len(first.loc[first["status"] == "invalid_json", asked].drop_duplicates())
    assert unusable > 0
    assert r2.ledger.sent == unusable  # only the truncated answers are asked again
    assert r2.ledger.cache_hits == r1.ledger.sent - unusable
    pd.testing.assert_frame_equal(first.drop(columns="cached"), second.drop(columns="cached"))
    # a changed judge parameter never reuses an answer
    other = JudgeSpec(backend={"name": "simulated", "accuracy": 0.6})
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        _, r3 = run_judge(pairs, items, train, other, seed=3, cache=cache)
    assert r3.ledger.cache_hits == 0


def test_a_changed_simulator_never_reuses_cached_answers(world, tmp_path, monkeypatch):
    """The simulated judge's answers are a function of lure's code: an edit to the simulator must miss the cache
    (a stale answer from an older simulator would otherwise pass for the current one)."""
    import inspect

    import lure.judge.run as judge_run
    import lure.judge.simulated

    pairs, items, train = world
    expected = inspect.getsource(lure.judge.simulated) + inspect.getsource(judge_run.simulated_backend)
    assert judge_run.simulator_code_hash() == hashlib.sha256(expected.encode()).hexdigest()
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        _, first = run_judge(pairs, items, train, JudgeSpec(), seed=3, cache=cache)
        monkeypatch.setattr(judge_run, "simulator_code_hash", lambda: "an edited simulator")
        _, edited = run_judge(pairs, items, train, JudgeSpec(), seed=3, cache=cache)
    assert first.ledger.sent > 0 and edited.ledger.cache_hits == 0


def _judge_answer(body: dict) -> str:
    """A judge on the loopback server: always candidate A, quoting A's title from the prompt."""
    text = body["messages"][-1]["content"]
    title = re.search(r'### Candidate A\nTitle: "(.*)"', text).group(1)
    return json.dumps(
        {"winner": "A", "confidence": 0.7, "rationales": [{"claim": "c", "evidence": title, "source": "A"}]}
    )


def test_transport_faults_change_no_valid_judgement(world, tmp_path):
    pairs, items, train = world
    pairs = pairs.iloc[:60].reset_index(drop=True)
    spec = JudgeSpec(concurrency=4)
    runs = {}
    for name, faults in (("clean", Faults()), ("faulty", Faults(rate=0.3, seed=5))):
        with LoopbackServer(faults=faults, answer=_judge_answer) as server:
            config = OpenAIConfig(base_url=server.url, model="m", api_key_env=None, max_retries=8, timeout=2.0)
            answers, _ = run_judge(
                pairs, items, train, spec, seed=3, cache=None, backend_factory=lambda plan, c=config: build_backend(c)
            )
        runs[name] = answers
    clean, faulty = runs["clean"], runs["faulty"]
    assert (clean["status"] == "valid").all()
    assert faulty["status"].isin(["valid", "error"]).all()  # every pair exactly one status; no fault is a verdict
    ok = faulty["status"] == "valid"
    assert ok.mean() > 0.8
    pd.testing.assert_frame_equal(
        faulty[ok].drop(columns=["cached", "finish_reason"]), clean[ok].drop(columns=["cached", "finish_reason"])
    )
    assert (clean["winner"] == np.where(clean["i_first"], "i", "j")).all()


def test_pair_labels_by_hand():
    answers = pd.DataFrame(
        {
            "pair": [0, 0, 1, 1, 2, 3, 3, 3],
            "status": ["valid", "valid", "valid", "bad_evidence", "invalid_json", "valid", "valid", "valid"],
            "winner": ["i", "j", "i", "j", None, "j", "j", "i"],
            "confidence": [0.9, 0.6, 0.8, 0.9, np.nan, 0.55, 0.6, 0.95],
        }
    )
    y, v, n = pair_labels(answers, 5, DropInvalid())
    assert list(y) == [0, 1, 0, -1, 0] and list(v) == [1, 1, 0, 1, 0] and list(n) == [2, 2, 1, 3, 0]
    y, v, _ = pair_labels(answers, 5, DropInvalid(), aggregate="mean_confidence")
    assert list(y) == [1, 1, 0, -1, 0]  # 0.9 - 0.6 > 0; -0.55 - 0.6 + 0.95 < 0
    y, v, _ = pair_labels(answers, 5, DownweightInvalid(factor=0.5))
    assert list(y) == [0, 1, 0, -1, 0] and list(v) == [1, 0.75, 0, 1, 0]  # pair 1: i (1) vs j (0.5), v = mean(1, 0.5)
    y, v, _ = pair_labels(answers, 5, DropInvalid(), evidence_check=False)
    assert list(y) == [0, 0, 0, -1, 0] and list(v) == [1, 1, 0, 1, 0]


def test_position_stats_by_hand():
    answers = pd.DataFrame(
        {
            "pair": [0, 0, 1, 1, 2],
            "i_first": [True, False, True, False, True],
            "sample": [0, 0, 0, 0, 0],
            "winner": ["i", "i", "i", "j", None],
        }
    )
    stats = position_stats(answers)
    # first shown picked: pair 0 (i shown first, i) yes, (j first, i) no; pair 1 yes, yes -> 3 of 4
    assert stats["first_shown_share"] == pytest.approx(0.75)
    assert stats["pairs_in_both_orders"] == 2 and stats["position_consistency"] == pytest.approx(0.5)


def test_judge_report_by_hand():
    pairs = pd.DataFrame(
        {
            "user_id": [0, 0, 1, 1],
            "item_i": [1, 2, 3, 4],
            "item_j": [5, 6, 7, 8],
            "pop_bin": [0, 1, 0, 1],
            "w": [1.0, 2.0, 3.0, 4.0],
            "label": [1, 1, 1, 1],
            "true_pref": [1, -1, 1, 1],
        }
    )
    answers = pd.DataFrame(
        {
            "pair": [0, 1, 2, 3],
            "status": ["valid", "valid", "valid", "invalid_json"],
            "winner": ["i", "i", "j", None],
            "confidence": [0.9, 0.8, 0.7, np.nan],
        }
    )
    scores = pairs[["user_id", "item_i", "item_j"]].assign(score_i=[2.0, 0.0, 1.0, 5.0], score_j=[1.0, 1.0, 0.0, 0.0])
    metrics, table = judge_report(pairs, answers, {"m": scores}, JudgeSpec(), 0, 0.95, 0)
    # labels y = +1, +1, -1, (dropped); predictions i, j, i -> matches 1, 0, 0 with weights 1, 2, 3
    assert metrics["models"]["m"]["all"]["pair_auc_ips"]["mean"] == pytest.approx(1 / 6)
    assert metrics["models"]["m"]["all"]["rjs"]["mean"] == pytest.approx(2 / 6 - 1)
    assert metrics["models"]["m"]["pop_bin_0"]["pair_auc_ips"]["mean"] == pytest.approx(1 / 4)
    # judge +1, +1, -1 against the truth +1, -1, +1: only pair 0 is right
    assert metrics["judge"]["vs_truth"]["accuracy"] == pytest.approx(1 / 3)
    assert metrics["judge"]["pairs_labelled"] == 3
    # truth labels +1, -1, +1, +1 over all four pairs: matches 1, 1, 1, 1
    assert metrics["models"]["m"]["truth_label"]["all"]["pair_auc_ips"] == pytest.approx(1.0)
    assert list(table["bucket"]) == ["ALL", "pop_bin=0", "pop_bin=1"] and (table["model"] == "m").all()
    with pytest.raises(ValueError, match="do not match data/pairs"):
        judge_report(pairs, answers, {"m": scores.iloc[::-1]}, JudgeSpec(), 0, 0.95, 0)


def test_judge_accuracy_vs_truth_on_the_world(world):
    pairs, items, train = world
    spec = JudgeSpec(backend={"name": "simulated", "accuracy": 0.9, "position_bias": 0.0, "invalid_rate": 0.0})
    answers, _ = run_judge(pairs, items, train, spec, seed=3, cache=None)
    metrics, _ = judge_report(pairs, answers, {}, spec, 0, 0.95, 0)
    decided = pairs["r_i"] != pairs["r_j"]
    n = int(decided.sum())
    assert abs(metrics["judge"]["vs_truth"]["accuracy"] - 0.9) < 4 * np.sqrt(0.09 / n) + 0.01


def test_calibration_report_by_hand(tmp_path: Path):
    judged = {"models": {m: {"all": {"rjs": {"mean": r}}} for m, r in {"a": 0.1, "b": 0.3, "c": 0.2}.items()}}
    evaluate = {
        m: {"ips": {"recall_at_20": {"mean": r}}, "truth": {"recall_at_20": {"mean": t}}}
        for m, r, t in (("a", 0.2, 0.1), ("b", 0.5, 0.3), ("c", 0.4, 0.35))
    }
    report = calibration_report(judged, evaluate, CalibrateSpec(reference="a"), ["a", "b", "c"], tmp_path)
    assert report["tuples"]["b"]["delta_recall"] == pytest.approx(0.3)
    assert report["spearman"] == pytest.approx(1.0) and report["kendall"] == pytest.approx(1.0)
    assert report["vs_truth"]["kendall_rjs_true_recall"] == pytest.approx(1 / 3)  # c > b on truth: 2 of 3 concordant
    assert (tmp_path / "calib_link.csv").is_file() and (tmp_path / "calib_link.png").is_file()
    for m in evaluate:  # a constant truth has no ranking: no tau, not a NaN in the metrics
        evaluate[m]["truth"]["recall_at_20"]["mean"] = 0.2
    report = calibration_report(judged, evaluate, CalibrateSpec(reference="a"), ["a", "b", "c"], tmp_path)
    assert report["vs_truth"]["kendall_rjs_true_recall"] is None and report["kendall"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="calibrate.reference 'z'"):
        calibration_report(judged, evaluate, CalibrateSpec(reference="z"), ["a", "b", "c"], tmp_path)


def test_spec_refuses_a_simulated_judge_on_real_data_and_a_bad_reference():
    from lure.spec.model import Spec

    with pytest.raises(ValueError, match="judge.backend 'simulated'"):
        Spec.model_validate({"data": {"source": {"name": "coat"}}, "method": None, "baselines": [], "calibrate": None})
    with pytest.raises(ValueError, match="calibrate.reference 'sasrec'"):
        Spec.model_validate({"calibrate": {"reference": "sasrec"}})
    with pytest.raises(ValueError, match="calibrate.k 7"):
        Spec.model_validate({"calibrate": {"k": 7}})
    with pytest.raises(ValueError, match="needs the judge"):
        Spec.model_validate({"judge": None})
    with pytest.raises(ValueError, match="judge.validity needs ratings collected missing at random"):
        Spec.model_validate({"judge": {"validity": {}}})
    with pytest.raises(ValueError, match="logprob"):
        JudgeSpec(mode="logprob")
    assert Spec.model_validate({"judge": None, "calibrate": None}).judge is None


def test_metrics_options_reach_the_report():
    pairs = pd.DataFrame(
        {"user_id": [0, 0], "item_i": [1, 2], "item_j": [3, 4], "pop_bin": [0, 0], "w": [1.0, 3.0], "label": [1, 1]}
    )
    answers = pd.DataFrame({"pair": [0, 1], "status": ["valid", "valid"], "winner": ["i", "j"], "confidence": [1, 1]})
    scores = pairs[["user_id", "item_i", "item_j"]].assign(score_i=[1.0, 1.0], score_j=[0.0, 0.0])
    ips = judge_report(pairs, answers, {"m": scores}, JudgeSpec(), 0, 0.95, 0)[0]
    flat = judge_report(pairs, answers, {"m": scores}, JudgeSpec(metrics=PairwiseMetricsSpec(ips=False)), 0, 0.95, 0)[0]
    assert ips["models"]["m"]["all"]["pair_auc_ips"]["mean"] == pytest.approx(0.25)
    assert flat["models"]["m"]["all"]["pair_auc_ips"]["mean"] == pytest.approx(0.5)


def test_ablation_table_reads_each_experiments_metrics():
    from lure.judge.ablations import ABLATIONS, ablation_table

    files = {
        ("r0", "judge-metrics"): {
            "judge": {"vs_truth": {"accuracy": 0.8}, "label_rate": 0.9, "pairs": 10},
            "models": {"als": {"all": {"rjs": {"mean": 0.3}}}},
        },
        ("r0", "calibrate"): {"spearman": 0.9, "loo_abs_error": 0.05, "vs_truth": {"kendall_rjs_true_recall": 0.8}},
        ("r0", "pairs"): {"smd_log_pop_after": 0.1},
        ("r1", "judge-metrics"): {
            "judge": {"vs_truth": {"accuracy": 0.7}},
            "models": {"als": {"all": {"rjs": {"mean": 0.2}}}},
        },
    }
    table = ablation_table(lambda rev, stage: files.get((rev, stage)), {"no_ips": "r1", "baseline": "r0"})
    assert list(table["ablation"]) == ["baseline", "no_ips"]  # ABLATIONS order, only those with a revision
    assert table.loc[0, "overrides"] == "(spec as is)" and table.loc[1, "overrides"] == " ".join(ABLATIONS["no_ips"])
    assert table.loc[0, "rjs.als"] == 0.3 and table.loc[1, "judge_accuracy_vs_truth"] == 0.7
    assert table.loc[0, "kendall_rjs_true_recall"] == 0.8 and pd.isna(table.loc[1, "calib_spearman"])


class LabelOdds(Backend):
    """A logprob judge: P(label of item i) = 0.8, shifted by +0.1 toward the first shown candidate ("A")."""

    prices = Prices()

    def __init__(self, title_i: dict[frozenset, str]) -> None:
        self.title_i = title_i

    @property
    def identity(self):
        return {"backend": "odds", "base_url": None, "model": "odds"}

    async def complete(self, request: ChatRequest) -> Response:
        titles = re.findall(r'### Candidate ([AB])\nTitle: "(.*)"', request.messages[-1].content)
        better = self.title_i[frozenset(t for _, t in titles)]
        label_i = next(label for label, title in titles if title == better)
        p_a = (0.8 if label_i == "A" else 0.2) + 0.1
        top = (TopLogprob(token="A", logprob=math.log(p_a)), TopLogprob(token=" B", logprob=math.log(1 - p_a)))
        return Response(
            text="A",
            finish_reason="length",
            logprobs=(TokenLogprob(token="A", logprob=math.log(p_a), top=top),),
            usage=Usage(prompt_tokens=1, completion_tokens=1),
        )


def test_logprob_mode_averages_both_orders(world):
    pairs, items, train = world
    titles = [" ".join(str(t).split()) for t in items["title"]]
    key = pd.Series([frozenset((titles[i], titles[j])) for i, j in zip(pairs["item_i"], pairs["item_j"], strict=True)])
    pairs = pairs[~key.duplicated(keep=False).to_numpy()].reset_index(drop=True)
    title_i = {
        frozenset((titles[i], titles[j])): titles[i] for i, j in zip(pairs["item_i"], pairs["item_j"], strict=True)
    }
    spec = JudgeSpec(backend={"name": "openai", "model": "x"}, mode="logprob", template="judge_pairwise_logprob")
    answers, result = run_judge(pairs, items, train, spec, 3, None, backend_factory=lambda plan: LabelOdds(title_i))
    assert len(answers) == len(pairs) and result.ledger.requests == 2 * len(pairs)
    assert (answers["status"] == "valid").all() and (answers["winner"] == "i").all()
    # i shown first: P(i) = 0.9; j shown first: P(i) = 0.7; the mean cancels the +0.1 toward the first shown
    assert np.allclose(answers["p_i"], 0.8) and np.allclose(answers["confidence"], 0.8)
    assert np.allclose(answers["p_shown_first"], (0.9 + 0.3) / 2)
    assert position_stats(answers)["p_shown_first_mean"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="samples must be 1"):
        JudgeSpec(backend={"name": "openai", "model": "x"}, mode="logprob", samples=2)


def test_every_ablation_sets_every_knob_so_runs_do_not_accumulate():
    from lure.judge.ablations import ABLATIONS, full_overrides, knobs

    baseline = {
        "judge.metrics.ips": True,
        "judge.evidence_check": True,
        "judge.samples": 1,
        "judge.aggregate": "majority",
        "judge.temperature": 0.0,
        "pairs.match_on": ["pop_bin", "age_bin"],
    }
    assert set(knobs()) == set(baseline)
    for name in ABLATIONS:
        got = dict(o.split("=", 1) for o in full_overrides(name, baseline))
        assert set(got) == set(baseline)
        own = dict(o.split("=", 1) for o in ABLATIONS[name])
        for knob, value in got.items():
            assert value == own.get(knob, json.dumps(baseline[knob]))
