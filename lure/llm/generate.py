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
real tokens, which precede them). For Llama models the default *tree* path instead forwards each distinct title
prefix once (the titles' prefix tree, one batch of nodes per depth, reimplemented from the model's weights: rotary
embedding folded into per-depth q/k weights, prompt attention through the fused CPU kernel merged with the node's
own ancestors by log-sum-exp, lm head through the fused log-softmax in cache-sized blocks) and, on CPU, scores
several prompts at once, one per thread.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
def rank_catalogue(model: Any, tokenizer: Any, prompts: Sequence[PromptLike],
                   catalogue_titles: Sequence[str] | None = None, batch: int = 256,
                   template: PromptTemplate | str | None = None,
                   sequences: Sequence[Sequence[int]] | None = None, method: str = "auto",
                   workers: int | None = None) -> torch.Tensor:
    """Exact scores (n_prompts x n_items, float32): log P(title + terminator + EOS | prompt) for every item.

    Pass ``catalogue_titles`` (encoded with :func:`encode_completion`) or precomputed ``sequences`` (e.g.
    ``trie.sequences``). ``method``: ``"tree"`` runs the model once per node of the titles' prefix tree (each
    shared prefix token is computed once, attending to the prompt's cache and its own ancestors; LlamaForCausalLM
    only), ``"generic"`` repeats the prompt's cache over batches of ``batch`` length-sorted, right-padded titles
    (any causal LM), ``"auto"`` picks the tree when the model supports it. Both are exact. On CPU the tree path
    scores ``workers`` prompts at once (default ``torch.get_num_threads()``), one per thread with single-threaded
    ops (the torch thread count is set to 1 meanwhile and restored); results do not depend on ``workers``.
    """
    if sequences is None:
        if catalogue_titles is None:
            raise ValueError("give catalogue_titles or sequences")
        sequences = [encode_completion(tokenizer, t, template) for t in catalogue_titles]
    if method not in ("auto", "tree", "generic"):
        raise ValueError(f"unknown method {method!r}")
    model.eval()
    tree_ok = _tree_supported(model) and all(len(s) > 0 for s in sequences)
    if method == "tree" and not tree_ok:
        raise ValueError("the tree path needs a LlamaForCausalLM without module hooks and non-empty sequences")
    if method == "generic" or not tree_ok:
        return _rank_generic(model, tokenizer, prompts, sequences, batch)
    tree = _cached_tree(sequences)
    weights = _tree_weights(model)
    ids = [prompt_ids(tokenizer, prompt) for prompt in prompts]
    scores = torch.empty(len(prompts), len(sequences), dtype=torch.float32)
    threads = torch.get_num_threads()
    workers = threads if workers is None else max(1, int(workers))
    workers = min(workers, len(ids))
    if workers <= 1 or _device(model).type != "cpu":
        for p, pid in enumerate(ids):
            scores[p] = _tree_scores(model, tree, pid, weights).cpu()
        return scores

    def score(p: int) -> None:
        with torch.inference_mode():  # grad mode is thread-local
            scores[p] = _tree_scores(model, tree, ids[p], weights)

    # One user per thread, each op single-threaded: the tree's ops are many and mid-sized, and intra-op threads
    # synchronise at every op (badly so when the cores are shared); users are independent, so they scale instead.
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(score, range(len(ids))))
    finally:
        torch.set_num_threads(threads)
    return scores


def _rank_generic(model: Any, tokenizer: Any, prompts: Sequence[PromptLike], sequences: Sequence[Sequence[int]],
                  batch: int) -> torch.Tensor:
    """The prompt's KV cache repeated over batches of length-sorted, right-padded titles (any causal LM)."""
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


# --- exact ranking over the title trie (LlamaForCausalLM) ------------------------------------------------------

_TREE_CHUNK = 2048  # trie nodes per forward chunk (all of one depth): amortises per-call overhead, stays cache-sized
_HEAD_CHUNK = 256  # rows per lm-head block: (rows x vocab) logits stay in cache for the fused log-softmax
_TREE_CACHE: dict[tuple[Any, ...], _TitleTree] = {}  # recent trees by (sequences, chunk sizes); see _cached_tree
_TREE_CACHE_SIZE = 4


