"""Language-bias diagnostics by feature ablation (GDRT §2.2, Figs. 2 and 7).

The attribution of a part of the input is the drop in the log-probability of the target when that part is
replaced by the mask text 'N/A' (the placeholder GDRT Eq. 2/3 use for the history). GDRT compares the
attribution of the auxiliary tokens — the task description, and the first token of the predicted title (the
"prefix" token) — with the attribution of the user's interaction tokens (the history): a model that leans on
language priors shows a large ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lure.llm.prompts import PromptTemplate, encode_completion, encode_prompt, encode_text, load_template


@dataclass(frozen=True)
class Attribution:
    """Per-sample attributions (nats) and the two ratios GDRT plots (auxiliary ÷ interaction tokens)."""

    task: np.ndarray
    history: np.ndarray
    first_token: np.ndarray

    def ratios(self) -> dict[str, float]:
        """Mean attribution ratios over the samples (means first: per-sample ratios explode near 0)."""
        h = float(np.mean(self.history))
        return {
            "attribution_task": float(np.mean(self.task)),
            "attribution_history": h,
            "attribution_first_token": float(np.mean(self.first_token)),
            "ratio_task_to_history": float(np.mean(self.task) / h) if h else float("nan"),
            "ratio_first_token_to_history": float(np.mean(self.first_token) / h) if h else float("nan"),
        }


@torch.inference_mode()
def sequence_logprob(model: Any, context: Sequence[int], target: Sequence[int]) -> float:
    """log P(target | context) = sum over target tokens of log softmax at the previous position."""
    ids = torch.tensor([list(context) + list(target)], dtype=torch.long, device=model.device)
    logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    positions = torch.arange(len(context) - 1, ids.shape[1] - 1, device=ids.device)
    return float(logp[positions, ids[0, len(context) :]].sum())


def segment_attribution(
    model: Any,
    tokenizer: Any,
    histories: Sequence[Sequence[str]],
    targets: Sequence[str],
    template: PromptTemplate | str | None = None,
) -> Attribution:
    """Feature ablation of the task text, the history and the first title token for each (history, target).

    task / history: log P(y | x) − log P(y | x with that segment → 'N/A'), y = the target's completion tokens.
    first_token: log P(y_2: | x, y_1) − log P(y_2: | x, 'N/A' tokens in place of y_1) — how much the rest of the
    title depends on its first token rather than on the user.
    """
    tpl = template if isinstance(template, PromptTemplate) else load_template(*([template] if template else []))
    mask_ids = encode_text(tokenizer, tpl.mask_text)
    out: dict[str, list[float]] = {"task": [], "history": [], "first_token": []}
    for history, target in zip(histories, targets, strict=True):
        y = encode_completion(tokenizer, target, tpl)
        x = encode_prompt(tokenizer, tpl.render(history)).input_ids
        full = sequence_logprob(model, x, y)
        for segment in ("task", "history"):
            masked = encode_prompt(tokenizer, tpl.render(history, mask=(segment,))).input_ids
            out[segment].append(full - sequence_logprob(model, masked, y))
        rest = y[1:]
        out["first_token"].append(
            sequence_logprob(model, [*x, y[0]], rest) - sequence_logprob(model, [*x, *mask_ids], rest) if rest else 0.0
        )
    return Attribution(*(np.asarray(out[k]) for k in ("task", "history", "first_token")))
