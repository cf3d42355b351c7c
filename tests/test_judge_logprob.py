"""Logprob mode of the judge (lure.judge.logprob, prompts/judge_pairwise_logprob.j2): the request, P(label) read
from the top list by hand-computed examples, the average over both orders, the statuses, and one run through the
transformers backend on a tiny model whose p_i is checked against a softmax of its own logits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lure.judge.labels import label
from lure.judge.logprob import (
    LogprobVerdict,
    label_probabilities,
    logprob_verdict,
    to_judgement,
    verdict_request,
)
from lure.judge.prompt import JUDGE_BLOCKS, JudgeTemplate, judge_item, judge_prompts
from lure.judge.requests import judge_messages
from lure.layout import is_judge_template, recommender_template_names
from lure.requests import Response, TokenLogprob, TopLogprob
from lure.spec.judge import DropInvalid

HISTORY = [judge_item("Heat (1995)", "Crime|Action", 1, 2), judge_item("Up (2009)", "Animation", 0, 4)]
ITEM_I = judge_item("Alien (1979)", "Horror|Sci-Fi", 2, 1)
ITEM_J = judge_item("Aliens (1986)", "Horror", 2, 1)


@pytest.fixture(scope="module")
def template() -> JudgeTemplate:
    return JudgeTemplate("judge_pairwise_logprob")


def answer(*top: tuple[str, float], finish_reason: str = "length") -> Response:
    """An ok response whose first token's top list holds ``top`` (token, probability)."""
    listed = tuple(TopLogprob(token=t, logprob=math.log(p)) for t, p in top)
    first = TokenLogprob(token=top[0][0], logprob=listed[0].logprob, top=listed)
    return Response(text=top[0][0], finish_reason=finish_reason, logprobs=(first,))


def test_template_differs_from_the_json_prompt_only_in_its_answer_block(template: JudgeTemplate) -> None:
    json_prompt = JudgeTemplate().render(HISTORY, ITEM_I, ITEM_J, True).prompt
    prompt = template.render(HISTORY, ITEM_I, ITEM_J, True).prompt
    assert list(prompt.segments) == list(json_prompt.segments)
    for segment in prompt.segments:
        if segment != "answer":
            assert prompt.segment_text(segment) == json_prompt.segment_text(segment), segment
    asked = prompt.segment_text("answer")
    assert "exactly one letter, A or B, and nothing else" in asked and "JSON" not in prompt.text
    assert is_judge_template("judge_pairwise_logprob")
    assert "judge_pairwise_logprob" not in recommender_template_names()
    assert set(JUDGE_BLOCKS) <= set(template._template.blocks)


def test_verdict_request_asks_for_one_token_and_its_top_list(template: JudgeTemplate) -> None:
    prompt = template.render(HISTORY, ITEM_I, ITEM_J, False)
    request = verdict_request(prompt, "tpl-hash", top_logprobs=5, seed=3)
    assert request.messages == judge_messages(prompt)
    assert [(m.role, m.content) for m in request.messages] == [("user", prompt.text)]
    assert (request.max_tokens, request.temperature, request.logprobs, request.top_logprobs) == (1, 0.0, True, 5)
    assert (request.seed, request.template_hash, request.response_format) == (3, "tpl-hash", None)
    assert verdict_request(prompt, "h").top_logprobs == 20
    with pytest.raises(ValueError, match="top_logprobs"):
        verdict_request(prompt, "h", top_logprobs=0)


def test_label_probability_sums_spellings_and_renormalises() -> None:
    # P(A) = 0.6, P(B) = 0.2 (" B"), "C" is no label: P(A) = 0.6 / 0.8 = 0.75, mass 0.8
    read = label_probabilities(answer(("A", 0.6), (" B", 0.2), ("C", 0.2)))
    assert read.status == "valid"
    assert read.p_first == pytest.approx(0.75) and read.mass == pytest.approx(0.8)
    # "A" 0.3, "b" 0.1, ' "a' 0.1 (quote and space stripped, case folded), "Answer" 0.05 is no label:
    # P(A) = 0.4 / 0.5 = 0.8
    read = label_probabilities(answer(("A", 0.3), ("b", 0.1), (' "a', 0.1), ("Answer", 0.05)))
    assert read.p_first == pytest.approx(0.8) and read.mass == pytest.approx(0.5)
    # one label only: the other counts 0
    assert label_probabilities(answer(("B", 0.9), ("The", 0.05))).p_first == 0.0


