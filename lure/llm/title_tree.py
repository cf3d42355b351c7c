"""Exact sequence log-probabilities of every catalogue title under a Llama model, each shared prefix run once.

Why a tree: a catalogue's titles share prefixes ("The ...", "Star Wars: ..."), and a causal LM's state at a
token depends only on the tokens before it. So the titles' prefix tree is walked one depth at a time and every
node that has children is *forwarded* once (a *row*): its token is read at position ``prompt_len + depth - 1``,
attending to the prompt's KV cache and to its own ancestors, and its output distribution scores all of its
children. The forward is reimplemented from the model's weights (LlamaForCausalLM only): the rotary embedding is
folded into per-depth q|k weights, the prompt and the ancestors are attended to by PyTorch's fused CPU attention
kernel (two calls, merged by their log-sum-exps), and the lm head runs through the fused log-softmax in
cache-sized blocks, gathering only the scored edges.

Why pruning is exact (``top_k``): a title's log-probability is its prefix's plus the log-probabilities of its
remaining tokens, each <= 0 (also in floating point: adding a non-positive float never increases a sum). Once k
titles are finished, the k-th best of their scores, tau, bounds the k-th best score of the catalogue from below,
so a prefix scoring below tau leads to no title of the top k and is not forwarded. A probe beam (a few dozen
rows wide) first finishes some titles, so that tau exists from the first depths on; it then rises as titles
finish. Any upper bound of a prefix's score prunes as validly as the score itself: rows whose children provably
miss tau skip the lm head (Jensen's bound on its log-sum-exp), and rows whose next-token distribution is
near-uniform defer it, their children carrying the bound until a title below them may reach the top
(docs/llm.md, "Exact top k").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lure.llm.forward import run_prompt

CHUNK = 2048  # rows per forward call (all of one depth): amortises per-call overhead, stays cache-sized
HEAD_CHUNK = 256  # rows per lm-head block: the (rows x vocab) logits stay in cache for the fused log-softmax
PROBE_BEAM = 64  # widest probe beam; at most a 16th of the catalogue, at least top_k (see tree_scores)
DEFER_GAP = 0.1  # rows whose lm-head bound overshoots by less (nats, estimated) defer their head (_score_children)
_CACHE: dict[tuple[Any, ...], TitleTree] = {}  # recent trees by content; see cached_title_tree
_CACHE_SIZE = 4


@dataclass(frozen=True)
class TitleTree:
    """Prefix tree of token sequences, laid out for :func:`tree_scores`.

    Node ids are breadth-first (a parent precedes its children; node 0 is the root). Rows are the forwarded
    nodes (those with children) in node order, so the rows of one depth are contiguous.
    """

    tokens: torch.Tensor  # (rows,) token of each row's node
    row_node: torch.Tensor  # (rows,) node id of each row
    depth_start: tuple[int, ...]  # rows of depth d are depth_start[d - 1]:depth_start[d]
    ancestors: tuple[torch.Tensor, ...]  # [d - 1]: (rows of depth d, d) rows of each row's path below the root
    edge_ptr: torch.Tensor  # (rows + 1,) the children of row r are edges edge_ptr[r]:edge_ptr[r + 1]
    edge_tok: torch.Tensor  # (edges,) token of each edge
    edge_child: torch.Tensor  # (edges,) node the edge leads to
    root_tok: torch.Tensor  # tokens of the root's children
    root_child: torch.Tensor  # their node ids
    ends: torch.Tensor  # (n_sequences,) node reached by each full sequence
    n_nodes: int
    max_depth: int  # of any node (the deepest rows are one shallower)
    parent_row: torch.Tensor  # (n_nodes,) the row of each node's parent (-1: the root and its children)

    @property
    def row_depths(self) -> range:
        return range(1, len(self.depth_start))


def build_title_tree(sequences: Sequence[Sequence[int]]) -> TitleTree:
    """The prefix tree of non-empty token sequences (duplicates and sequences that prefix others allowed)."""
    parent, token, depth = [0], [-1], [0]
    child: dict[tuple[int, int], int] = {}
    ends: list[int] = []
    for seq in sequences:
        if len(seq) == 0:
            raise ValueError("title sequences must be non-empty")
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
    order = sorted(range(len(parent)), key=lambda n: depth[n])  # breadth-first, stable within a depth
    new = [0] * len(parent)
    for i, n in enumerate(order):
        new[n] = i
    par = [new[parent[n]] for n in order]
    tok = [token[n] for n in order]
    dep = [depth[n] for n in order]
    n_nodes = len(order)
    children: list[list[int]] = [[] for _ in range(n_nodes)]
    for c in range(1, n_nodes):
        children[par[c]].append(c)
    rows = [n for n in range(1, n_nodes) if children[n]]
    row_of = {n: r for r, n in enumerate(rows)}
    deepest = dep[rows[-1]] if rows else 0
    depth_start = [0] * (deepest + 1)
    for d in range(1, deepest + 1):
        depth_start[d] = depth_start[d - 1] + sum(1 for n in rows[depth_start[d - 1] :] if dep[n] == d)
    # a row's path is its parent's path (a row of the previous depth) plus itself
    ancestors: list[torch.Tensor] = []
    for d in range(1, deepest + 1):
        own = torch.arange(depth_start[d - 1], depth_start[d], dtype=torch.long).unsqueeze(1)
        if d == 1:
            ancestors.append(own)
            continue
        prev = torch.tensor(
            [row_of[par[rows[r]]] - depth_start[d - 2] for r in range(*depth_start[d - 1 : d + 1])], dtype=torch.long
        )
        ancestors.append(torch.cat([ancestors[-1][prev], own], dim=1))
    edge_ptr, edge_tok, edge_child = [0], [], []
    for n in rows:
        edge_tok.extend(tok[c] for c in children[n])
        edge_child.extend(children[n])
        edge_ptr.append(len(edge_child))
    long = torch.long
    return TitleTree(
        tokens=torch.tensor([tok[n] for n in rows], dtype=long),
        row_node=torch.tensor(rows, dtype=long),
        depth_start=tuple(depth_start),
        ancestors=tuple(ancestors),
        edge_ptr=torch.tensor(edge_ptr, dtype=long),
        edge_tok=torch.tensor(edge_tok, dtype=long),
        edge_child=torch.tensor(edge_child, dtype=long),
        root_tok=torch.tensor([tok[c] for c in children[0]], dtype=long),
        root_child=torch.tensor(children[0], dtype=long),
        ends=torch.tensor([new[e] for e in ends], dtype=long),
        n_nodes=n_nodes,
        max_depth=max(dep),
        parent_row=torch.tensor([-1 if n == 0 else row_of.get(par[n], -1) for n in range(n_nodes)], dtype=long),
    )


def cached_title_tree(sequences: Sequence[Sequence[int]]) -> TitleTree:
    """:func:`build_title_tree`, memoised on the sequences' contents (callers rank a catalogue in blocks of
    prompts, and building the tree of a 2,000-title catalogue costs as much as scoring a user)."""
    key = tuple(tuple(int(t) for t in s) for s in sequences)
    tree = _CACHE.pop(key, None)
    if tree is None:
        tree = build_title_tree(sequences)
    _CACHE[key] = tree  # most recent last
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    return tree


def tree_supported(model: Any) -> bool:
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
        mods = [
            attn.q_proj,
            attn.k_proj,
            attn.v_proj,
            attn.o_proj,
            layer.mlp.gate_proj,
            layer.mlp.up_proj,
            layer.mlp.down_proj,
        ]
        if any(type(m) is not linear for m in mods) or type(layer.mlp) is not LlamaMLP:
            return False
        if type(layer.input_layernorm) is not LlamaRMSNorm or type(layer.post_attention_layernorm) is not LlamaRMSNorm:
            return False
    return type(model.lm_head) is linear and type(model.model.norm) is LlamaRMSNorm


@dataclass(frozen=True)
class _Layer:
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


@dataclass(frozen=True)
class TreeWeights:
    """The model's weights merged for the tree forward (fewer, larger matmuls); a copy, taken once per call."""

    layers: list[_Layer]
    eps_final: float
    w_lm: torch.Tensor  # lm_head weight with the final norm weight folded in
    b_lm: torch.Tensor | None
    lm_mean: torch.Tensor  # (hidden + 1,) float32: the mean row of [w_lm | b_lm] (the bound of _TreePass._bounds)
    lm_norm_max: float  # largest row norm of w_lm
    lm_bias_max: float  # largest |b_lm| (0 without a bias)
    lm_cov: torch.Tensor  # (hidden + 1, hidden + 1) float32: covariance of the rows of [w_lm | b_lm] (_jensen_gap)


