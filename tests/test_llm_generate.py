"""Token trie, constrained beam search and exact catalogue ranking (lure.llm.trie / generate)."""

from __future__ import annotations

import pytest
import torch

from lure.llm.generate import constrained_beam_search, prompt_ids, rank_catalogue, top_items
from lure.llm.model import build_tiny_llama
from lure.llm.prompts import encode_completion, render_prompt
from lure.llm.tokenizer import train_tokenizer
from lure.llm.trie import TokenTrie

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TITLES = [
    "Toy Story",
    "Toy Story 2",
    "Heat",
    "Alien",
    "Aliens",
    "Up",
    "The Matrix",
    "The Matrix Reloaded",
    "Amélie",
    "Se7en",
    "Jaws",
    "Jaws 2",
    "Fargo",
    "Casino",
    "Big",
    "Babe",
    "Brazil",
    "Ran",
    "Zodiac",
    "Gattaca",
]


@pytest.fixture(scope="module")
def setup():
    tok = train_tokenizer(TITLES, histories=[TITLES[:4], TITLES[5:9]], vocab_size=320)
    model = build_tiny_llama(tok, hidden=32, layers=2, heads=2, seed=1)
    trie = TokenTrie.from_titles(tok, TITLES)
    prompts = [render_prompt(TITLES[:3]), render_prompt(TITLES[10:14])]
    return tok, model, trie, prompts


def _bias(model, bias: torch.Tensor):
    """Add a fixed bias to the logits (a model whose preferences we choose)."""
    return model.lm_head.register_forward_hook(lambda mod, inp, out: out + bias)


def test_trie_paths_end_in_terminator_and_eos(setup):
    tok, _, trie, _ = setup
    for k, title in enumerate(TITLES):
        seq = encode_completion(tok, title)
        node = trie.walk(seq)
        assert node is not None and trie.items[node] == [k] and not trie.children[node]
        assert trie.walk(seq[:-1]) is not None and trie.allowed(seq[:-1]) == [tok.eos_token_id]
    assert trie.walk([tok.eos_token_id]) is None  # EOS first leaves the catalogue
    assert not trie.is_dead.any()
    with pytest.raises(ValueError, match="prefix"):
        TokenTrie([[1, 2], [1, 2, 3]])


def test_exact_ranking_equals_naive_forward(setup):
    tok, model, trie, prompts = setup
    fast = rank_catalogue(model, tok, prompts, TITLES, batch=3)  # several batches with ragged lengths
    naive = torch.empty_like(fast)
    with torch.no_grad():
        for p, prompt in enumerate(prompts):
            pid = prompt_ids(tok, prompt)
            for j, seq in enumerate(trie.sequences):
                logp = torch.log_softmax(model(torch.tensor([pid + seq])).logits[0].float(), dim=-1)
                naive[p, j] = logp[torch.arange(len(pid) - 1, len(pid) + len(seq) - 1), torch.tensor(seq)].sum()
    assert torch.allclose(fast, naive, atol=1e-4)
    one_batch = rank_catalogue(model, tok, prompts, sequences=trie.sequences, batch=64)
    assert torch.allclose(one_batch, fast, atol=1e-5)


def test_exhaustive_beam_matches_exact_top10(setup):
    tok, model, trie, prompts = setup
    exact = rank_catalogue(model, tok, prompts, TITLES)
    beams = constrained_beam_search(model, tok, prompts, trie, beam=len(TITLES), top_k=10)
    for p, res in enumerate(beams):
        assert set(res.items) <= set(top_items(exact, 10)[p].tolist()) and len(res.items) == 10
        assert torch.allclose(torch.tensor(res.scores), exact[p, res.items], atol=1e-4)
        assert res.scores == sorted(res.scores, reverse=True)
    default = constrained_beam_search(model, tok, prompts[:1], trie)  # beam 10
    assert len(default[0].items) == 10 and len(set(default[0].items)) == 10


