"""LLM metrics that cannot be gamed and the language-bias diagnostics (issue 13), against hand-computed values.

The hand computations use a *bigram Llama*: a real ``LlamaForCausalLM`` (so exact ranking takes its tree path)
whose decoder layers add nothing and whose embedding/lm-head make the logits of the next token a table of the
current token alone. A table that is zero except for a few entries gives log-probabilities by hand: from a token
whose row is all zero every next token has probability 1/V; an entry b = log(V - 1) + log m in a row gives that
next token probability m / (m + 1) and each other token 1 / ((m + 1)(V - 1)).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lure.llm.data import sft_examples
from lure.llm.diagnostics import attribution_target, segment_attribution, sequence_logprob
from lure.llm.evaluate import history_share, item_relevance, relevance_tokens, true_relevance
from lure.llm.model import build_tiny_llama
from lure.llm.prompts import (
    completion_affixes,
    completion_title_span,
    encode_completion,
    encode_prompt,
    encode_text,
    load_template,
    render_prompt,
)
from lure.llm.tokenizer import train_tokenizer

TITLES = ["Toy Story", "Heat", "Alien", "Aliens", "Up", "The Matrix", "Casino"]  # "Alien" is a prefix of "Aliens"
YEARS = ["Red River (1990)", "Blue Moon (1985)", "Green Field (2001)", "Night Train (1977)", "Old Road (1969)"]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TITLES, vocab_size=300)


@pytest.fixture(scope="module")
def year_tok():
    # completions end in ')"': the BPE learns that merge, so the last title token straddles the terminator
    return train_tokenizer(YEARS, [YEARS[:3], YEARS[2:]], vocab_size=400)


def ids(tok, *tokens: str) -> list[int]:
    return tok.convert_tokens_to_ids(list(tokens))


def bigram_llama(tok, table: dict[tuple[int, int], float]):
    """Llama whose next-token logits are ``table[(current, next)]`` (0 where absent), whatever came before."""
    v = len(tok)
    hidden = v + v % 2  # one embedding axis per token; two heads of even size
    model = build_tiny_llama(tok, hidden=hidden, layers=1, heads=2, seed=0, tie_embeddings=False).eval()
    with torch.no_grad():
        for p in model.model.layers.parameters():
            p.zero_()  # attention and MLP add 0 to the residual stream: the final state is the token's embedding
        emb = model.model.embed_tokens.weight
        emb.zero_()
        emb[torch.arange(v), torch.arange(v)] = math.sqrt(hidden)  # RMS 1, so the final RMSNorm keeps it
        model.model.norm.weight.fill_(1.0)
        model.lm_head.weight.zero_()
        for (cur, nxt), logit in table.items():
            model.lm_head.weight[nxt, cur] = logit / math.sqrt(hidden)
    return model


def boost(v: int, odds: float) -> float:
    """The logit that gives one token probability odds / (odds + 1) in an otherwise all-zero row of width v."""
    return math.log(v - 1) + math.log(odds)


# ----------------------------------------------------------------------------------------------- title tokens


def test_completion_affixes_are_the_text_around_the_title() -> None:
    for name in ("next_item", "next_item_compact"):
        assert completion_affixes(name) == ("", '"')


def test_title_span_excludes_terminator_and_eos(tok) -> None:
    seq = encode_completion(tok, "Heat")
    assert tok.convert_ids_to_tokens(seq) == ["H", "e", "at", '"', "</s>"]
    assert completion_title_span(tok, "Heat") == (0, 3)
    assert tok.convert_ids_to_tokens(encode_completion(tok, "Aliens")) == ["Al", "i", "en", "s", '"', "</s>"]
    assert completion_title_span(tok, "Aliens") == (0, 4)


def test_a_token_straddling_title_and_terminator_is_a_title_token(year_tok) -> None:
    seq = encode_completion(year_tok, "Red River (1990)")
    assert year_tok.convert_ids_to_tokens(seq)[-2:] == [')"', "</s>"]  # the merge this test is about
    assert completion_title_span(year_tok, "Red River (1990)") == (0, len(seq) - 1)  # only the EOS is left out


def test_title_span_without_offsets_needs_a_clean_boundary(tok, year_tok) -> None:
    class Slow:
        """A tokenizer without offsets (like a slow HF tokenizer): the fallback path."""

        is_fast = False

        def __init__(self, inner) -> None:
            self.inner = inner

        def __call__(self, text, add_special_tokens=False):
            return self.inner(text, add_special_tokens=add_special_tokens)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    assert completion_title_span(Slow(tok), "Heat") == (0, 3)
    with pytest.raises(ValueError, match="cannot separate"):
        completion_title_span(Slow(year_tok), "Red River (1990)")


# ----------------------------------------------------------------------------------------------------- Eq. 2


def test_eq2_over_title_tokens_and_with_terminator_by_hand(tok) -> None:
    v = len(tok)
    h, e = ids(tok, "H", "e")
    quote, eos = ids(tok, '"', "</s>")
    prompt = encode_prompt(tok, render_prompt([], mask=("history",))).input_ids
    assert prompt[-1] not in (h, quote)  # the title's first token is then scored from an all-zero row
    model = bigram_llama(tok, {(h, e): boost(v, 1.0), (quote, eos): boost(v, 1.0)})
    rel = item_relevance(model, tok, TITLES, batch=3)
    with_terminator = item_relevance(model, tok, TITLES, batch=3, include_terminator=True)
    # "Heat" = H e at | " </s>: log P = -log V, -log 2, -log V | -log V, -log 2
    lv, l2 = math.log(v), math.log(2)
    assert rel[1] == pytest.approx(-(2 * lv + l2) / 3, abs=1e-4)  # -4.0336 for V = 300
    assert with_terminator[1] == pytest.approx(-(3 * lv + 2 * l2) / 5, abs=1e-4)  # -3.6995
    # including the terminator moves Eq. 2 by (log V - log 2) / 15 = log(150) / 15 = 0.33404 nats
    assert with_terminator[1] - rel[1] == pytest.approx((lv - l2) / 15, abs=1e-4)
    # Every other title: all tokens from zero rows except the EOS after the quote, so -log V over the title only
    # and (n (-log V) - log V - log 2) / (n + 2) with the terminator; "Alien" is a token prefix of "Aliens".
    for j, title in enumerate(TITLES):
        if title == "Heat":
            continue
        n = completion_title_span(tok, title)[1]
        assert rel[j] == pytest.approx(-lv, abs=1e-4), title
        assert with_terminator[j] == pytest.approx(-((n + 1) * lv + l2) / (n + 2), abs=1e-4), title


def test_eq2_of_a_straddling_title_matches_the_sequence_logprob(year_tok) -> None:
    torch.manual_seed(0)
    model = build_tiny_llama(year_tok, hidden=32, layers=1, heads=2, seed=3).eval()
    prompt = encode_prompt(year_tok, render_prompt([], mask=("history",))).input_ids
    rel = item_relevance(model, year_tok, YEARS, batch=2)
    full = item_relevance(model, year_tok, YEARS, batch=2, include_terminator=True)
    for title, r, f in zip(YEARS, rel, full, strict=True):
        seq, (start, end) = relevance_tokens(year_tok, title)
        assert (start, end) == (0, len(seq) - 1)
        assert r == pytest.approx(sequence_logprob(model, prompt, seq[:end]) / end, abs=1e-4)  # Eq. 2
        # the only difference: the EOS after ')"', scored after the title
        eos = sequence_logprob(model, prompt + seq[:end], seq[end:])
        assert f * len(seq) - r * end == pytest.approx(eos, abs=1e-4)


# ----------------------------------------------------------------------------------------- true relevance@K


def test_true_relevance_skips_history_items_and_reads_on() -> None:
    r = np.array([[0.1, 0.9, 0.5, 0.3, 0.7]])
    ranked = np.array([[1, 4, 2, 0, 3]])  # item 1 (r 0.9) is the user's history and sits first
    assert true_relevance(ranked, [0], r, k=2)[0] == pytest.approx((0.9 + 0.7) / 2)  # without histories: as before
    assert true_relevance(ranked, [0], r, k=2, histories=[[1]])[0] == pytest.approx((0.7 + 0.5) / 2)
    # invariant to where the history item is ranked
    for moved in ([4, 1, 2, 0, 3], [4, 2, 0, 3, 1]):
        assert true_relevance(np.array([moved]), [0], r, k=2, histories=[[1]])[0] == pytest.approx(0.6)
    np.testing.assert_allclose(history_share(ranked, [[1]], 2), [0.5])
    np.testing.assert_allclose(history_share(ranked, [[1]], 1), [1.0])
    np.testing.assert_allclose(history_share(ranked, [[1, 3]], 5), [0.4])


def test_a_list_that_copies_the_history_gains_nothing() -> None:
    r = np.array([[0.9, 0.8, 0.2, 0.1, 0.3], [0.9, 0.8, 0.2, 0.1, 0.3]])
    history = [[0, 1], [0, 1]]
    copier = np.array([[0, 1, 4, 2], [4, 2, 3, -1]])  # row 0 copies the two history items; row 1 has a -1 slot
    got = true_relevance(copier, [0, 1], r, k=2, histories=history)
    np.testing.assert_allclose(got, [(0.3 + 0.2) / 2, (0.3 + 0.2) / 2])  # r of the first two non-history items
    assert true_relevance(copier, [0, 1], r, k=2)[0] == pytest.approx(0.85)  # what copying earned before
    np.testing.assert_allclose(history_share(copier, history, 2), [1.0, 0.0])
    np.testing.assert_allclose(history_share(copier, history, 4), [2 / 4, 0.0])  # -1 slot not counted
    only_history = np.array([[0, 1, -1]])
    assert true_relevance(only_history, [0], r, k=2, histories=[[0, 1]])[0] == 0.0
    with pytest.raises(ValueError, match="one history per"):
        history_share(copier, [[0]], 2)


# ------------------------------------------------------------------------------------------ the diagnostics


def test_attribution_target_is_the_title_after_its_first_token(tok) -> None:
    h, e, at, quote, eos = ids(tok, "H", "e", "at", '"', "</s>")
    assert attribution_target(tok, "Heat") == ([h], [e, at])
    assert attribution_target(tok, "Heat", include_terminator=True) == ([h], [e, at, quote, eos])
    assert attribution_target(tok, "The") == (ids(tok, "The"), [])  # a one-token title has nothing to score


def test_first_token_attribution_by_hand_and_the_others_zero_for_a_bigram(tok) -> None:
    v = len(tok)
    h, e = ids(tok, "H", "e")
    mask = encode_text(tok, load_template().mask_text)
    assert tok.convert_ids_to_tokens(mask) == ["N", "/", "A"]  # the placeholder, as Eq. 2/3 use it
    # P(e | H) = 1/2 with the title's first token; P(e | A) = 3/4 with the placeholder in its place
    model = bigram_llama(tok, {(h, e): boost(v, 1.0), (mask[-1], e): boost(v, 3.0)})
    for include in (False, True):
        att = segment_attribution(model, tok, [["Up", "Alien"], []], ["Heat", "The"], include_terminator=include)
        assert att.skipped == (0 if include else 1)
        # target e, at (+ " </s>): only e's context changes, log(1/2) - log(3/4) = log(2/3)
        assert att.first_token[0] == pytest.approx(math.log(2 / 3), abs=1e-4)
        # a bigram reads only the previous token, and y_1 precedes the target in every ablation: no task or
        # history attribution (the old definition, which also scored y_1 itself, would agree here by accident)
        assert att.task[0] == pytest.approx(0.0, abs=1e-5) and att.history[0] == pytest.approx(0.0, abs=1e-5)


def test_task_history_and_first_token_attributions_score_the_same_tokens(tok) -> None:
    model = build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=1).eval()
    histories, targets = [["Heat", "Alien"], ["Up"], ["Casino"]], ["Aliens", "Toy Story", "The"]
    tpl = load_template()
    mask = encode_text(tok, tpl.mask_text)
    for include in (False, True):
        att = segment_attribution(model, tok, histories, targets, include_terminator=include)
        rows = [(h, t) for h, t in zip(histories, targets, strict=True) if attribution_target(tok, t, None, include)[1]]
        assert len(att.history) == len(rows) and att.skipped == len(targets) - len(rows)
        for n, (history, target) in enumerate(rows):
            prefix, scored = attribution_target(tok, target, include_terminator=include)
            x = encode_prompt(tok, render_prompt(history)).input_ids
            no_hist = encode_prompt(tok, render_prompt(history, mask=("history",))).input_ids
            no_task = encode_prompt(tok, render_prompt(history, mask=("task",))).input_ids
            full = sequence_logprob(model, x + prefix, scored)
            assert att.history[n] == pytest.approx(full - sequence_logprob(model, no_hist + prefix, scored), abs=1e-4)
            assert att.task[n] == pytest.approx(full - sequence_logprob(model, no_task + prefix, scored), abs=1e-4)
            assert att.first_token[n] == pytest.approx(full - sequence_logprob(model, x + mask, scored), abs=1e-4)
    r = att.ratios()
    assert r["ratio_task_to_history"] == pytest.approx(np.mean(att.task) / np.mean(att.history))
    assert r["ratio_first_token_to_history"] == pytest.approx(np.mean(att.first_token) / np.mean(att.history))
    assert r["attribution_samples"] == len(att.history)


def test_one_placeholder_for_eq2_eq3_and_the_ablation(tok) -> None:
    """The history-masked prompt is the same token sequence in Eq. 2 (llm-relevance), Eq. 3 (gdrt-groups rows) and
    the history ablation, and its placeholder tokens are the ones the first-token ablation inserts."""
    tpl = load_template()
    history = ["Heat", "Alien"]
    ablation = encode_prompt(tok, tpl.render(history, mask=("history",)))
    eq2 = encode_prompt(tok, render_prompt([], mask=("history",))).input_ids
    titles = {0: "Heat", 1: "Alien", 2: "Up"}
    windows = pd.DataFrame({"user_id": [7], "history": [[0, 1]], "item_id": [2]})
    eq3 = sft_examples(windows, titles, tok, mask=("history",))[0]
    eq3_prompt = [i for i, m in zip(eq3["input_ids"], eq3["completion_mask"], strict=True) if not m]
    assert ablation.input_ids == eq2 == eq3_prompt
    start, end = ablation.segments["history"]
    assert ablation.input_ids[start:end] == encode_text(tok, tpl.mask_text)
    assert tok.decode(ablation.input_ids[start:end]) == "N/A"  # GDRT §2.2.2's placeholder


# ---------------------------------------------------------------------------------------- spec and stages


def test_new_spec_fields_default_to_title_tokens_and_are_declared_by_their_stages() -> None:
    from lure.pipeline.stages import llm_stages
    from lure.spec.model import Spec
    from tests.conftest import SMALL_LLM_WORLD

    spec = Spec.model_validate(SMALL_LLM_WORLD)
    assert spec.eval.llm.relevance_include_terminator is False
    assert spec.eval.llm.attribution_include_terminator is False
    params = {s.name: s.params for s in llm_stages(spec)}
    assert "eval.llm.relevance_include_terminator" in params["llm-relevance"]
    assert "eval.llm.attribution_include_terminator" in params["llm-base"]
    # llm-base scores the base model's Eq. 2 too (language prior vs popularity, before fine-tuning)
    assert {"eval.llm.relevance_include_terminator", "eval.llm.rank_batch"} <= set(params["llm-base"])
    assert "eval.llm" in params["llm-eval-gdrt"]  # reads attribution_include_terminator and exclude_history