@dataclass(frozen=True)
class _TreeGroup:
    """Forwarded trie nodes of one depth (a contiguous row range), their ancestor rows, and the edges they score."""

    start: int
    end: int
    depth: int
    ancestors: torch.Tensor  # (rows * depth,): rows of each node's ancestors below the root, the node itself last
    edge_row: torch.Tensor  # (edges,) local row (0-based within the group) of each edge's parent, ascending
    edge_tok: torch.Tensor  # (edges,) token of the edge
    edge_child: torch.Tensor  # (edges,) child node id
    head_bounds: tuple[int, ...]  # edge offsets of the lm-head blocks (rows [i * head_chunk, (i + 1) * head_chunk))


@dataclass(frozen=True)
class _TitleTree:
    """Prefix tree of the title sequences, laid out for :func:`_tree_scores`.

    Node ids are breadth-first (a parent precedes its children). Every non-root node that has children is
    *forwarded*: the model reads its token once, at position ``prompt_len + depth - 1``, and its output
    distribution scores all of its children; its key/value are shared by every title below it.
    """

    tokens: torch.Tensor  # (rows,) token of each forwarded node, rows in breadth-first order
    groups: list[_TreeGroup]
    root_tok: torch.Tensor  # tokens of the root's children
    root_child: torch.Tensor  # their node ids
    levels: list[torch.Tensor]  # node ids per depth 1, 2, ... (for the path sums)
    parents: torch.Tensor  # (nodes,) parent id (root: 0)
    ends: torch.Tensor  # (n_sequences,) node reached by each full sequence
    n_nodes: int
    max_depth: int
    head_chunk: int


def _title_tree(sequences: Sequence[Sequence[int]], chunk: int = _TREE_CHUNK,
                head_chunk: int = _HEAD_CHUNK) -> _TitleTree:
    parent, token, depth = [0], [-1], [0]
    child: dict[tuple[int, int], int] = {}
    ends: list[int] = []
    for seq in sequences:
        node = 0
        for t in seq:
            key = (node, int(t))
            nxt = child.get(key)
            if nxt is None:
                nxt = len(parent)
                child[key] = nxt
                parent.append(node)
                token.append(int(t))
                depth.append(depth[node] + 1)
            node = nxt
        ends.append(node)
    # renumber breadth-first (stable within a depth)
    order = sorted(range(len(parent)), key=lambda n: depth[n])
    new = [0] * len(parent)
    for i, n in enumerate(order):
        new[n] = i
    par = [new[parent[n]] for n in order]
    tok = [token[n] for n in order]
    dep = [depth[n] for n in order]
    ends = [new[e] for e in ends]
    n_nodes = len(order)
    has_child = [False] * n_nodes
    for c in range(1, n_nodes):
        has_child[par[c]] = True
    row = [-1] * n_nodes
    fwd = [n for n in range(1, n_nodes) if has_child[n]]
    for r, n in enumerate(fwd):
        row[n] = r
    max_depth = max(dep)
    levels = [[] for _ in range(max_depth + 1)]
    for n in range(1, n_nodes):
        levels[dep[n]].append(n)
    # edges grouped by their parent's row (parents are forwarded, non-root)
    edges_of_row: list[list[int]] = [[] for _ in fwd]
    for c in range(1, n_nodes):
        if par[c] != 0:
            edges_of_row[row[par[c]]].append(c)
    # ancestor rows, one depth at a time: rows of a depth are contiguous, so a node's path is its parent's path
    # (a row of the previous depth's table) plus its own row
    anc_of_depth: dict[int, tuple[int, torch.Tensor]] = {}  # depth -> (first row, (rows, depth) ancestor rows)
    r = 0
    while r < len(fwd):
        d = dep[fwd[r]]
        end = r
        while end < len(fwd) and dep[fwd[end]] == d:
            end += 1
        own = torch.arange(r, end, dtype=torch.long).unsqueeze(1)
        if d == 1:
            anc_of_depth[d] = (r, own)
        else:
            first, prev = anc_of_depth[d - 1]
            prow = torch.tensor([row[par[fwd[i]]] - first for i in range(r, end)], dtype=torch.long)
            anc_of_depth[d] = (r, torch.cat([prev[prow], own], dim=1))
        r = end
    groups: list[_TreeGroup] = []
    r = 0
    while r < len(fwd):
        d = dep[fwd[r]]
        end = r
        while end < len(fwd) and end - r < chunk and dep[fwd[end]] == d:
            end += 1
        first, anc = anc_of_depth[d]
        e_row, e_tok, e_child = [], [], []
        for i in range(r, end):
            for c in edges_of_row[i]:
                e_row.append(i - r)
                e_tok.append(tok[c])
                e_child.append(c)
        edge_row = torch.tensor(e_row, dtype=torch.long)
        bounds = torch.searchsorted(edge_row, torch.arange(0, end - r + head_chunk, head_chunk)).tolist()
        groups.append(_TreeGroup(r, end, d, anc[r - first:end - first].reshape(-1).contiguous(), edge_row,
                                 torch.tensor(e_tok, dtype=torch.long), torch.tensor(e_child, dtype=torch.long),
                                 tuple(bounds)))
        r = end
    root_kids = [c for c in range(1, n_nodes) if par[c] == 0]
    return _TitleTree(
        tokens=torch.tensor([tok[n] for n in fwd], dtype=torch.long),
        groups=groups,
        root_tok=torch.tensor([tok[c] for c in root_kids], dtype=torch.long),
        root_child=torch.tensor(root_kids, dtype=torch.long),
        levels=[torch.tensor(lv, dtype=torch.long) for lv in levels[1:]],
        parents=torch.tensor(par, dtype=torch.long),
        ends=torch.tensor(ends, dtype=torch.long),
        n_nodes=n_nodes,
        max_depth=max_depth,
        head_chunk=head_chunk,
    )


