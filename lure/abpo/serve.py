"""Policies that serve contexts: the LLM recommender as a distribution over the catalogue
(:mod:`lure.abpo.catalogue`) and a zoo model as a softmax over its scores (:func:`lure.abpo.logs.softmax_policy`).

Both give the exact probability of what they serve, so every log records mu(a|x) and every updated policy's
pi(a|x) is comparable with it: the same renormalised trie distribution at the same temperature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from lure.abpo.catalogue import catalogue_logprobs, sample_items
from lure.abpo.logs import draw_actions, softmax_policy
from lure.llm.evaluate import window_prompt_ids
from lure.llm.prompts import encode_completion
from lure.llm.trie import TokenTrie
from lure.llm.window_scores import window_scores

#: Completions per teacher-forced forward pass when scoring logged actions.
SCORE_CHUNK = 64


@dataclass(frozen=True)
class Recommender:
    """An LLM recommender with what it needs to read windows and name items: the tokenizer, the prompt template,
    the catalogue's titles and their trie."""

    model: Any
    tokenizer: Any
    template: str
    titles: Mapping[int, str]
    max_length: int
    trie: TokenTrie

    @classmethod
    def build(
        cls, model: Any, tokenizer: Any, template: str, titles: Mapping[int, str], max_length: int
    ) -> Recommender:
        ids = sorted(int(i) for i in titles)
        trie = TokenTrie.from_titles(tokenizer, [titles[i] for i in ids], template, items=ids)
        return cls(model, tokenizer, template, titles, max_length, trie)

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def prompts(self, windows: pd.DataFrame) -> list[list[int]]:
        """The windows' encoded prompts (oldest history items dropped until prompt + longest title fit)."""
        return window_prompt_ids(windows, self.titles, self.tokenizer, self.max_length, template=self.template)

    def completions(self, items: Sequence[int]) -> list[list[int]]:
        """Each item's title as the completion the model writes."""
        return [encode_completion(self.tokenizer, self.titles[int(i)], self.template) for i in items]

    @torch.no_grad()
    def log_probs(self, prompts: Sequence[Sequence[int]], items: Sequence[int], temperature: float) -> np.ndarray:
        """log pi(a|x) of each (prompt, item) over the catalogue at ``temperature`` (teacher-forced, chunked)."""
        out = []
        completions = self.completions(items)
        for start in range(0, len(prompts), SCORE_CHUNK):
            lp, _, _ = catalogue_logprobs(
                self.model,
                self.trie,
                prompts[start : start + SCORE_CHUNK],
                completions[start : start + SCORE_CHUNK],
                self.pad_id,
                temperature,
            )
            out.append(lp.sum(dim=1))
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    def draw(
        self, prompts: Sequence[Sequence[int]], n: int, temperature: float, generator: torch.Generator
    ) -> np.ndarray:
        """(prompts, n) items drawn from pi(.|x) at ``temperature``."""
        was_training = self.model.training
        self.model.eval()
        items = [sample_items(self.model, self.trie, p, n, temperature, generator)[1] for p in prompts]
        self.model.train(was_training)
        return np.asarray(items, dtype=np.int64).reshape(len(prompts), n)

    def serve(
        self, prompts: Sequence[Sequence[int]], temperature: float, generator: torch.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One item per context drawn from pi(.|x) at ``temperature``, and its exact probability mu(a|x)."""
        actions = self.draw(prompts, 1, temperature, generator)[:, 0]
        return actions, np.exp(self.log_probs(prompts, actions, temperature))


def zoo_serve(
    model: Any, windows: pd.DataFrame, temperature: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One item per window from a zoo model's softmax(scores / T) over the catalogue, and its probability."""
    return draw_actions(softmax_policy(window_scores(model, windows), temperature), rng)