def test_both_orders_are_averaged_by_hand() -> None:
    i_first = JudgeTemplate().render(HISTORY, ITEM_I, ITEM_J, True).presentation
    j_first = JudgeTemplate().render(HISTORY, ITEM_I, ITEM_J, False).presentation
    first = answer(("A", 0.6), (" B", 0.2), ("C", 0.2))  # i is A: P(i) = 0.75
    second = answer(("A", 0.3), ("b", 0.1), (' "a', 0.1))  # i is B: P(i) = 1 - 0.8 = 0.2
    verdict = logprob_verdict(first, second, i_first, j_first)
    assert verdict.status == "valid" and verdict.winner == "j"
    assert verdict.p_i == pytest.approx((0.75 + 0.2) / 2) and verdict.confidence == pytest.approx(0.525)
    assert verdict.p_i_orders == pytest.approx((0.75, 0.2))
    assert verdict.p_shown_first == pytest.approx((0.75 + 0.8) / 2)  # the judge leans to "A"
    assert verdict.mass == pytest.approx((0.8, 0.5))
    # the order of the arguments does not matter, only which presentation goes with which answer
    swapped = logprob_verdict(second, first, j_first, i_first)
    assert swapped.p_i == pytest.approx(verdict.p_i) and swapped.winner == "j"
    # a pure position preference cancels: A with 0.7 in both orders is a tie
    tie = logprob_verdict(answer(("A", 0.7), ("B", 0.3)), answer(("A", 0.7), ("B", 0.3)), i_first, j_first)
    assert tie.p_i == pytest.approx(0.5) and tie.p_shown_first == pytest.approx(0.7)
    exact = logprob_verdict(answer(("A", 0.5), ("B", 0.5)), answer(("B", 0.5), ("A", 0.5)), i_first, j_first)
    assert exact.winner == "tie" and exact.confidence == 0.5
    judged = to_judgement(verdict)
    assert judged.status == "valid" and judged.answer is not None
    assert (judged.answer.winner, judged.answer.rationales) == ("j", [])
    assert judged.answer.confidence == pytest.approx(0.525)
    assert label(judged, DropInvalid()) == (-1, 1.0)
    with pytest.raises(ValueError, match="both orders"):
        logprob_verdict(first, second, i_first, i_first)


def test_an_error_in_one_order_fails_the_pair() -> None:
    i_first = JudgeTemplate().render(HISTORY, ITEM_I, ITEM_J, True).presentation
    j_first = JudgeTemplate().render(HISTORY, ITEM_I, ITEM_J, False).presentation
    good = answer(("A", 0.6), ("B", 0.4))
    failed = Response(status="error", error="APITimeoutError: Request timed out.")
    verdict = logprob_verdict(good, failed, i_first, j_first)
    assert verdict.status == "error" and verdict.winner is None and verdict.p_i is None
    assert "Request timed out" in verdict.detail and "j shown first" in verdict.detail
    assert verdict.p_i_orders == (pytest.approx(0.6), None)  # the usable order is kept as a diagnostic
    judged = to_judgement(verdict)
    assert (judged.status, judged.answer) == ("error", None) and label(judged, DropInvalid()) == (0, 0.0)
    # no log-probabilities (a server that ignores logprobs) is an error too; an error beats a missing label
    plain = Response(text="A", finish_reason="length")
    assert label_probabilities(plain).status == "error"
    assert logprob_verdict(answer(("The", 0.9)), plain, i_first, j_first).status == "error"
    refused = answer(("A", 0.9), finish_reason="content_filter")
    assert logprob_verdict(good, refused, i_first, j_first).status == "refused"


def test_no_label_among_the_top_tokens_is_invalid_json() -> None:
    i_first = JudgeTemplate().render(HISTORY, ITEM_I, ITEM_J, True).presentation
    j_first = JudgeTemplate().render(HISTORY, ITEM_I, ITEM_J, False).presentation
    missing = answer(("The", 0.5), ("{", 0.3), ("Candidate", 0.1))
    read = label_probabilities(missing)
    assert read.status == "invalid_json" and read.p_first is None and "'The'" in read.detail
    verdict = logprob_verdict(answer(("A", 0.6), ("B", 0.4)), missing, i_first, j_first)
    assert verdict.status == "invalid_json" and verdict.winner is None
    assert to_judgement(verdict).status == "invalid_json"
    assert isinstance(verdict, LogprobVerdict)