def test_beam_stays_in_catalogue_when_model_wants_out(setup):
    tok, model, trie, prompts = setup
    used = {t for s in trie.sequences for t in s}
    bias = torch.zeros(len(tok))
    bias[[t for t in range(len(tok)) if t not in used]] = 30.0  # unconstrained argmax is never a catalogue token
    handle = _bias(model, bias)
    try:
        with torch.no_grad():
            first = model(torch.tensor([prompt_ids(tok, prompts[0])])).logits[0, -1].argmax().item()
        assert first not in trie.allowed_tokens[TokenTrie.ROOT].tolist()
        res = constrained_beam_search(model, tok, prompts, trie, beam=5)
    finally:
        handle.remove()
    for r in res:
        assert len(r.items) == 5 and set(r.items) <= set(range(len(TITLES)))
        assert all(torch.isfinite(torch.tensor(r.scores)))


def test_dead_prefix_beams_are_dropped(setup):
    tok, model, trie, prompts = setup
    keep = TITLES.index("Up")
    restricted = trie.without([k for k in range(len(TITLES)) if k != keep])
    assert restricted.is_dead.any()
    bias = torch.zeros(len(tok))
    bias[encode_completion(tok, "The Matrix Reloaded")] = 30.0  # the model loves a path that names no item now
    handle = _bias(model, bias)
    try:
        res = constrained_beam_search(model, tok, prompts, restricted, beam=3)
    finally:
        handle.remove()
    assert [r.items for r in res] == [[keep], [keep]]
    # a budget too short to finish any item returns nothing rather than forcing an unfinished title
    short = constrained_beam_search(model, tok, prompts[:1], trie, beam=3, max_steps=1)
    assert short[0].items == []


def test_tree_ranking_equals_generic_path(setup):
    """The trie path (one forward position per shared prefix) equals the cache-repeating generic path."""
    from lure.llm import title_tree

    tok, model, trie, prompts = setup
    tree = rank_catalogue(model, tok, prompts, TITLES, method="tree")
    generic = rank_catalogue(model, tok, prompts, TITLES, batch=3, method="generic")
    assert torch.allclose(tree, generic, atol=1e-4)
    assert torch.equal(rank_catalogue(model, tok, prompts, TITLES), tree)  # auto picks the tree for Llama
    # tiny chunks (several per depth), duplicate sequences, a sequence that is a prefix of another, length 1
    seqs = [*trie.sequences, trie.sequences[3], trie.sequences[4][:-1], trie.sequences[0][:1]]
    t = title_tree.build_title_tree(seqs)
    with torch.inference_mode():
        small = torch.stack(
            [title_tree.tree_scores(model, t, prompt_ids(tok, p), chunk=2, head_chunk=3) for p in prompts]
        )
    generic = rank_catalogue(model, tok, prompts, sequences=seqs, batch=4, method="generic")
    assert torch.allclose(small, generic, atol=1e-4)
    assert torch.allclose(rank_catalogue(model, tok, prompts, sequences=seqs, method="tree"), generic, atol=1e-4)


def test_tree_ranking_grouped_query_attention_and_fallback(setup):
    tok, _, trie, prompts = setup
    gqa = build_tiny_llama(tok, hidden=32, layers=2, heads=4, kv_heads=2, seed=3)
    tree = rank_catalogue(gqa, tok, prompts, sequences=trie.sequences, method="tree")
    generic = rank_catalogue(gqa, tok, prompts, sequences=trie.sequences, batch=7, method="generic")
    assert torch.allclose(tree, generic, atol=1e-4)
    handle = _bias(gqa, torch.randn(len(tok)))  # a hook the tree path would skip: auto falls back to generic
    try:
        with pytest.raises(ValueError, match="tree path"):
            rank_catalogue(gqa, tok, prompts, sequences=trie.sequences, method="tree")
        hooked = rank_catalogue(gqa, tok, prompts, sequences=trie.sequences)
        assert torch.allclose(hooked, rank_catalogue(gqa, tok, prompts, sequences=trie.sequences, method="generic"))
    finally:
        handle.remove()
    with pytest.raises(ValueError, match="method"):
        rank_catalogue(gqa, tok, prompts, sequences=trie.sequences, method="fast")