def _cached_tree(sequences: Sequence[Sequence[int]], chunk: int = _TREE_CHUNK,
                 head_chunk: int = _HEAD_CHUNK) -> _TitleTree:
    """:func:`_title_tree`, memoised on the sequences' contents (callers rank a catalogue in blocks of prompts,
    and building the tree of a 2,000-title catalogue costs as much as scoring a user)."""
    key = (tuple(tuple(int(t) for t in s) for s in sequences), chunk, head_chunk)
    tree = _TREE_CACHE.pop(key, None)
    if tree is None:
        tree = _title_tree(sequences, chunk, head_chunk)
    _TREE_CACHE[key] = tree  # most recent last
    while len(_TREE_CACHE) > _TREE_CACHE_SIZE:
        _TREE_CACHE.pop(next(iter(_TREE_CACHE)))
    return tree


def _tree_supported(model: Any) -> bool:
    """The tree path re-implements LlamaForCausalLM's forward from its weights: only that exact class with plain
    ``nn.Linear`` projections and Llama's RMSNorm/MLP, in eval mode, with no hooks anywhere (they would be skipped)."""
    try:
        from transformers import LlamaForCausalLM
        from transformers.models.llama.modeling_llama import LlamaMLP, LlamaRMSNorm
    except ImportError:  # pragma: no cover
        return False
    if type(model) is not LlamaForCausalLM or model.training:
        return False
    if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return False
    linear = torch.nn.Linear
    for layer in model.model.layers[: model.config.num_hidden_layers]:
        attn = layer.self_attn
        mods = [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, layer.mlp.gate_proj, layer.mlp.up_proj,
                layer.mlp.down_proj]
        if any(type(m) is not linear for m in mods) or type(layer.mlp) is not LlamaMLP:
            return False
        if type(layer.input_layernorm) is not LlamaRMSNorm or type(layer.post_attention_layernorm) is not LlamaRMSNorm:
            return False
    return type(model.lm_head) is linear and type(model.model.norm) is LlamaRMSNorm


@dataclass(frozen=True)
class _TreeLayer:
    eps_in: float
    w_qkv: torch.Tensor  # q|k|v projections merged, input RMSNorm weight folded in, q pre-scaled by 1/sqrt(hd)
    b_qkv: torch.Tensor | None
    w_o: torch.Tensor
    b_o: torch.Tensor | None
    eps_post: float
    w_gu: torch.Tensor  # gate|up merged, post-attention RMSNorm weight folded in
    b_gu: torch.Tensor | None
    w_down: torch.Tensor
    b_down: torch.Tensor | None
    act: Any


def _cat_bias(*linears: torch.nn.Linear, scale: Sequence[float] | None = None) -> torch.Tensor | None:
    if all(lin.bias is None for lin in linears):
        return None
    scale = scale or [1.0] * len(linears)
    return torch.cat([(lin.bias if lin.bias is not None else torch.zeros(lin.out_features, dtype=lin.weight.dtype,
                                                                          device=lin.weight.device)) * c
                      for lin, c in zip(linears, scale, strict=True)])


