"""Pretraining of the tiny LLM on a generated corpus that carries a language prior (issue 13, docs/llm.md).

Why: GDRT's language bias is a pretrained LLM's prior over texts, which fine-tuning then leans on: some titles are
likely after the task text whatever the user did. The tiny CPU model starts from random weights and has no prior at
all, so on the world its Eq. 2 relevance could only ever reflect what fine-tuning taught it, i.e. popularity. Here it
first reads a corpus in which every title appears in proportion to the world's latent title prior rho_i
(``truth/items.parquet``, independent of popularity, genre and relevance):

    p_i = exp(s * rho_i) / sum_j exp(s * rho_j)          s = ``model.pretrain.prior_strength``

A corpus row is either

* the template's prompt with the history replaced by its ``masked`` block (the 'N/A' placeholder of Eq. 2/3 and
  the feature ablation), followed by the completion of a title drawn from p (title, terminator, EOS): exactly the
  token sequence Eq. 2 scores, so a pretrained base model's Eq. 2 relevance is its language prior, as in the paper;
* or a catalogue list: the template's history block (quoted, comma-separated titles) with 2 to 5 titles drawn from
  p, between BOS and EOS, so titles are also known in the form they take inside prompts.

Rows are drawn afresh for every step from a named stream, so the corpus is ``steps * batch_size`` rows long and the
same seed gives the same model. The loss is the mean next-token NLL over every non-padding token.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lure.llm.prompts import PromptTemplate, encode_completion, encode_prompt, encode_text, render_prompt

#: Fewest and most titles of a catalogue-list row (uniform in between).
LIST_TITLES = (2, 5)
#: Linear warm-up as a share of the steps; then cosine decay to 0.
WARMUP_SHARE = 0.05
#: Gradient-norm clipping (as HF Trainer's default).
MAX_GRAD_NORM = 1.0


def corpus_weights(prior: Sequence[float] | np.ndarray, strength: float) -> np.ndarray:
    """Probability of each title in the corpus: softmax(strength * rho); uniform when ``strength`` is 0.

    Why a softmax: rho is a logit-scale latent (N(0, 1) on the world), so exp(s * rho) makes s the one knob of how
    peaked the prior is, and s = 0 switches it off exactly.
    """
    rho = np.asarray(prior, dtype=np.float64).reshape(-1)
    if rho.size == 0:
        raise ValueError("the corpus needs at least one title")
    if not np.all(np.isfinite(rho)):
        raise ValueError("title priors must be finite")
    logits = strength * rho
    w = np.exp(logits - logits.max())  # p_i = exp(s rho_i) / sum_j exp(s rho_j)
    return w / w.sum()


class Corpus:
    """Draws tokenised corpus rows (module docstring): masked prompt + title, or a catalogue list of titles."""

    def __init__(
        self,
        tokenizer: Any,
        titles: Sequence[str],
        weights: np.ndarray,
        masked_share: float,
        template: PromptTemplate | str | None,
        rng: np.random.Generator,
    ) -> None:
        if len(titles) != len(weights):
            raise ValueError(f"{len(titles)} titles but {len(weights)} weights")
        self.tokenizer, self.titles, self.weights = tokenizer, list(titles), np.asarray(weights, dtype=np.float64)
        self.masked_share, self.template, self.rng = masked_share, template, rng
        # The exact prefix Eq. 2 scores (lure.llm.evaluate.item_relevance): BOS + task + placeholder + response.
        self.masked_prompt = encode_prompt(tokenizer, render_prompt([], template, mask=("history",))).input_ids
        self.completions = [encode_completion(tokenizer, t, template) for t in self.titles]
        self.bos = [] if tokenizer.bos_token_id is None else [int(tokenizer.bos_token_id)]
        self.eos = [int(tokenizer.eos_token_id)]

    def rows(self, n: int) -> list[list[int]]:
        """``n`` rows; each is a masked-prompt row with probability ``masked_share``, else a catalogue list."""
        masked = self.rng.random(n) < self.masked_share
        lengths = self.rng.integers(LIST_TITLES[0], LIST_TITLES[1] + 1, size=n)
        drawn = self.rng.choice(len(self.titles), size=(n, LIST_TITLES[1]), p=self.weights)
        out = []
        for row in range(n):
            if masked[row]:
                out.append(self.masked_prompt + self.completions[drawn[row, 0]])
            else:
                listed = [self.titles[i] for i in drawn[row, : lengths[row]]]
                text = render_prompt(listed, self.template).segment_text("history")
                out.append(self.bos + encode_text(self.tokenizer, text) + self.eos)
        return out


def _batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask, ids.masked_fill(mask == 0, -100)


def _schedule(steps: int) -> Any:
    """Learning-rate multiplier of a step: linear warm-up over WARMUP_SHARE of the steps, then cosine to 0."""
    warmup = max(1, int(round(WARMUP_SHARE * steps)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def pretrain(
    model: Any,
    tokenizer: Any,
    titles: Sequence[str],
    prior: Sequence[float] | np.ndarray | None,
    spec: Any,
    rng: np.random.Generator,
    template: PromptTemplate | str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` in place on ``spec.steps`` batches of corpus rows; return what to record about the run.

    ``prior`` is rho per title (None: a real dataset, no prior, every title equally often); ``spec`` is a
    ``model.pretrain`` section (steps, batch_size, learning_rate, prior_strength, masked_share). The model is left
    in eval mode.
    """
    from lure.display import progress as show_progress

    rho = np.zeros(len(titles)) if prior is None else np.asarray(prior, dtype=np.float64)
    weights = corpus_weights(rho, spec.prior_strength)
    corpus = Corpus(tokenizer, titles, weights, spec.masked_share, template, rng)
    device = next(model.parameters()).device
    optimiser = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(spec.steps))
    losses: list[float] = []
    tokens = 0
    start = time.perf_counter()
    model.train()
    steps = range(spec.steps)
    for _ in show_progress(steps, "pretraining") if progress else steps:
        ids, mask, labels = _batch(corpus.rows(spec.batch_size), int(tokenizer.pad_token_id))
        tokens += int(mask.sum())
        loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimiser.step()
        scheduler.step()
        optimiser.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    tail = max(1, len(losses) // 10)
    top = np.sort(weights)[::-1][: max(1, len(weights) // 5)]
    return {
        "steps": spec.steps,
        "rows": spec.steps * spec.batch_size,
        "tokens": tokens,
        "loss_first": round(losses[0], 4) if losses else None,
        "loss_last": round(float(np.mean(losses[-tail:])), 4) if losses else None,  # mean of the last 10 % of steps
        "corpus_top_fifth_mass": round(float(top.sum()), 4),  # share of draws on the 20 % likeliest titles
        "seconds": round(time.perf_counter() - start, 2),
    }