def test_tree_ranking_threaded_users_equal_one_by_one(setup):
    """Several prompts scored concurrently (one per thread) give each prompt's one-by-one scores, whatever the
    prompt lengths, and the caller's torch thread count is restored; the memoised tree equals a fresh one."""
    from lure.llm import title_tree

    tok, model, trie, prompts = setup
    many = [*prompts, render_prompt(TITLES[:1]), render_prompt(TITLES[2:12]), prompts[0]]
    assert len({len(prompt_ids(tok, p)) for p in many}) >= 4
    alone = torch.cat([rank_catalogue(model, tok, [p], sequences=trie.sequences, workers=1) for p in many])
    before = torch.get_num_threads()
    together = rank_catalogue(model, tok, many, sequences=trie.sequences, workers=3)
    assert torch.get_num_threads() == before
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.equal(together[0], together[-1])
    generic = rank_catalogue(model, tok, many, sequences=trie.sequences, batch=5, method="generic")
    assert torch.allclose(together, generic, atol=1e-4)
    cached, fresh = title_tree.cached_title_tree(trie.sequences), title_tree.build_title_tree(trie.sequences)
    assert title_tree.cached_title_tree([list(s) for s in trie.sequences]) is cached
    assert torch.equal(cached.tokens, fresh.tokens) and torch.equal(cached.ends, fresh.ends)


def test_tree_ranking_without_fused_attention_kernel(setup):
    """The plain-matmul prompt attention (used off CPU, or where the fused kernel is missing) is exact too."""
    from lure.llm import title_tree

    tok, _, trie, prompts = setup
    gqa = build_tiny_llama(tok, hidden=32, layers=2, heads=4, kv_heads=2, seed=4)
    fused = rank_catalogue(gqa, tok, prompts, sequences=trie.sequences, method="tree")
    tree, weights = title_tree.build_title_tree(trie.sequences), title_tree.tree_weights(gqa)
    plain = torch.stack(
        [title_tree.tree_scores(gqa, tree, prompt_ids(tok, p), weights, fused_attention=False) for p in prompts]
    )
    generic = rank_catalogue(gqa, tok, prompts, sequences=trie.sequences, batch=6, method="generic")
    assert torch.allclose(plain, generic, atol=1e-4) and torch.allclose(fused, plain, atol=1e-4)


def _with_excluded(scores: torch.Tensor, exclude) -> torch.Tensor:
    out = scores.clone()
    for p, cols in enumerate(exclude or []):
        out[p, cols] = -torch.inf
    return out