def _tree_weights(model: Any) -> tuple[list[_TreeLayer], float, torch.Tensor, torch.Tensor | None]:
    """Merged per-layer weights (fewer, larger matmuls; norm weights and the attention scale folded in), plus the
    final norm's eps and the lm_head weight with the final norm weight folded in. A copy of the weights."""
    out = []
    for layer in model.model.layers[: model.config.num_hidden_layers]:
        attn, mlp = layer.self_attn, layer.mlp
        g_in, g_post = layer.input_layernorm.weight, layer.post_attention_layernorm.weight
        w_qkv = torch.cat([attn.q_proj.weight * attn.scaling, attn.k_proj.weight, attn.v_proj.weight]) * g_in
        w_gu = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]) * g_post
        out.append(_TreeLayer(
            layer.input_layernorm.variance_epsilon, w_qkv,
            _cat_bias(attn.q_proj, attn.k_proj, attn.v_proj, scale=[attn.scaling, 1.0, 1.0]),
            attn.o_proj.weight, attn.o_proj.bias, layer.post_attention_layernorm.variance_epsilon, w_gu,
            _cat_bias(mlp.gate_proj, mlp.up_proj), mlp.down_proj.weight, mlp.down_proj.bias, mlp.act_fn))
    norm = model.model.norm
    return out, norm.variance_epsilon, model.lm_head.weight * norm.weight, model.lm_head.bias


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm without its weight (folded into the next matmul)."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _rotated(w: torch.Tensor, n_rot: int, hd: int, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``w`` (out[, in]) with its first ``n_rot`` heads' rows rotated for each position: rope(w @ x) = rotated @ x.

    ``cos``/``sin``: (positions, hd). Returns (positions, out[, in]); rows past the rotated heads (v) are copied.
    """
    tail = w.shape[1:]
    qk = w[: n_rot * hd].reshape(n_rot, hd, *tail)
    rot = torch.cat((-qk[:, hd // 2:], qk[:, : hd // 2]), dim=1)
    shape = (cos.shape[0], 1, hd) + (1,) * len(tail)
    c, s = cos.reshape(shape).to(w.dtype), sin.reshape(shape).to(w.dtype)
    out = (qk.unsqueeze(0) * c + rot.unsqueeze(0) * s).reshape(cos.shape[0], n_rot * hd, *tail)
    return torch.cat([out, w[n_rot * hd:].unsqueeze(0).expand(cos.shape[0], *w[n_rot * hd:].shape)], dim=1)


_FLASH_CPU = True  # the fused CPU attention kernel that also returns the log-sum-exp; cleared if it is unavailable


def _attend_prompt(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T) v over the prompt's keys (q pre-scaled) and the log-sum-exp of the scores.

    q: (kv_heads, m, hd), keys/values: (kv_heads, plen, hd). Returns (kv_heads, m, hd) and (kv_heads, m).
    On CPU the fused flash-attention kernel does it without materialising the (m x plen) scores.
    """
    global _FLASH_CPU
    if _FLASH_CPU and q.device.type == "cpu":
        try:
            o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                q.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0), 0.0, False, scale=1.0)[:2]
            return o[0], lse[0].to(q.dtype)
        except (AttributeError, RuntimeError, NotImplementedError, TypeError):  # pragma: no cover - old/odd builds
            _FLASH_CPU = False
    s = torch.matmul(q, keys.transpose(1, 2)).float()
    m = s.amax(dim=-1, keepdim=True)
    e = s.sub_(m).exp_()
    z = e.sum(dim=-1, keepdim=True)
    o = torch.matmul(e.to(values.dtype), values) / z.to(values.dtype)
    return o, (m + z.log()).squeeze(-1).to(q.dtype)