def _cat_bias(*linears: torch.nn.Linear, scale: Sequence[float] | None = None) -> torch.Tensor | None:
    if all(lin.bias is None for lin in linears):
        return None
    scale = scale or [1.0] * len(linears)
    return torch.cat(
        [
            (
                lin.bias
                if lin.bias is not None
                else torch.zeros(lin.out_features, dtype=lin.weight.dtype, device=lin.weight.device)
            )
            * c
            for lin, c in zip(linears, scale, strict=True)
        ]
    )


@torch.no_grad()
def tree_weights(model: Any) -> TreeWeights:
    layers = []
    for layer in model.model.layers[: model.config.num_hidden_layers]:
        attn, mlp = layer.self_attn, layer.mlp
        g_in, g_post = layer.input_layernorm.weight, layer.post_attention_layernorm.weight
        w_qkv = torch.cat([attn.q_proj.weight * attn.scaling, attn.k_proj.weight, attn.v_proj.weight]) * g_in
        w_gu = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]) * g_post
        layers.append(
            _Layer(
                layer.input_layernorm.variance_epsilon,
                w_qkv,
                _cat_bias(attn.q_proj, attn.k_proj, attn.v_proj, scale=[attn.scaling, 1.0, 1.0]),
                attn.o_proj.weight,
                attn.o_proj.bias,
                layer.post_attention_layernorm.variance_epsilon,
                w_gu,
                _cat_bias(mlp.gate_proj, mlp.up_proj),
                mlp.down_proj.weight,
                mlp.down_proj.bias,
                mlp.act_fn,
            )
        )
    norm = model.model.norm
    w_lm, b_lm = model.lm_head.weight * norm.weight, model.lm_head.bias
    bias = torch.zeros(len(w_lm), dtype=torch.float32, device=w_lm.device) if b_lm is None else b_lm.float()
    mean = torch.cat([w_lm.mean(0, dtype=torch.float32), bias.mean(0, keepdim=True)])  # no float copy of w_lm
    norm_max = float(torch.linalg.vector_norm(w_lm, dim=1, dtype=torch.float32).max())
    step = max(1, len(w_lm) // 4096)  # a cost estimate only: 4,096 rows of a large vocabulary suffice
    spread = torch.cat([w_lm[::step].float(), bias[::step, None]], dim=1)
    return TreeWeights(
        layers,
        norm.variance_epsilon,
        w_lm,
        b_lm,
        mean,
        norm_max,
        float(bias.abs().max()),
        torch.cov(spread.T, correction=0),
    )


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm without its weight (folded into the next matmul)."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _rotated(w: torch.Tensor, n_rot: int, hd: int, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``w`` (out[, in]) with its first ``n_rot`` heads' rows rotated for one position: rope(w @ x) = rotated @ x.

    ``cos``/``sin``: (hd,). Rows past the rotated heads (v) are copied.
    """
    tail = w.shape[1:]
    qk = w[: n_rot * hd].reshape(n_rot, hd, *tail)
    rot = torch.cat((-qk[:, hd // 2 :], qk[:, : hd // 2]), dim=1)
    shape = (1, hd) + (1,) * len(tail)
    out = qk * cos.reshape(shape).to(w.dtype) + rot * sin.reshape(shape).to(w.dtype)
    return torch.cat([out.reshape(n_rot * hd, *tail), w[n_rot * hd :]])


def attend(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, fused: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T) v (q pre-scaled, no mask) and the float32 log-sum-exp of the scores.

    q: (B, H, L, hd), keys/values: (B, H, S, hd); returns (B, H, L, hd) and (B, H, L). On CPU (and ``fused``)
    PyTorch's fused flash-attention kernel, which also returns the log-sum-exp, does it without materialising the
    (L x S) scores; elsewhere, or where this torch build lacks that kernel, two matmuls do.
    """
    if fused and q.device.type == "cpu":
        try:
            o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, keys, values, 0.0, False, scale=1.0)[
                :2
            ]
            return o, lse.float()
        except (AttributeError, RuntimeError, NotImplementedError, TypeError):  # pragma: no cover - old/odd builds
            pass
    s = torch.matmul(q, keys.transpose(-1, -2)).float()
    m = s.amax(dim=-1, keepdim=True)
    e = s.sub_(m).exp_()
    z = e.sum(dim=-1, keepdim=True)
    o = torch.matmul(e.to(values.dtype), values) / z.to(values.dtype)
    return o, (m + z.log()).squeeze(-1)


