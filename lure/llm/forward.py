"""The one forward pass every catalogue scorer starts from: the prompt, run once, with its KV cache.

Shared by constrained beam search and generic exact ranking (:mod:`lure.llm.generate`) and by the title tree
(:mod:`lure.llm.title_tree`); it lives apart from both so that neither imports the other's module for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def model_device(model: Any) -> torch.device:
    """The device of the model's (first) parameters."""
    return next(model.parameters()).device


def run_prompt(model: Any, ids: Sequence[int]) -> tuple[torch.Tensor, Any]:
    """Forward the prompt once: log-probabilities of the next token (vocab,) and the KV cache."""
    x = torch.tensor([list(ids)], dtype=torch.long, device=model_device(model))
    out = model(input_ids=x, use_cache=True)
    return torch.log_softmax(out.logits[0, -1].float(), dim=-1), out.past_key_values
