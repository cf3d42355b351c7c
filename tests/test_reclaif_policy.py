"""The RecLAIF recommender's model code on a tiny Llama built from a config: distillation rows, sampling, one DPO
iteration through TRL (the reference log-probabilities are precomputed, and DPO moves the policy towards the chosen
answers)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from lure.llm.data import IGNORE_INDEX
from lure.llm.model import build_tiny_llama
from lure.llm.tokenizer import train_tokenizer
from lure.reclaif.policy import Sampling, dpo_train, generate_answers, model_prompt, sft_rows

PROMPT = 'Recommend 1. History: "Red Fox"\nCandidates: "Blue Whale", "Green Frog"\nAnswer:\n'
GOOD = 'Key preferences: Animals\n1. "Blue Whale" - fits Animals'
BAD = 'Key preferences: Animals\n1. "Green Frog" - adds Animals'


@pytest.fixture(scope="module")
def tiny(one_torch_thread: None) -> tuple[object, object]:
    tok = train_tokenizer(["Red Fox", "Blue Whale", "Green Frog", PROMPT, GOOD, BAD], vocab_size=300)
    return build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=0), tok


def test_sft_rows_mask_the_prompt_and_end_with_eos(tiny: tuple[object, object]) -> None:
    _, tok = tiny
    (row,) = sft_rows([PROMPT], [GOOD], tok, max_length=512)
    assert row["input_ids"][0] == tok.bos_token_id  # the catalogue BPE adds no BOS itself: model_prompt does
    n_prompt = row["completion_mask"].index(1)
    assert row["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
    assert row["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(row["input_ids"][n_prompt:-1]) == GOOD
    (short,) = sft_rows([PROMPT], [GOOD], tok, max_length=len(row["input_ids"]) - 3)
    assert short["input_ids"][-(len(row["input_ids"]) - n_prompt) :] == row["input_ids"][n_prompt:]  # answer kept
    assert model_prompt(tok, "x") == "<s>x"


def test_sampling_gives_n_answers_per_prompt_and_is_seeded(tiny: tuple[object, object]) -> None:
    model, tok = tiny
    s = Sampling(temperature=1.0, top_p=0.95, max_new_tokens=8, batch_size=2)
    a, stats = generate_answers(model, tok, [PROMPT, PROMPT[:20], PROMPT], 2, s, seed=3)
    b, _ = generate_answers(model, tok, [PROMPT, PROMPT[:20], PROMPT], 2, s, seed=3)
    assert a == b and len(a) == 3 and all(len(x) == 2 for x in a)
    assert stats["answers"] == 6
    greedy, _ = generate_answers(model, tok, [PROMPT], 2, Sampling(0.0, 1.0, 8, 4), seed=0)
    assert greedy[0][0] == greedy[0][1]
    assert tok.padding_side == "right"  # restored for exact ranking


def _answer_logp(model: object, tok: object, answer: str) -> float:
    (row,) = sft_rows([PROMPT], [answer], tok, max_length=512)
    ids = torch.tensor([row["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1], -1)  # type: ignore[operator]
    labels = torch.tensor(row["labels"][1:])
    keep = labels != IGNORE_INDEX
    return float(logp[keep].gather(1, labels[keep][:, None]).sum())


def test_one_dpo_iteration_prefers_the_chosen_answer(tiny: tuple[object, object], tmp_path: object) -> None:
    model, tok = tiny
    before = _answer_logp(model, tok, GOOD) - _answer_logp(model, tok, BAD)
    pairs = pd.DataFrame({"prompt": [PROMPT] * 8, "chosen": [GOOD] * 8, "rejected": [BAD] * 8})
    dpo = SimpleNamespace(
        beta=0.1, batch_size=4, epochs=3.0, learning_rate=5e-3, max_length=512, precision="float32", sft_weight=0.0
    )
    out = dpo_train(model, None, tok, pairs, dpo, seed=0, out_dir=tmp_path / "m", work_dir=tmp_path / "w")  # type: ignore[operator]
    after = _answer_logp(model, tok, GOOD) - _answer_logp(model, tok, BAD)
    assert out["pairs"] == 8 and out["steps"] == 6
    assert math.isfinite(out["train_loss"])
    assert after > before + 0.5  # the margin log pi(chosen) - log pi(rejected) grew
    assert (tmp_path / "m" / "config.json").is_file()  # type: ignore[operator]
    assert out["pairs_too_long"] == 0
    short = SimpleNamespace(**{**vars(dpo), "max_length": 4})  # every prompt is longer: TRL would drop them all
    with pytest.raises(ValueError, match="raise reclaif.dpo.max_length"):
        dpo_train(model, None, tok, pairs, short, seed=0, out_dir=tmp_path / "m2", work_dir=tmp_path / "w2")  # type: ignore[operator]


def test_candidate_constraint_spells_only_unnamed_candidates(tiny: tuple[object, object]) -> None:
    from lure.reclaif.policy import CandidateConstraint

    _, tok = tiny
    cands = [["Blue Whale", "Green Frog"]]
    prompt_ids = [5, 6, 7]
    constraint = CandidateConstraint(tok, cands, prompt_len=len(prompt_ids), per_prompt=1)

    def spell(text_before: str) -> str:
        """Follow the constraint's first allowed token from ``text_before`` until the name is closed."""
        ids = prompt_ids + tok(text_before, add_special_tokens=False)["input_ids"]
        for _ in range(20):
            allowed = constraint.allowed(0, torch.tensor(ids))
            if allowed is None:  # free again: the name is closed
                break
            ids.append(allowed[0])
        return tok.decode(ids[len(prompt_ids) :])

    outside = prompt_ids + tok("Key prefer", add_special_tokens=False)["input_ids"]
    assert constraint.allowed(0, torch.tensor(outside)) is None  # outside a name every token is allowed
    first = spell("Key preferences: Animals\n1.")
    assert first in ('Key preferences: Animals\n1. "Blue Whale"', 'Key preferences: Animals\n1. "Green Frog"')
    second = spell(first + " - fits\n2.")
    named = {n for n in ("Blue Whale", "Green Frog") if f'"{n}"' in second}
    assert named == {"Blue Whale", "Green Frog"}  # the second name is the other candidate
    third = constraint.allowed(
        0, torch.tensor(prompt_ids + tok(second + " - x\n3.", add_special_tokens=False)["input_ids"])
    )
    assert third == [tok.eos_token_id]  # nothing left to name: the answer must end
    # as a logits processor it masks only the rows inside a name
    rows = [prompt_ids + tok(t, add_special_tokens=False)["input_ids"] for t in ("Key pref", "Key: x\n1.")]
    width = max(map(len, rows))
    batch = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    fresh = CandidateConstraint(tok, cands * 2, prompt_len=len(prompt_ids), per_prompt=1)
    scores = fresh(batch[:, : len(rows[0])], torch.zeros(2, len(tok)))
    assert torch.isfinite(scores[0]).all()
    masked = CandidateConstraint(tok, cands * 2, prompt_len=len(prompt_ids), per_prompt=1)
    scores = masked(torch.tensor([rows[1]]), torch.zeros(1, len(tok)))
    assert torch.isfinite(scores[0]).sum() == len(masked.allowed(0, torch.tensor(rows[1])) or [])