def test_top_k_ranking_prunes_yet_returns_the_exact_top(setup, monkeypatch):
    """With ``top_k`` (and items excluded per prompt) the tree path forwards only the title prefixes that can
    still reach the top k, yet returns the full ranking's top k: the same items, order and scores."""
    import copy

    from lure.llm import title_tree

    tok, model, trie, prompts = setup
    sharp = copy.deepcopy(model)  # peaked next-token distributions, as after training: pruning bites early
    with torch.no_grad():
        sharp.lm_head.weight.copy_(torch.randn(sharp.lm_head.weight.shape, generator=torch.Generator().manual_seed(0)))
    seqs = [*trie.sequences, trie.sequences[3]]  # a duplicate title, tied with its twin
    rows = len(title_tree.build_title_tree(seqs).tokens)
    forwarded: list[int] = []
    forward = title_tree._TreePass.forward

    def counting(self, r, depth, tau=-float("inf"), defer=False):
        forwarded.append(len(r))
        return forward(self, r, depth, tau, defer)

    monkeypatch.setattr(title_tree._TreePass, "forward", counting)
    for m in (model, sharp):
        full = rank_catalogue(m, tok, prompts, sequences=seqs, method="tree")
        history = [top_items(full, 2)[p].tolist() for p in range(len(prompts))]  # the two favourites, excluded
        for k in (1, 3, 10, len(seqs)):
            for exclude in (None, history):
                ref = _with_excluded(full, exclude)
                forwarded.clear()
                top = rank_catalogue(m, tok, prompts, sequences=seqs, method="tree", top_k=k, exclude=exclude)
                best = top_items(ref, k)
                assert torch.equal(top_items(top, k), best)
                assert torch.allclose(top.gather(1, best), ref.gather(1, best), atol=1e-5)
                assert torch.isfinite(top).sum(1).ge(min(k, len(seqs) - (2 if exclude else 0))).all()
                if k == len(seqs) and exclude is None:
                    assert torch.allclose(top, full, atol=1e-5)
                if m is sharp and k <= 3:
                    assert sum(forwarded) < 0.75 * rows * len(prompts), (k, sum(forwarded), rows)
                generic = rank_catalogue(
                    m, tok, prompts, sequences=seqs, method="generic", batch=5, top_k=k, exclude=exclude
                )
                assert torch.equal(top_items(generic, k), best)
                assert torch.isfinite(generic).sum(1).le(k + 1).all()  # the k best, and a tied twin at most
    # ties at the k-th place are kept: the duplicate and its twin score the same, and both survive
    full = rank_catalogue(sharp, tok, prompts[:1], sequences=seqs)
    k = int((top_items(full, len(seqs))[0] == 3).nonzero()[0, 0]) + 1  # the twins sit at places k and k + 1
    top = rank_catalogue(sharp, tok, prompts[:1], sequences=seqs, top_k=k)
    assert torch.isfinite(top[0, [3, len(seqs) - 1]]).all() and top[0, 3] == top[0, -1]
    assert int(torch.isfinite(top).sum()) == k + 1
    flat = copy.deepcopy(model)  # every next token equally likely: the bound of the lm-head skip is exact here
    with torch.no_grad():
        flat.lm_head.weight.copy_(flat.lm_head.weight[:1].expand_as(flat.lm_head.weight))
    for m in (model, sharp, flat):
        full = rank_catalogue(m, tok, prompts, sequences=seqs, method="tree")
        top = rank_catalogue(m, tok, prompts, sequences=seqs, method="tree", top_k=3)
        assert torch.allclose(top.gather(1, top_items(full, 3)), full.gather(1, top_items(full, 3)), atol=1e-5)
    with pytest.raises(ValueError, match="top_k"):
        rank_catalogue(model, tok, prompts, sequences=seqs, top_k=0)
    with pytest.raises(ValueError, match="exclude"):
        rank_catalogue(model, tok, prompts, sequences=seqs, exclude=[[0]])


def test_lm_head_bound_keeps_every_row_whose_child_reaches_tau(setup, monkeypatch):
    """Rows whose children provably score below tau skip the lm head (log-sum-exp >= mean logit + log V). The
    bound must hold for every row, with tau exactly at the row's best child (rounding included: on a model whose
    next tokens are all equally likely the bound equals the exact score), and must drop the rows it should."""
    import copy

    from lure.llm import title_tree

    tok, model, trie, prompts = setup
    flat, sharp = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        flat.lm_head.weight.copy_(flat.lm_head.weight[:1].expand_as(flat.lm_head.weight))
        sharp.lm_head.weight.copy_(torch.randn(sharp.lm_head.weight.shape, generator=torch.Generator().manual_seed(0)))
    seen: list[tuple] = []
    score_children = title_tree._TreePass._score_children

    def keeping(self, rows, x, tau, defer=False):
        score_children(self, rows, x, tau, defer)
        best = torch.stack(
            [
                self.total[self.t["edge_child"][int(self.t["edge_ptr"][r]) : int(self.t["edge_ptr"][r + 1])]].max()
                for r in rows
            ]
        )
        seen.append((self, rows, x, best))

    monkeypatch.setattr(title_tree._TreePass, "_score_children", keeping)
    tree = title_tree.build_title_tree(trie.sequences)
    for m, name in ((model, "untrained"), (sharp, "sharp"), (flat, "flat")):
        seen.clear()
        with torch.inference_mode():
            title_tree.tree_scores(m, tree, prompt_ids(tok, prompts[0]), title_tree.tree_weights(m))
        dropped = 0
        for run, rows, x, best in seen:
            for tau in best.tolist():
                hopeful = run._hopeful(rows, x, tau)
                assert hopeful[best >= tau].all(), (name, tau)
                dropped += int((~hopeful).sum())
            if m is flat:  # the bound is tight here: it only adds its rounding slack (~1e-3)
                assert not run._hopeful(rows, x, float(best.max()) + 0.01).any()
        assert dropped > 0 or m is flat, name  # (flat: all prefixes of a depth tie, so none is below another)


