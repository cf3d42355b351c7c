"""The RecLAIF recommender as a causal LM: distillation rows (Eq. 1 on the teacher's answers), sampling two answers
per prompt (Eq. 4, temperature T and nucleus p) and one DPO iteration (Eq. 2) through TRL's ``DPOTrainer``.

Every text the model sees starts with the tokenizer's BOS (added here when the tokenizer does not add it itself), so
distillation, sampling and DPO tokenise a prompt the same way. The answer is the completion: SFT's loss and DPO's
log-probabilities are on the answer's tokens and the EOS after it, never on the prompt.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lure.llm.data import IGNORE_INDEX
from lure.llm.prompts import encode_text


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts BOS in front of a text by itself (Llama's do; the tiny catalogue BPE does not)."""
    if tokenizer.bos_token_id is None:
        return True
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def model_prompt(tokenizer: Any, prompt: str) -> str:
    """``prompt`` as the model reads it: the BOS text first unless the tokenizer adds BOS itself."""
    return prompt if adds_bos(tokenizer) else f"{tokenizer.bos_token}{prompt}"


def sft_rows(prompts: Sequence[str], answers: Sequence[str], tokenizer: Any, max_length: int) -> list[dict[str, Any]]:
    """Pre-tokenised SFT rows (``input_ids``, ``completion_mask``, ``labels``: -100 on the prompt) for
    ``trl.SFTTrainer``; a row longer than ``max_length`` keeps its answer and loses the prompt's start."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer needs an EOS token to end an answer")
    rows = []
    for prompt, answer in zip(prompts, answers, strict=True):
        p = list(tokenizer(model_prompt(tokenizer, prompt))["input_ids"])
        a = encode_text(tokenizer, answer) + [int(tokenizer.eos_token_id)]
        if len(p) + len(a) > max_length:
            p = p[: max(1, max_length - len(a))]
        rows.append(
            {"input_ids": p + a, "completion_mask": [0] * len(p) + [1] * len(a), "labels": [IGNORE_INDEX] * len(p) + a}
        )
    return rows


@dataclass(frozen=True)
class Sampling:
    """How answers are drawn (Eq. 4): ``temperature`` 0 = greedy; ``candidates`` (per prompt, the candidate texts)
    turns on constrained decoding of item names (:class:`CandidateConstraint`)."""

    temperature: float
    top_p: float
    max_new_tokens: int
    batch_size: int


_ITEM_NUMBER = re.compile(r"\n\d+\.$")


@dataclass(frozen=True)
class _NameState:
    """Where a sequence stands: the end of its text (free), or the trie node of the name being spelled."""

    tail: str = "\n"
    node: int | None = None
    taken: frozenset[int] = frozenset()


class CandidateConstraint:
    """Constrained decoding of item names (``reclaif.decoding: candidates``, a departure from the paper, which
    generates freely): right after an item number ("\\n2.") the model may only write ' "<candidate>"' token by token,
    in the tokenisation the distillation data uses, and never a candidate it has already named. Everything else --
    the preferences, the reasons, how many lines -- is generated freely, so ValidRatio still measures the count.

    A ``transformers`` logits processor: each sequence's state advances by the one new token per step (O(1)), a
    sequence seen for the first time is replayed from its start, and only sequences inside a name are masked.
    Answers must quote names (the compact template).
    """

    def __init__(self, tokenizer: Any, candidates: Sequence[Sequence[str]], prompt_len: int, per_prompt: int) -> None:
        from lure.llm.trie import TokenTrie

        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.per_prompt = per_prompt
        self.everything = list(range(len(tokenizer)))
        self.eos = [int(tokenizer.eos_token_id)]
        self.tries = []
        self.below = []
        for cands in candidates:
            trie = TokenTrie([encode_text(tokenizer, f' "{c}"') for c in cands])
            below: list[set[int]] = [set(items) for items in trie.items]
            for node in range(len(trie.children) - 1, -1, -1):  # children have larger ids than their parent
                for child in trie.children[node].values():
                    below[node] |= below[child]
            self.tries.append(trie)
            self.below.append(below)
        self._pieces: dict[int, str] = {}
        self._states: dict[int, tuple[int, _NameState]] = {}

    def _piece(self, token: int) -> str:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.tokenizer.decode([token], skip_special_tokens=True)
        return piece

    def _advance(self, prompt: int, state: _NameState, token: int) -> _NameState:
        trie = self.tries[prompt]
        if state.node is None:
            tail = (state.tail + self._piece(token))[-12:]
            return _NameState(tail, trie.ROOT if _ITEM_NUMBER.search(tail) else None, state.taken)
        child = trie.step(state.node, token)
        if child is None:  # left the trie (cannot happen under the constraint): free text again
            return _NameState(self._piece(token)[-12:], None, state.taken)
        if trie.items[child]:  # the closing quote: one more candidate named
            return _NameState('"', None, state.taken | frozenset(trie.items[child]))
        return _NameState(state.tail, child, state.taken)

    def allowed(self, row: int, input_ids: torch.Tensor) -> list[int] | None:
        """The tokens sequence ``row`` may write next (``input_ids``: its prompt and what it generated so far), or
        None when it is not spelling a name (every token allowed)."""
        prompt = row // self.per_prompt
        n = int(input_ids.shape[0]) - self.prompt_len
        cached = self._states.get(row)
        if cached is not None and cached[0] == n - 1:
            state = self._advance(prompt, cached[1], int(input_ids[-1]))
        else:  # first call for this row (or out of step): replay its tokens
            state = _NameState()
            for token in input_ids[self.prompt_len :].tolist():
                state = self._advance(prompt, state, int(token))
        self._states[row] = (n, state)
        if state.node is None:
            return None
        trie, below = self.tries[prompt], self.below[prompt]
        allowed = [t for t, child in trie.children[state.node].items() if below[child] - state.taken]
        return allowed or self.eos

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """The ``transformers`` logits-processor contract: scores of disallowed tokens set to -inf, only on the
        rows that are spelling a name (the others are left untouched, which is what makes this cheap)."""
        for row in range(input_ids.shape[0]):
            allowed = self.allowed(row, input_ids[row])
            if allowed is not None:
                keep = scores[row, allowed].clone()
                scores[row] = float("-inf")
                scores[row, allowed] = keep
        return scores


@torch.no_grad()
def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    n: int,
    sampling: Sampling,
    seed: int,
    progress: Any = None,
    candidates: Sequence[Sequence[str]] | None = None,
) -> tuple[list[list[str]], dict[str, float]]:
    """``n`` answers per prompt (texts without the prompt), and throughput (answers per second).

    Prompts are left-padded in batches of ``sampling.batch_size``; ``torch.manual_seed(seed)`` fixes the draws.
    With ``candidates`` (per prompt), item names are constrained to them (:class:`CandidateConstraint`)."""
    torch.manual_seed(seed)
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[list[str]] = []
    start = time.perf_counter()
    greedy = sampling.temperature <= 0
    try:
        for lo in range(0, len(prompts), sampling.batch_size):
            batch = [model_prompt(tokenizer, p) for p in prompts[lo : lo + sampling.batch_size]]
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            kwargs: dict[str, Any] = (
                {"do_sample": False}
                if greedy
                else {
                    "do_sample": True,
                    "temperature": sampling.temperature,
                    "top_p": sampling.top_p,
                    "top_k": 0,
                }
            )
            if candidates is not None:
                from transformers import LogitsProcessorList

                names = CandidateConstraint(
                    tokenizer, candidates[lo : lo + sampling.batch_size], enc["input_ids"].shape[1], 1 if greedy else n
                )
                kwargs["logits_processor"] = LogitsProcessorList([names])
            gen = model.generate(
                **enc,
                max_new_tokens=sampling.max_new_tokens,
                num_return_sequences=1 if greedy else n,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **kwargs,
            )
            texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            per = 1 if greedy else n
            for i in range(len(batch)):
                answers = texts[i * per : (i + 1) * per]
                out.append(answers * n if greedy else answers)
            if progress is not None:
                progress(len(batch))
    finally:
        tokenizer.padding_side = side
    seconds = time.perf_counter() - start
    total = len(prompts) * (1 if greedy else n)
    return out, {"answers": total, "seconds": round(seconds, 3), "answers_per_s": round(total / max(seconds, 1e-9), 2)}


def dpo_train(
    model: Any,
    ref_model: Any | None,
    tokenizer: Any,
    pairs: Any,
    dpo: Any,
    seed: int,
    out_dir: Path,
    work_dir: Path,
) -> dict[str, Any]:
    """One DPO iteration (Eq. 2) on ``pairs`` (prompt, chosen, rejected): TRL's ``DPOTrainer`` with the reference
    log-probabilities computed once, before the first step (``precompute_ref_log_probs``). ``ref_model`` None = the
    model itself as it enters the iteration. Saves the model to ``out_dir``; returns the training metrics."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from lure.train.finetune import mixed_precision, quiet_tied_missing_keys, save_atomically, without_model_cards

    prompts = [model_prompt(tokenizer, p) for p in pairs["prompt"]]
    fits = sum(len(tokenizer(p)["input_ids"]) < dpo.max_length for p in prompts)  # TRL drops the others
    if fits == 0:
        raise ValueError(
            f"every one of the {len(prompts)} DPO prompts is at least reclaif.dpo.max_length = {dpo.max_length} tokens "
            "long, and TRL drops a pair whose prompt alone fills max_length: raise reclaif.dpo.max_length"
        )
    data = Dataset.from_dict(
        {
            "prompt": prompts,
            "chosen": list(pairs["chosen"]),
            "rejected": list(pairs["rejected"]),
        }
    )
    bf16, fp16 = mixed_precision(dpo.precision)
    args = DPOConfig(
        output_dir=str(work_dir),
        beta=dpo.beta,
        loss_type=["sigmoid", "sft"] if dpo.sft_weight > 0 else ["sigmoid"],  # Eq. 2 (+ the chosen NLL: RPO)
        loss_weights=[1.0, dpo.sft_weight] if dpo.sft_weight > 0 else None,
        per_device_train_batch_size=dpo.batch_size,
        num_train_epochs=dpo.epochs,
        learning_rate=dpo.learning_rate,
        lr_scheduler_type="constant",
        precompute_ref_log_probs=True,
        max_length=dpo.max_length,
        bf16=bf16,
        fp16=fp16,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        activation_checkpointing=False,
    )
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=data, processing_class=tokenizer)
    quiet_tied_missing_keys(trainer)
    without_model_cards(trainer)
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    save_atomically(out_dir, trainer.save_model)
    shutil.rmtree(work_dir, ignore_errors=True)
    logs = [row for row in trainer.state.log_history if "loss" in row]
    steps = int(trainer.state.global_step)
    return {
        "pairs": len(data),
        "pairs_too_long": len(data) - fits,
        "steps": steps,
        "train_loss": float(result.training_loss),
        "final_loss": float(logs[-1]["loss"]) if logs else float("nan"),
        "reward_accuracy": float(logs[-1].get("rewards/accuracies", float("nan"))) if logs else float("nan"),
        "train_seconds": round(seconds, 3),
        "step_seconds": round(seconds / max(steps, 1), 4),
        "log_history": trainer.state.log_history,
    }
