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
real tokens, which precede them). For Llama models the default *tree* path (:mod:`lure.llm.title_tree`) instead
forwards each distinct title prefix once and, when only the top k items are wanted, skips the prefixes that
provably cannot reach them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from lure.llm.forward import model_device, run_prompt
from lure.llm.prompts import EncodedPrompt, Prompt, PromptTemplate, encode_completion, encode_prompt
from lure.llm.title_tree import cached_title_tree, tree_scores, tree_supported, tree_weights
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


@torch.inference_mode()
def constrained_beam_search(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[PromptLike],
    trie: TokenTrie,
    beam: int = 10,
    top_k: int | None = None,
    max_steps: int | None = None,
) -> list[BeamResult]:
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
    device = model_device(model)
    results: list[BeamResult] = []
    for prompt in prompts:
        logp, cache = run_prompt(model, prompt_ids(tokenizer, prompt))
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
            # gather on the device, then copy: the (beams x vocab) log-probabilities never leave it
            cand = scores[src] + logp[src.to(device), toks.to(device)].float().cpu()
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
def rank_catalogue(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[PromptLike],
    catalogue_titles: Sequence[str] | None = None,
    batch: int = 256,
    template: PromptTemplate | str | None = None,
    sequences: Sequence[Sequence[int]] | None = None,
    method: str = "auto",
    workers: int | None = None,
    top_k: int | None = None,
    exclude: Sequence[Sequence[int]] | None = None,
) -> torch.Tensor:
    """Exact scores (n_prompts x n_items, float32): log P(title + terminator + EOS | prompt) for every item.

    Pass ``catalogue_titles`` (encoded with :func:`encode_completion`) or precomputed ``sequences`` (e.g.
    ``trie.sequences``). ``method``: ``"tree"`` runs the model once per node of the titles' prefix tree (each
    shared prefix token is computed once, attending to the prompt's cache and its own ancestors; LlamaForCausalLM
    only, :mod:`lure.llm.title_tree`), ``"generic"`` repeats the prompt's cache over batches of ``batch``
    length-sorted, right-padded titles (any causal LM), ``"auto"`` picks the tree when the model supports it. Both
    are exact. On CPU the tree path scores ``workers`` prompts at once (default ``torch.get_num_threads()``), one
    per thread with single-threaded ops (the torch thread count is set to 1 meanwhile and restored); results do
    not depend on ``workers``.

    ``exclude[p]``: item indices (columns) set to -inf for prompt ``p`` (e.g. its history). With ``top_k``, only
    the ``top_k`` best remaining items per prompt (and any tied with the ``top_k``-th) keep their exact scores and
    the rest are -inf, so :func:`top_items` up to ``top_k`` returns exactly what full scores would; the tree path
    then skips every title prefix that provably cannot reach the top (see :mod:`lure.llm.title_tree`).
    """
    if sequences is None:
        if catalogue_titles is None:
            raise ValueError("give catalogue_titles or sequences")
        sequences = [encode_completion(tokenizer, t, template) for t in catalogue_titles]
    if method not in ("auto", "tree", "generic"):
        raise ValueError(f"unknown method {method!r}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive number of items, got {top_k}")
    if exclude is not None and len(exclude) != len(prompts):
        raise ValueError(f"exclude needs one list per prompt ({len(prompts)}), got {len(exclude)}")
    model.eval()
    tree_ok = tree_supported(model) and all(len(s) > 0 for s in sequences)
    if method == "tree" and not tree_ok:
        raise ValueError("the tree path needs a LlamaForCausalLM without module hooks and non-empty sequences")
    if method == "generic" or not tree_ok:
        scores = _rank_generic(model, tokenizer, prompts, sequences, batch)
        return _keep_top(scores, top_k, exclude)
    tree = cached_title_tree(sequences)
    weights = tree_weights(model)
    ids = [prompt_ids(tokenizer, prompt) for prompt in prompts]
    scores = torch.empty(len(prompts), len(sequences), dtype=torch.float32)

    def score(p: int) -> None:
        with torch.inference_mode():  # grad mode is thread-local
            drop = None if exclude is None else exclude[p]
            scores[p] = tree_scores(model, tree, ids[p], weights, top_k=top_k, exclude=drop).cpu()

    threads = torch.get_num_threads()
    workers = threads if workers is None else max(1, int(workers))
    workers = min(workers, len(ids))
    if workers <= 1 or model_device(model).type != "cpu":
        for p in range(len(ids)):
            score(p)
        return _keep_top(scores, top_k, exclude)
    # One user per thread, each op single-threaded: the tree's ops are many and mid-sized, and intra-op threads
    # synchronise at every op (badly so when the cores are shared); users are independent, so they scale instead.
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(score, range(len(ids))))
    finally:
        torch.set_num_threads(threads)
    return _keep_top(scores, top_k, exclude)


def _keep_top(scores: torch.Tensor, top_k: int | None, exclude: Sequence[Sequence[int]] | None) -> torch.Tensor:
    """``scores`` with excluded items, and (given ``top_k``) items below each row's ``top_k``-th best, at -inf."""
    if exclude is not None:
        for p, cols in enumerate(exclude):
            if len(cols):
                scores[p, torch.as_tensor(list(cols), dtype=torch.long)] = -torch.inf
    if top_k is not None and top_k < scores.shape[1]:
        kth = scores.topk(top_k, dim=1).values[:, -1:]
        scores[scores < kth] = -torch.inf
    return scores


def _rank_generic(
    model: Any, tokenizer: Any, prompts: Sequence[PromptLike], sequences: Sequence[Sequence[int]], batch: int
) -> torch.Tensor:
    """The prompt's KV cache repeated over batches of length-sorted, right-padded titles (any causal LM)."""
    device = model_device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, lengths = pad_sequences(sequences, pad_id)
    order = torch.argsort(lengths, stable=True)
    ids, lengths = ids[order].to(device), lengths[order].to(device)
    scores = torch.empty(len(prompts), len(sequences), dtype=torch.float32)
    for p, prompt in enumerate(prompts):
        logp0, cache = run_prompt(model, prompt_ids(tokenizer, prompt))
        sorted_scores = torch.empty(len(sequences), dtype=torch.float32, device=device)
        for start in range(0, len(sequences), batch):
            block_len = lengths[start : start + batch]
            width = int(block_len.max())
            block = ids[start : start + batch, :width]
            total = logp0[block[:, 0]]
            if width > 1:
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(block.shape[0])
                out = model(input_ids=block[:, :-1], past_key_values=past, use_cache=True)
                logp = torch.log_softmax(out.logits.float(), dim=-1)
                tok = logp.gather(-1, block[:, 1:].unsqueeze(-1)).squeeze(-1)
                valid = torch.arange(1, width, device=device).unsqueeze(0) < block_len.unsqueeze(1)
                total = total + torch.where(valid, tok, torch.zeros_like(tok)).sum(dim=1)
            sorted_scores[start : start + batch] = total
        scores[p, order] = sorted_scores.cpu()
    return scores


def top_items(scores: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Indices of the ``k`` best items per row (ties broken by lower index, for reproducibility)."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    return order[:, :k]
