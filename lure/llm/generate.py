"""Catalogue-constrained decoding and exact full ranking for generative (title-generating) recommenders.

Constrained beam search (GDRT §4.1.3: CBS, beam 10) is our own compact loop over the model's logits with a KV
cache, not ``model.generate(prefix_allowed_tokens_fn=...)``. Why: with ``generate`` (i) a prefix whose allowed
set is empty makes ``PrefixConstrainedLogitsProcessor`` raise (or, in other versions, leaves an all ``-inf``
row whose beam can still be picked and then extended by an arbitrary token), so "drop a dead beam, never take an
unconstrained step" cannot be guaranteed; (ii) when fewer valid continuations than beams exist, ``-inf``
hypotheses fill the remaining beams and come back as outputs; (iii) finished hypotheses would have to be mapped
back from token strings to item ids. Our loop scores only trie-allowed (beam, token) pairs, so probability mass
can only go to catalogue continuations, a beam whose prefix has no continuation is dropped, and finished beams
are leaves of the trie that name their items directly. Scores are sequence log-probabilities (no length
normalisation, which is what D3 criticises as length bias; callers may normalise afterwards).

Exact ranking (:func:`rank_catalogue`) scores every catalogue item by the log-probability of its full token
sequence after the prompt. The prompt is run once; its KV cache is repeated over a batch of titles, titles are
right-padded, and padded positions are excluded from the sum (causal attention keeps them from influencing the
real tokens, which precede them).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lure.llm.prompts import EncodedPrompt, Prompt, PromptTemplate, encode_completion, encode_prompt
from lure.llm.trie import TokenTrie

PromptLike = Prompt | EncodedPrompt | Sequence[int]


@dataclass(frozen=True)
class BeamResult:
    """Top catalogue items of one prompt, best first, with their sequence log-probabilities."""

    items: list[int]
    scores: list[float]


def prompt_ids(tokenizer: Any, prompt: PromptLike) -> list[int]:
    """Token ids of a rendered, encoded or raw-id prompt (rendered prompts are encoded segment by segment)."""
    if isinstance(prompt, Prompt):
        return encode_prompt(tokenizer, prompt).input_ids
    if isinstance(prompt, EncodedPrompt):
        return prompt.input_ids
    return [int(t) for t in prompt]


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _run_prompt(model: Any, ids: Sequence[int]) -> tuple[torch.Tensor, Any]:
    """Forward the prompt once: log-probabilities of the next token (vocab,) and the KV cache."""
    x = torch.tensor([list(ids)], dtype=torch.long, device=_device(model))
    out = model(input_ids=x, use_cache=True)
    return torch.log_softmax(out.logits[0, -1].float(), dim=-1), out.past_key_values


@torch.inference_mode()
def constrained_beam_search(model: Any, tokenizer: Any, prompts: Sequence[PromptLike], trie: TokenTrie,
                            beam: int = 10, top_k: int | None = None,
                            max_steps: int | None = None) -> list[BeamResult]:
    """Top ``top_k`` (default ``beam``) catalogue items per prompt by trie-constrained beam search.

    Each step expands every live beam by its trie-allowed tokens only; candidates that complete an item (reach a
    leaf) become finished hypotheses, the ``beam`` best of the rest stay live, and candidates reaching a dead
    prefix are dropped. Search stops when no beam is live, after ``max_steps`` (default: the trie's depth;
    unfinished beams are dropped, never forced), or once ``top_k`` hypotheses have finished and no live beam
    can still beat the worst of them (log-probabilities only decrease along a sequence).
    """
    model.eval()
    top_k = beam if top_k is None else top_k
    max_steps = trie.max_depth if max_steps is None else max_steps
    device = _device(model)
    results: list[BeamResult] = []
    for prompt in prompts:
        logp, cache = _run_prompt(model, prompt_ids(tokenizer, prompt))
        logp = logp.unsqueeze(0)
        nodes = torch.tensor([TokenTrie.ROOT])
        scores = torch.zeros(1)
        fin_scores: list[torch.Tensor] = []
        fin_nodes: list[torch.Tensor] = []
        for step in range(max_steps):
            counts = torch.tensor([len(trie.allowed_tokens[n]) for n in nodes.tolist()])
            toks = torch.cat([trie.allowed_tokens[n] for n in nodes.tolist()])
            kids = torch.cat([trie.allowed_children[n] for n in nodes.tolist()])
            src = torch.repeat_interleave(torch.arange(len(nodes)), counts)
            cand = scores[src] + logp.cpu()[src, toks]
            leaf = trie.is_leaf[kids]
            fin_scores.append(cand[leaf])
            fin_nodes.append(kids[leaf])
            keep = (~leaf & ~trie.is_dead[kids]).nonzero().squeeze(1)
            if keep.numel() == 0 or step == max_steps - 1:
                break
            order = cand[keep].topk(min(beam, keep.numel())).indices
            keep = keep[order]
            done = torch.cat(fin_scores)
            if done.numel() >= top_k and cand[keep[0]] <= done.topk(top_k).values[-1]:
                break
            nodes, scores = kids[keep], cand[keep]
            cache.reorder_cache(src[keep].to(device))
            out = model(input_ids=toks[keep].unsqueeze(1).to(device), past_key_values=cache, use_cache=True)
            logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
            cache = out.past_key_values
        results.append(_collect(trie, torch.cat(fin_scores), torch.cat(fin_nodes), top_k))
    return results


def _collect(trie: TokenTrie, scores: torch.Tensor, nodes: torch.Tensor, top_k: int) -> BeamResult:
    order = torch.argsort(scores, descending=True, stable=True)
    items: list[int] = []
    out_scores: list[float] = []
    for i in order.tolist():
        for item in trie.items[int(nodes[i])]:
            items.append(item)
            out_scores.append(float(scores[i]))
    return BeamResult(items[:top_k], out_scores[:top_k])


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (n, max_len) id matrix and the lengths."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    out = torch.full((len(sequences), int(lengths.max())), int(pad_id), dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out, lengths


@torch.inference_mode()
def rank_catalogue(model: Any, tokenizer: Any, prompts: Sequence[PromptLike],
                   catalogue_titles: Sequence[str] | None = None, batch: int = 256,
                   template: PromptTemplate | str | None = None,
                   sequences: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
    """Exact scores (n_prompts x n_items, float32): log P(title + terminator + EOS | prompt) for every item.

    Pass ``catalogue_titles`` (encoded with :func:`encode_completion`) or precomputed ``sequences`` (e.g.
    ``trie.sequences``). Titles are sorted by length so each batch pads little; the prompt's cache is repeated
    over each batch of ``batch`` titles.
    """
    if sequences is None:
        if catalogue_titles is None:
            raise ValueError("give catalogue_titles or sequences")
        sequences = [encode_completion(tokenizer, t, template) for t in catalogue_titles]
    model.eval()
    device = _device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, lengths = pad_sequences(sequences, pad_id)
    order = torch.argsort(lengths, stable=True)
    ids, lengths = ids[order].to(device), lengths[order].to(device)
    scores = torch.empty(len(prompts), len(sequences), dtype=torch.float32)
    for p, prompt in enumerate(prompts):
        logp0, cache = _run_prompt(model, prompt_ids(tokenizer, prompt))
        sorted_scores = torch.empty(len(sequences), dtype=torch.float32, device=device)
        for start in range(0, len(sequences), batch):
            block_len = lengths[start:start + batch]
            width = int(block_len.max())
            block = ids[start:start + batch, :width]
            total = logp0[block[:, 0]]
            if width > 1:
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(block.shape[0])
                out = model(input_ids=block[:, :-1], past_key_values=past, use_cache=True)
                logp = torch.log_softmax(out.logits.float(), dim=-1)
                tok = logp.gather(-1, block[:, 1:].unsqueeze(-1)).squeeze(-1)
                valid = torch.arange(1, width, device=device).unsqueeze(0) < block_len.unsqueeze(1)
                total = total + torch.where(valid, tok, torch.zeros_like(tok)).sum(dim=1)
            sorted_scores[start:start + batch] = total
        scores[p, order] = sorted_scores.cpu()
    return scores


def top_items(scores: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Indices of the ``k`` best items per row (ties broken by lower index, for reproducibility)."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    return order[:, :k]