class _TreePass:
    """One prompt's walk over the tree: the rows' keys and values so far, and every node's prefix score."""

    def __init__(
        self,
        model: Any,
        tree: TitleTree,
        prompt: Sequence[int],
        weights: TreeWeights,
        head_chunk: int,
        fused_attention: bool = True,
    ) -> None:
        self.tree, self.w, self.head_chunk = tree, weights, head_chunk
        self.fused_attention = fused_attention
        self.device = device = next(model.parameters()).device
        logp0, cache = run_prompt(model, prompt)
        inner = model.model
        self.embed, self.rotary = inner.embed_tokens, inner.rotary_emb
        self.hd = inner.layers[0].self_attn.head_dim
        self.kv = model.config.num_key_value_heads
        self.gq = model.config.num_attention_heads // self.kv
        self.keys_p = [cache.layers[i].keys[:1] for i in range(len(weights.layers))]  # (1, kv, plen, hd), rotated
        self.vals_p = [cache.layers[i].values[:1] for i in range(len(weights.layers))]
        self.dtype = self.keys_p[0].dtype
        rows = len(tree.tokens)
        self.kbuf = [torch.empty(rows, self.kv * self.hd, dtype=self.dtype, device=device) for _ in weights.layers]
        self.vbuf = [torch.empty(rows, self.kv * self.hd, dtype=self.dtype, device=device) for _ in weights.layers]
        plen = len(prompt)
        pos = torch.arange(plen, plen + max(tree.max_depth, 1), device=device).unsqueeze(0)
        self.cos, self.sin = self.rotary(self.keys_p[0], position_ids=pos)  # (1, depths, hd)
        self.rot_depth, self.w_rot, self.b_rot = 0, [], []  # q|k|v weights rotated for one depth (memory: one copy)
        t = {
            name: getattr(tree, name).to(device)
            for name in (
                "tokens",
                "row_node",
                "edge_ptr",
                "edge_tok",
                "edge_child",
                "root_tok",
                "root_child",
                "ends",
                "parent_row",
            )
        }
        self.t = t
        self.total = torch.full((tree.n_nodes,), -torch.inf, dtype=torch.float32, device=device)  # log P(prefix)
        self.total[t["root_child"]] = logp0[t["root_tok"]]
        self.reached = torch.zeros(tree.n_nodes, dtype=torch.bool, device=device)  # its parent was forwarded
        self.reached[t["root_child"]] = True
        self.done = torch.zeros(rows, dtype=torch.bool, device=device)
        # deferred lm heads (see _score_children): which scores are exact, which rows' heads ran, their edges' log P
        self.exact = torch.zeros(tree.n_nodes, dtype=torch.bool, device=device)
        self.exact[t["root_child"]] = True
        self.head_done = torch.zeros(rows, dtype=torch.bool, device=device)
        self.edge_logp = torch.full((len(tree.edge_tok),), torch.nan, dtype=torch.float32, device=device)
        self.x: torch.Tensor | None = None  # (rows, hidden) lm-head inputs of deferred rows, allocated on first use

    def pending(self, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of ``depth`` whose parent was forwarded but which were not, and their prefix scores."""
        lo, hi = self.tree.depth_start[depth - 1], self.tree.depth_start[depth]
        rows = torch.arange(lo, hi, device=self.device)
        nodes = self.t["row_node"][lo:hi]
        keep = self.reached[nodes] & ~self.done[lo:hi]
        return rows[keep], self.total[nodes[keep]]

    def _rotate(self, depth: int) -> None:
        if depth == self.rot_depth:
            return
        n_rot = self.gq * self.kv + self.kv
        c, s = self.cos[0, depth - 1], self.sin[0, depth - 1]
        self.w_rot = [_rotated(lw.w_qkv, n_rot, self.hd, c, s) for lw in self.w.layers]
        self.b_rot = [None if lw.b_qkv is None else _rotated(lw.b_qkv, n_rot, self.hd, c, s) for lw in self.w.layers]
        self.rot_depth = depth

    def forward(self, rows: torch.Tensor, depth: int, tau: float = -math.inf, defer: bool = False) -> None:
        """Forward ``rows`` (ascending, all of ``depth``, ancestors done) and score their children (those that
        may reach ``tau``; ``defer``: see :meth:`_score_children`)."""
        n, kv, gq, hd, d = len(rows), self.kv, self.gq, self.hd, depth
        if n == 0:
            return
        self._rotate(d)
        n_q, n_qk = kv * gq * hd, (kv * gq + kv) * hd
        anc = self.tree.ancestors[d - 1].to(self.device)[rows - self.tree.depth_start[d - 1]].reshape(-1)
        # the first layer sees a row only through its token and position: compute it once per distinct token
        # (a third of the rows on a 2,000-title catalogue), q|k|v and prompt attention alike
        distinct, row_of = torch.unique(self.t["tokens"][rows], return_inverse=True)
        h = self.embed(distinct)  # (distinct, hidden), then (n, hidden) from the first layer's output on
        for li, lw in enumerate(self.w.layers):
            qkv = torch.nn.functional.linear(_rms(h, lw.eps_in), self.w_rot[li], self.b_rot[li])
            r = len(qkv)  # distinct tokens in the first layer, rows after it
            q = qkv[:, :n_q].view(r, kv, gq, hd)
            # the prompt, through the fused kernel: one batch, r * gq queries per kv head
            o_p, lse_p = attend(
                q.permute(1, 0, 2, 3).reshape(1, kv, r * gq, hd), self.keys_p[li], self.vals_p[li], self.fused_attention
            )
            o_p = o_p.view(kv, r, gq, hd).permute(1, 0, 2, 3)  # (r, kv, gq, hd)
            lse_p = lse_p.view(kv, r, gq).permute(1, 0, 2)  # (r, kv, gq)
            if li == 0:
                h, qkv, q, o_p, lse_p = h[row_of], qkv[row_of], q[row_of], o_p[row_of], lse_p[row_of]
            self.kbuf[li].index_copy_(0, rows, qkv[:, n_q:n_qk])
            self.vbuf[li].index_copy_(0, rows, qkv[:, n_qk:])
            # the row's own path (itself last): at most `depth` keys each, gathered row-wise (a fused kernel call
            # per row would cost more than these few elementwise passes)
            k_a = self.kbuf[li].index_select(0, anc).view(n, d, kv, 1, hd)
            v_a = self.vbuf[li].index_select(0, anc).view(n, d, kv, 1, hd)
            s_a = (q.unsqueeze(1) * k_a).sum(-1).float()  # (n, d, kv, gq)
            # merged by log-sum-exp: softmax over the union of both key sets
            m = torch.maximum(lse_p, s_a.amax(dim=1))
            e_a = (s_a - m.unsqueeze(1)).exp_()
            w_p = (lse_p - m).exp_()
            z = w_p + e_a.sum(dim=1)
            o = o_p * w_p.unsqueeze(-1).to(self.dtype) + (e_a.to(self.dtype).unsqueeze(-1) * v_a).sum(dim=1)
            o = (o / z.unsqueeze(-1).to(self.dtype)).reshape(n, n_q)
            h = h + torch.nn.functional.linear(o, lw.w_o, lw.b_o)
            gu = torch.nn.functional.linear(_rms(h, lw.eps_post), lw.w_gu, lw.b_gu)
            half = gu.shape[-1] // 2
            h = h + torch.nn.functional.linear(lw.act(gu[:, :half]) * gu[:, half:], lw.w_down, lw.b_down)
        self._score_children(rows, _rms(h, self.w.eps_final), tau, defer)
        self.done[rows] = True

    def _edges(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The child edges of ``rows``: each edge's index into ``rows``, its id, its token and the node it leads to."""
        t, n = self.t, len(rows)
        lo, count = t["edge_ptr"][rows], t["edge_ptr"][rows + 1] - t["edge_ptr"][rows]
        edge_row = torch.repeat_interleave(torch.arange(n, device=self.device), count)
        first = torch.cumsum(count, 0) - count
        edges = lo[edge_row] + torch.arange(len(edge_row), device=self.device) - first[edge_row]
        return edge_row, edges, t["edge_tok"][edges], t["edge_child"][edges]

    def _bounds(self, rows: torch.Tensor, x: torch.Tensor, edge_row: torch.Tensor, tok: torch.Tensor) -> torch.Tensor:
        """An upper bound of the score each child edge of ``rows`` (``edge_row``/``tok``: see :meth:`_edges`) will
        get, without the lm head's full matmul.

        Jensen: log-sum-exp(logits) >= mean(logits) + log V, so log P(child) <= logit(child) - mean(logits) - log V
        (docs/llm.md, "Exact top k"). The child's logit and the mean logit are two dot products per row instead of
        V; the slack covers their float rounding (|error| <= gamma_K * |x| * |w| for a dot product of length K, plus
        the weights' own rounding when they are not float32), so the bound holds for the computed scores too.
        """
        w = self.w
        xf = x.float()
        logit = (xf[edge_row] * w.w_lm[tok].float()).sum(-1)
        if w.b_lm is not None:
            logit = logit + w.b_lm[tok].float()
        floor = xf @ w.lm_mean[:-1] + w.lm_mean[-1] + math.log(len(w.w_lm))  # <= log-sum-exp of the row's logits
        prefix = self.total[self.t["row_node"][rows]]
        size = xf.norm(dim=-1) * w.lm_norm_max + w.lm_bias_max  # >= |logit| of any token, and >= |mean logit|
        eps = 2 * (x.shape[-1] * torch.finfo(torch.float32).eps + torch.finfo(w.w_lm.dtype).eps)
        slack = 1e-3 + 2 * eps * size + 1e-5 * (prefix.abs() + floor.abs())
        return (prefix - floor + slack)[edge_row] + logit

    def _hopeful(self, rows: torch.Tensor, x: torch.Tensor, tau: float) -> torch.Tensor:
        """Which of ``rows`` may have a child scoring >= ``tau`` (by :meth:`_bounds`)."""
        edge_row, _, tok, _ = self._edges(rows)
        hopeful = torch.zeros(len(rows), dtype=torch.bool, device=self.device)
        hopeful[edge_row[self._bounds(rows, x, edge_row, tok) >= tau]] = True
        return hopeful

    def _jensen_gap(self, x: torch.Tensor) -> torch.Tensor:
        """About how far :meth:`_bounds` overshoots each row's children: log-mean-exp minus the mean of the
        logits, ~ half their variance over the vocabulary (exact for Gaussian logits), from the lm head's
        covariance. Only a cost estimate: which rows defer their lm head, never what is returned."""
        cov = self.w.lm_cov
        xt = torch.cat([x.float(), torch.ones(len(x), 1, dtype=torch.float32, device=self.device)], dim=1)
        return 0.5 * ((xt @ cov) * xt).sum(-1)

    def _head(
        self,
        rows: torch.Tensor,
        x: torch.Tensor,
        edges: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Run the lm head on ``rows``: log P(child | row's prefix) of each child edge (``edges``: their
        :meth:`_edges`), kept in ``edge_logp`` and returned."""
        hc, n = self.head_chunk, len(rows)
        edge_row, edge, tok, _ = self._edges(rows) if edges is None else edges
        bounds = torch.searchsorted(edge_row, torch.arange(0, n + hc, hc, device=self.device)).tolist()
        picked = torch.empty(len(edge), dtype=torch.float32, device=self.device)
        for b, i in enumerate(range(0, n, hc)):
            e0, e1 = bounds[b], bounds[b + 1]
            logp = torch.log_softmax(torch.nn.functional.linear(x[i : i + hc], self.w.w_lm, self.w.b_lm).float(), -1)
            picked[e0:e1] = logp[edge_row[e0:e1] - i, tok[e0:e1]]
        self.edge_logp[edge] = picked
        self.head_done[rows] = True
        return picked

    def _score_children(self, rows: torch.Tensor, x: torch.Tensor, tau: float, defer: bool = False) -> None:
        """Score the children of ``rows``: each child's prefix score is its row's plus log P(child | row's prefix).

        With a finite ``tau``, rows none of whose children can reach it (by :meth:`_bounds`) skip the lm head;
        their children stay unreached (-inf). With ``defer`` too, rows whose bound is nearly tight (a near-uniform
        next-token distribution, as before or early in training) also skip it for now: their children get the
        bound as an inexact score, which prunes about as well as the exact one would, and :meth:`resolve` runs
        the heads of the few rows on the paths of titles that may reach the top.
        """
        edge_row, edge, tok, child = self._edges(rows)
        if tau > -math.inf:
            bound = self._bounds(rows, x, edge_row, tok)
            hopeful = torch.zeros(len(rows), dtype=torch.bool, device=self.device)
            hopeful[edge_row[bound >= tau]] = True
            if defer:
                lazy = hopeful & (self._jensen_gap(x) < DEFER_GAP)
                if lazy.any():
                    if self.x is None:
                        self.x = torch.empty(len(self.tree.tokens), x.shape[-1], dtype=x.dtype, device=self.device)
                    self.x[rows[lazy]] = x[lazy]
                    on = lazy[edge_row]
                    self.total[child[on]] = bound[on]
                    self.exact[child[on]] = False
                    self.reached[child[on]] = True
                    hopeful &= ~lazy
            on = hopeful[edge_row]
            rows, x = rows[hopeful], x[hopeful]
            renumber = torch.cumsum(hopeful, 0) - 1
            edge_row, edge, tok, child = renumber[edge_row[on]], edge[on], tok[on], child[on]
        picked = self._head(rows, x, (edge_row, edge, tok, child))
        parent = self.t["row_node"][rows][edge_row]
        self.total[child] = self.total[parent] + picked
        self.exact[child] = self.exact[parent]
        self.reached[child] = True

    def resolve(self, nodes: torch.Tensor) -> None:
        """Make the scores of reached ``nodes`` exact: run the deferred lm heads on their paths (from the inputs
        kept), then re-add the paths' log-probabilities from the root down (siblings on the way become exact too)."""
        nodes = nodes[~self.exact[nodes]]
        if len(nodes) == 0:
            return
        tree, parent = self.tree, self.t["parent_row"][nodes]
        starts = torch.tensor(tree.depth_start, device=self.device)
        depth = torch.searchsorted(starts, parent, right=True)  # rows of depth d lie in depth_start[d - 1]:[d]
        paths = [
            tree.ancestors[d - 1].to(self.device)[parent[depth == d] - tree.depth_start[d - 1]].reshape(-1)
            for d in depth.unique().tolist()
        ]
        path = torch.cat(paths).unique()  # ascending: shallower rows first
        missing = path[~self.head_done[path]]
        if len(missing):
            assert self.x is not None
            self._head(missing, self.x[missing])
        path_depth = torch.searchsorted(starts, path, right=True)
        for d in path_depth.unique().tolist():  # parents before children
            rows = path[path_depth == d]
            edge_row, edges, _, child = self._edges(rows)
            parent_node = self.t["row_node"][rows][edge_row]
            self.total[child] = self.total[parent_node] + self.edge_logp[edges]
            self.exact[child] = self.exact[parent_node]

    def finished(self, exclude: torch.Tensor | None, exact: bool = False) -> torch.Tensor:
        """Scores of the finished sequences (-inf for unfinished and excluded ones; with ``exact``, also for those
        whose score is still an upper bound)."""
        ends = self.t["ends"]
        done = self.reached[ends] & self.exact[ends] if exact else self.reached[ends]
        s = torch.where(done, self.total[ends], -torch.inf)
        if exclude is not None and len(exclude):
            s[exclude] = -torch.inf
        return s


@torch.inference_mode()
def tree_scores(
    model: Any,
    tree: TitleTree,
    prompt: Sequence[int],
    weights: TreeWeights | None = None,
    top_k: int | None = None,
    exclude: Sequence[int] | None = None,
    chunk: int = CHUNK,
    head_chunk: int = HEAD_CHUNK,
    probe: int | None = None,
    fused_attention: bool = True,
) -> torch.Tensor:
    """log P(sequence | prompt) of every sequence of ``tree`` (float32, on the model's device).

    With ``top_k``, only prefixes that can still lead to one of the ``top_k`` best sequences (``exclude``:
    sequence indices that do not count) are forwarded: the top ``top_k`` get their exact scores, others may be
    -inf (rows may defer their lm head meanwhile: :meth:`_TreePass._score_children`). Without it every sequence is
    scored. ``chunk``/``head_chunk`` bound the rows per forward / lm-head call;
    ``probe`` is the width of the probe beam (0: none). Its default, ``max(top_k, min(64, n / 16))`` for ``n``
    sequences, was tuned on the world's trained SFT model (800 titles, top 10): with width 10, tau stayed so low
    that ranking took 2.5x as long as with width 60, and widths beyond ~100 cost more than they save.
    ``fused_attention=False`` attends to the prompt by plain matmuls on CPU too (as off CPU; equally exact).
    """
    weights = tree_weights(model) if weights is None else weights
    run = _TreePass(model, tree, prompt, weights, head_chunk, fused_attention)
    n_seq = len(tree.ends)
    prune = top_k is not None and 0 < top_k < n_seq
    excl = None if exclude is None else torch.as_tensor(list(exclude), dtype=torch.long, device=run.device)

    def tau() -> float:  # from exact scores only: the k-th best of them bounds the catalogue's k-th from below
        if not prune:
            return -float("inf")
        return float(run.finished(excl, exact=True).topk(top_k).values[-1])

    def settle() -> None:  # finished titles whose inexact score (an upper bound) reaches tau get their exact one
        ends = run.t["ends"]
        while True:
            score = run.finished(excl)  # -inf: unfinished or excluded, neither of which needs an exact score
            todo = (score > -torch.inf) & (score >= tau()) & ~run.exact[ends]
            if not todo.any():
                return
            run.resolve(ends[todo])
            assert run.exact[ends[todo]].all(), "resolve left a title's score inexact"

    if probe is None:
        probe = max(top_k or 0, min(PROBE_BEAM, n_seq // 16))
    if prune and probe > 0:  # the probe beam finishes some titles, so that tau exists from the first depth
        for d in tree.row_depths:
            rows, score = run.pending(d)
            live = score >= tau()  # a prefix below tau cannot raise tau: once none is left, the probe is done
            if not live.any():
                break
            rows, score = rows[live], score[live]
            run.forward(rows[score.topk(min(probe, len(rows))).indices.sort().values], d, tau())
    for d in tree.row_depths:
        rows, score = run.pending(d)
        rows = rows[score >= tau()] if prune else rows
        for i in range(0, len(rows), chunk):
            run.forward(rows[i : i + chunk], d, tau(), defer=prune)
        if prune:
            settle()
    ends = run.t["ends"]
    return torch.where(run.exact[ends], run.total[ends], -torch.inf)