def test_judge_prompts_in_both_orders() -> None:
    items = pd.DataFrame(
        {
            "item_id": [0, 1, 2],
            "title": ["A0", "B1", "C2"],
            "genres": ["Drama", "Comedy", "Horror"],
            "pop_bin": [0, 0, 1],
            "age_bin": [0, 1, 0],
        }
    )
    train = pd.DataFrame({"user_id": [0, 0], "item_id": [2, 1], "timestamp": [1, 2]})
    pairs = pd.DataFrame({"user_id": [0, 0], "item_i": [0, 1], "item_j": [1, 2]})
    tpl = JudgeTemplate("judge_pairwise_logprob")
    shown_i = judge_prompts(pairs, items, train, 5, seed=0, template=tpl, i_first=np.ones(2, bool))
    shown_j = judge_prompts(pairs, items, train, 5, seed=0, template=tpl, i_first=[False, False])
    assert [p.presentation.i_first for p in shown_i + shown_j] == [True, True, False, False]
    assert [p.item_i.title for p in shown_j] == ["A0", "B1"]
    with pytest.raises(ValueError, match="one value per pair"):
        judge_prompts(pairs, items, train, 5, seed=0, i_first=[True])


# ----------------------------------------------------------------------------------- through a real (tiny) model


@pytest.fixture(scope="module")
def label_model(tmp_path_factory: pytest.TempPathFactory, template: JudgeTemplate) -> tuple[Path, list, object]:
    """A tiny Llama (untied output layer) whose output rows for "A" and "B" are turned towards the final hidden
    states of the two prompts, so both labels lead the top list and their logits differ by a fraction of a unit."""
    torch = pytest.importorskip("torch")
    from lure.llm.model import build_tiny_llama
    from lure.llm.tokenizer import train_tokenizer
    from lure.requests.backends.transformers_local import render_prompt

    words = ["Alien", "Aliens", "Heat", "Up", "Horror", "Candidate", "Title", "Genres", "history", "user"]
    tokenizer = train_tokenizer([f"{a} {b}" for a in words for b in words], vocab_size=400)
    model = build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, max_positions=4096, seed=0, tie_embeddings=False)
    prompts = [template.render(HISTORY, ITEM_I, ITEM_J, first) for first in (True, False)]
    with torch.no_grad():
        hidden = []
        for p in prompts:
            ids = tokenizer(render_prompt(tokenizer, judge_messages(p)), return_tensors="pt")["input_ids"]
            hidden.append(model.model(ids).last_hidden_state[0, -1])
        u = hidden[0] / hidden[0].norm() + hidden[1] / hidden[1].norm()
        scale = 30.0 / min(float(u @ h) for h in hidden)
        a, b = tokenizer.convert_tokens_to_ids(["A", "B"])
        noise = torch.Generator().manual_seed(1)
        for token in (a, b):
            model.lm_head.weight[token] = scale * u + 0.05 * torch.randn(32, generator=noise)
    folder = tmp_path_factory.mktemp("label-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, prompts, (a, b)


def test_p_i_through_the_transformers_backend_is_the_softmax_of_the_label_logits(label_model) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lure.requests import TransformersConfig, build_backend, run_requests
    from lure.requests.backends.transformers_local import render_prompt

    folder, prompts, (a, b) = label_model
    backend = build_backend(TransformersConfig(model=str(folder), device="cpu", dtype="float32", batch_size=2))
    requests = [verdict_request(p, "test") for p in prompts]
    first, second = run_requests(backend, requests, concurrency=2).responses
    verdict = logprob_verdict(first, second, prompts[0].presentation, prompts[1].presentation)
    assert verdict.status == "valid", verdict.detail

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    expected = []
    for p in prompts:
        ids = tokenizer(render_prompt(tokenizer, judge_messages(p)), return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits[0, -1].float()
        p_label = torch.softmax(logits[[a, b]], dim=0)  # P(A), P(B) among the two labels
        expected.append(float(p_label[0] if p.presentation.label_of("i") == "A" else p_label[1]))
        assert float(torch.softmax(logits, dim=0)[[a, b]].sum()) > 0.999  # the labels hold the mass
    assert 0.02 < expected[0] < 0.98 and 0.02 < expected[1] < 0.98  # not saturated: the check means something
    assert verdict.p_i_orders == pytest.approx(tuple(expected), abs=1e-4)
    assert verdict.p_i == pytest.approx(sum(expected) / 2, abs=1e-4)
    assert verdict.winner == ("i" if sum(expected) / 2 > 0.5 else "j")
