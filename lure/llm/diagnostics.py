"""Language-bias diagnostics by feature ablation (GDRT §2.2.1, Figs. 2 and 7).

The attribution of a part of the input is the drop in the log-probability of the target when that part is
replaced by the template's mask text (its ``masked`` block: the paper's placeholder 'N/A', the very text Eq. 2
(:func:`lure.llm.evaluate.item_relevance`) and Eq. 3 (``gdrt-groups``, :func:`lure.llm.data.sft_examples` with
``mask=("history",)``) put in place of the history). GDRT compares the attribution of the auxiliary tokens — the
task description, and the first token of the predicted title (the "prefix" token) — with the attribution of the
user's interaction tokens (the history): a model that leans on language priors shows a large ratio (4.69 : 1 for
task ÷ history after SFT on Toys, §2.2.1).

Why one target for all three: a ratio of attributions compares the influence of two inputs on one output. The
first title token cannot be both an ablated input and a scored output, so the output is the title tokens after the
first, y_2 … y_n (:func:`attribution_target`), scored with y_1 in the context for the task and history ablations
too; by default the template's terminator and EOS are left out, as in Eq. 2 (``include_terminator`` adds them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lure.llm.prompts import (
    PromptTemplate,
    completion_title_span,
    encode_completion,
    encode_prompt,
    encode_text,
    load_template,
)


@dataclass(frozen=True)
class Attribution:
    """Per-sample attributions (nats summed over the target tokens) and the two ratios GDRT plots (auxiliary ÷
    interaction tokens).

    ``task``, ``history`` and ``first_token`` cover the samples whose target is not empty (a title of one token has
    nothing after its first token); ``skipped`` counts the others.
    """

    task: np.ndarray
    history: np.ndarray
    first_token: np.ndarray
    skipped: int = 0

    def ratios(self) -> dict[str, float]:
        """Mean attribution ratios over the samples (means first: per-sample ratios explode near 0)."""
        h = float(np.mean(self.history)) if len(self.history) else float("nan")
        task = float(np.mean(self.task)) if len(self.task) else float("nan")
        first = float(np.mean(self.first_token)) if len(self.first_token) else float("nan")
        return {
            "attribution_task": task,
            "attribution_history": h,
            "attribution_first_token": first,
            "ratio_task_to_history": task / h if h else float("nan"),  # Fig. 2 left: task ÷ interaction tokens
            "ratio_first_token_to_history": first / h if h else float("nan"),  # Fig. 2 right: prefix ÷ interaction
            "attribution_samples": len(self.history),
            "attribution_skipped": self.skipped,
        }


@torch.inference_mode()
def sequence_logprob(model: Any, context: Sequence[int], target: Sequence[int]) -> float:
    """log P(target | context) = sum over target tokens of log softmax at the previous position."""
    ids = torch.tensor([list(context) + list(target)], dtype=torch.long, device=model.device)
    logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    positions = torch.arange(len(context) - 1, ids.shape[1] - 1, device=ids.device)
    return float(logp[positions, ids[0, len(context) :]].sum())


def attribution_target(
    tokenizer: Any, title: str, template: PromptTemplate | str | None = None, include_terminator: bool = False
) -> tuple[list[int], list[int]]:
    """``(prefix, target)``: the completion tokens up to and including the title's first token, and the tokens
    every attribution scores — the title's tokens after the first (plus the terminator and EOS with
    ``include_terminator``)."""
    seq = encode_completion(tokenizer, title, template)
    start, end = completion_title_span(tokenizer, title, template)
    return seq[: start + 1], seq[start + 1 : (len(seq) if include_terminator else end)]


def segment_attribution(
    model: Any,
    tokenizer: Any,
    histories: Sequence[Sequence[str]],
    targets: Sequence[str],
    template: PromptTemplate | str | None = None,
    include_terminator: bool = False,
) -> Attribution:
    """Feature ablation of the task text, the history and the first title token for each (history, target).

    With x the prompt, y_1 the title's first token, T the target tokens (:func:`attribution_target`) and M the mask
    text's tokens, all three are differences of log P(T | ·) over the same T:

    - task / history: log P(T | x, y_1) − log P(T | x with that segment → M, y_1);
    - first token: log P(T | x, y_1) − log P(T | x, M in place of y_1).
    """
    tpl = template if isinstance(template, PromptTemplate) else load_template(*([template] if template else []))
    mask_ids = encode_text(tokenizer, tpl.mask_text)
    out: dict[str, list[float]] = {"task": [], "history": [], "first_token": []}
    skipped = 0
    for history, target in zip(histories, targets, strict=True):
        prefix, scored = attribution_target(tokenizer, target, tpl, include_terminator)
        if not scored:
            skipped += 1
            continue
        x = encode_prompt(tokenizer, tpl.render(history)).input_ids
        full = sequence_logprob(model, [*x, *prefix], scored)
        for segment in ("task", "history"):
            masked = encode_prompt(tokenizer, tpl.render(history, mask=(segment,))).input_ids
            out[segment].append(full - sequence_logprob(model, [*masked, *prefix], scored))
        out["first_token"].append(full - sequence_logprob(model, [*x, *prefix[:-1], *mask_ids], scored))
    return Attribution(*(np.asarray(out[k], dtype=np.float64) for k in ("task", "history", "first_token")), skipped)