def _tree_scores(model: Any, tree: _TitleTree, prompt: Sequence[int], weights: Any = None) -> torch.Tensor:
    """log P(sequence | prompt) for every sequence of ``tree`` (float32, on the model's device).

    Per group of same-depth nodes and per layer: one merged q|k|v matmul whose weights carry the rotary embedding
    of that depth's position (so no per-token rotation), attention split into the prompt part (fused kernel,
    returning its log-sum-exp) and the node's own ancestors (at most the tree depth), merged by their
    log-sum-exps; the lm head runs in cache-sized blocks through the fused log-softmax, gathering only the
    scored edges.
    """
    device = _device(model)
    layers_w, eps_final, w_lm, b_lm = _tree_weights(model) if weights is None else weights
    logp0, cache = _run_prompt(model, prompt)
    inner = model.model
    hd = inner.layers[0].self_attn.head_dim
    n_heads = model.config.num_attention_heads
    kv_heads = model.config.num_key_value_heads
    gq = n_heads // kv_heads
    n_q, n_qk = n_heads * hd, (n_heads + kv_heads) * hd
    plen = len(prompt)
    keys_p = [cache.layers[i].keys[0] for i in range(len(layers_w))]  # (kv_heads, plen, hd), rotated
    vals_p = [cache.layers[i].values[0] for i in range(len(layers_w))]
    dtype = keys_p[0].dtype
    rows = len(tree.tokens)
    kbuf = [torch.empty(rows, kv_heads * hd, dtype=dtype, device=device) for _ in layers_w]
    vbuf = [torch.empty(rows, kv_heads * hd, dtype=dtype, device=device) for _ in layers_w]
    pos = torch.arange(plen, plen + max(tree.max_depth, 1), device=device).unsqueeze(0)
    cos, sin = inner.rotary_emb(keys_p[0], position_ids=pos)  # (1, depths, hd)
    rot_depth, w_rot, b_rot = 0, [], []  # q|k|v weights rotated for the current depth only (memory: one copy)
    node_logp = torch.zeros(tree.n_nodes, dtype=torch.float32, device=device)  # log P(node's token | parent)
    node_logp[tree.root_child.to(device)] = logp0[tree.root_tok.to(device)]
    tokens = tree.tokens.to(device)
    hc = tree.head_chunk
    for g in tree.groups:
        n, d = g.end - g.start, g.depth
        if d != rot_depth:
            c, si = cos[0, d - 1 : d], sin[0, d - 1 : d]
            w_rot = [_rotated(lw.w_qkv, n_heads + kv_heads, hd, c, si)[0] for lw in layers_w]
            b_rot = [None if lw.b_qkv is None else _rotated(lw.b_qkv, n_heads + kv_heads, hd, c, si)[0]
                     for lw in layers_w]
            rot_depth = d
        anc = g.ancestors.to(device)
        h = inner.embed_tokens(tokens[g.start:g.end])  # (n, hidden)
        for li, lw in enumerate(layers_w):
            qkv = torch.nn.functional.linear(_rms(h, lw.eps_in), w_rot[li], b_rot[li])
            kbuf[li][g.start:g.end] = qkv[:, n_q:n_qk]
            vbuf[li][g.start:g.end] = qkv[:, n_qk:]
            q = qkv[:, :n_q].view(n, kv_heads, gq, hd)
            o_p, lse_p = _attend_prompt(q.permute(1, 0, 2, 3).reshape(kv_heads, n * gq, hd), keys_p[li], vals_p[li])
            o_p = o_p.view(kv_heads, n, gq, hd).permute(1, 0, 2, 3)  # (n, kv, g, hd)
            lse_p = lse_p.view(kv_heads, n, gq).permute(1, 0, 2)  # (n, kv, g)
            # the node's ancestors (itself last): at most `depth` keys each, gathered row-wise
            k_a = kbuf[li].index_select(0, anc).view(n, d, kv_heads, 1, hd)
            v_a = vbuf[li].index_select(0, anc).view(n, d, kv_heads, 1, hd)
            s_a = (q.unsqueeze(1) * k_a).sum(-1).float()  # (n, d, kv, g)
            m = torch.maximum(lse_p.float(), s_a.amax(dim=1))
            e_a = (s_a - m.unsqueeze(1)).exp_()
            w_p = (lse_p.float() - m).exp_()
            denom = w_p + e_a.sum(dim=1)
            o = o_p * w_p.unsqueeze(-1).to(dtype) + (e_a.to(dtype).unsqueeze(-1) * v_a).sum(dim=1)
            o = (o / denom.unsqueeze(-1).to(dtype)).reshape(n, n_q)
            h = h + torch.nn.functional.linear(o, lw.w_o, lw.b_o)
            gu = torch.nn.functional.linear(_rms(h, lw.eps_post), lw.w_gu, lw.b_gu)
            half = gu.shape[-1] // 2
            h = h + torch.nn.functional.linear(lw.act(gu[:, :half]) * gu[:, half:], lw.w_down, lw.b_down)
        if g.edge_child.numel():
            x = _rms(h, eps_final)
            er, et = g.edge_row.to(device), g.edge_tok.to(device)
            picked = torch.empty(len(er), dtype=torch.float32, device=device)
            for b, i in enumerate(range(0, n, hc)):
                e0, e1 = g.head_bounds[b], g.head_bounds[b + 1]
                if e0 == e1:
                    continue
                logp = torch.log_softmax(torch.nn.functional.linear(x[i:i + hc], w_lm, b_lm).float(), dim=-1)
                picked[e0:e1] = logp[er[e0:e1] - i, et[e0:e1]]
            node_logp[g.edge_child.to(device)] = picked
    parents = tree.parents.to(device)
    total = node_logp.clone()
    for level in tree.levels[1:]:
        level = level.to(device)
        total[level] += total[parents[level]]
    return total[tree.ends.to(device)]