def test_deferred_lm_heads_still_give_the_exact_top(setup, monkeypatch):
    """Rows with a near-uniform next-token distribution defer their lm head: their children carry the Jensen
    bound instead of an exact score, and only the paths of titles that may reach the top get exact scores. The
    top k must still be the full ranking's, with its scores, whether all, some or none of the rows defer."""
    import copy

    from lure.llm import title_tree

    tok, model, trie, prompts = setup
    seqs = [*trie.sequences, trie.sequences[3]]
    mixed = copy.deepcopy(model)
    with torch.no_grad():
        mixed.lm_head.weight.copy_(
            0.075 * torch.randn(mixed.lm_head.weight.shape, generator=torch.Generator().manual_seed(0))
        )
    gaps: list[torch.Tensor] = []
    heads: list[int] = []
    forwarded: list[int] = []
    tree_pass = title_tree._TreePass
    jensen_gap, head, forward = tree_pass._jensen_gap, tree_pass._head, tree_pass.forward
    monkeypatch.setattr(tree_pass, "_jensen_gap", lambda self, x: gaps.append(jensen_gap(self, x)) or gaps[-1])
    monkeypatch.setattr(
        title_tree._TreePass,
        "_head",
        lambda self, rows, x, edges=None: heads.append(len(rows)) or head(self, rows, x, edges),
    )
    monkeypatch.setattr(
        title_tree._TreePass,
        "forward",
        lambda self, rows, *a, **kw: forwarded.append(len(rows)) or forward(self, rows, *a, **kw),
    )
    rank_catalogue(mixed, tok, prompts, sequences=seqs, top_k=3)
    monkeypatch.setattr(title_tree, "DEFER_GAP", float(torch.cat(gaps).median()))  # about half the rows defer
    deferred: list[torch.Tensor] = []
    for m, share in ((model, "all"), (mixed, "some")):
        full = rank_catalogue(m, tok, prompts, sequences=seqs, method="tree")
        history = [top_items(full, 2)[p].tolist() for p in range(len(prompts))]
        for k in (1, 3, 10):
            for exclude in (None, history):
                gaps.clear(), heads.clear(), forwarded.clear()
                ref = _with_excluded(full, exclude)
                top = rank_catalogue(m, tok, prompts, sequences=seqs, method="tree", top_k=k, exclude=exclude)
                best = top_items(ref, k)
                assert torch.equal(top_items(top, k), best), (share, k)
                assert torch.allclose(top.gather(1, best), ref.gather(1, best), atol=1e-5)
                lazy = torch.cat(gaps) < title_tree.DEFER_GAP
                if share == "all":
                    # only the rows on the paths of the k best titles (and of near misses) run their heads
                    assert lazy.all() and sum(heads) < (0.5 if k == 1 else 1.0) * sum(forwarded), (k, sum(heads))
                else:
                    deferred.append(lazy)
    assert torch.cat(deferred).any() and not torch.cat(deferred).all()  # the mixed model: some rows defer, some not


def test_inexact_scores_bound_the_exact_ones(setup, monkeypatch):
    """After a top-k walk with deferred lm heads, every reached prefix's score is an upper bound of its exact
    score (what pruning relies on), and equals it wherever it is marked exact."""
    from lure.llm import title_tree

    tok, model, trie, prompts = setup
    runs: list = []
    init = title_tree._TreePass.__init__
    monkeypatch.setattr(
        title_tree._TreePass, "__init__", lambda self, *a, **kw: runs.append(self) or init(self, *a, **kw)
    )
    tree = title_tree.build_title_tree(trie.sequences)
    weights = title_tree.tree_weights(model)
    for prompt in prompts:
        ids = prompt_ids(tok, prompt)
        title_tree.tree_scores(model, tree, ids, weights)  # every node, exactly
        title_tree.tree_scores(model, tree, ids, weights, top_k=2)
        full, top = runs[-2], runs[-1]
        reached = top.reached.clone()
        assert not top.exact[reached].all() and top.exact[reached].any()  # some scores stayed bounds
        assert (top.total[reached] >= full.total[reached] - 1e-5).all()
        exact = reached & top.exact
        assert torch.allclose(top.total[exact], full.total[exact], atol=1e-5)
