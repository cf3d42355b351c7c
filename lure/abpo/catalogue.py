"""An LLM recommender as a distribution over the catalogue: trie-constrained decoding with the next-token
distribution renormalised over the allowed children at every step (docs/abpo.md).

Why renormalised: ABPO's importance ratio rho = pi_theta(a|x) / mu(a|x) needs pi_theta and mu normalised over the same
action set, the catalogue. A title's raw sequence probability is not (the model also gives mass to texts that name no
item); with the distribution renormalised over the trie's children at each step, the title probabilities sum to one
over the trie's leaves, and one teacher-forced forward pass gives a title's probability. Items with identical titles
share a leaf (``TokenTrie``): they are one action, and a sample names the leaf's first item.

The same function gives the logging policy's mu (at its temperature), the rollouts' pi_old and pi_theta, so every
probability ABPO compares comes from one definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lure.llm.trie import TokenTrie


def trie_nodes(trie: TokenTrie, completions: Sequence[Sequence[int]]) -> list[list[int]]:
    """For each completion, the trie node before each of its tokens (the root first); an error off the trie."""
    out = []
    for tokens in completions:
        node: int | None = trie.ROOT
        path = []
        for tok in tokens:
            path.append(node)
            node = trie.step(node, tok)
            if node is None:
                raise ValueError(f"completion {list(tokens)} leaves the catalogue trie")
        out.append(path)
    return out


def allowed_mask(trie: TokenTrie, nodes: Sequence[Sequence[int]], length: int, vocab: int) -> torch.Tensor:
    """(completions, length, vocab) booleans: the tokens allowed after each position's node (False at padding)."""
    mask = torch.zeros(len(nodes), length, vocab, dtype=torch.bool)
    for s, path in enumerate(nodes):
        for t, node in enumerate(path):
            mask[s, t, trie.allowed_tokens[node]] = True
    return mask


def renormalised_token_logprobs(
    logits: torch.Tensor, tokens: torch.Tensor, allowed: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """log p(token | node) = z_tok / T - logsumexp over the allowed tokens of z / T, per position.

    ``logits``: (completions, length, vocab), the logits that predict each completion token; ``tokens``:
    (completions, length); ``allowed``: :func:`allowed_mask`. Padding positions (no allowed token) give 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = logits.float() / temperature
    masked = z.masked_fill(~allowed, float("-inf"))
    norm = torch.logsumexp(masked, dim=-1)
    picked = z.gather(-1, tokens.clamp(min=0)[..., None]).squeeze(-1)
    live = allowed.any(dim=-1)
    return torch.where(live, picked - torch.where(live, norm, torch.zeros_like(norm)), torch.zeros_like(picked))


@dataclass(frozen=True)
class Completions:
    """Padded completions after their prompts: tokens and the positions whose logits predict them."""

    input_ids: torch.Tensor  # (n, prompt + completion), right-padded
    attention_mask: torch.Tensor
    targets: torch.Tensor  # (n, longest completion), -1 at padding
    positions: torch.Tensor  # (n, longest completion): index into the sequence of the logits predicting each target


def pack(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int) -> Completions:
    """Prompt + completion per row, right-padded (the prompts may differ in length)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    rows = [list(p) + list(c) for p, c in zip(prompts, completions, strict=True)]
    width = max(len(r) for r in rows)
    longest = max(len(c) for c in completions)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), longest), -1, dtype=torch.long)
    positions = torch.zeros((len(rows), longest), dtype=torch.long)
    for n, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        input_ids[n, : len(p) + len(c)] = torch.tensor(list(p) + list(c))
        attention[n, : len(p) + len(c)] = 1
        targets[n, : len(c)] = torch.tensor(list(c))
        positions[n, : len(c)] = torch.arange(len(p) - 1, len(p) + len(c) - 1)
    return Completions(input_ids, attention, targets, positions)


def completion_logits(model: Any, packed: Completions) -> torch.Tensor:
    """(n, longest completion, vocab): the logits predicting each completion token (one forward pass)."""
    out = model(input_ids=packed.input_ids, attention_mask=packed.attention_mask)
    index = packed.positions[..., None].expand(-1, -1, out.logits.shape[-1])
    return out.logits.gather(1, index)


def catalogue_logprobs(
    model: Any,
    trie: TokenTrie,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    pad_id: int,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per completion: its token log-probabilities under the renormalised trie distribution (n, longest; 0 at
    padding), the completion mask, and the logits (for self-certainty). Summing the first over tokens gives
    log pi(a|x). Differentiable in the model's parameters."""
    packed = pack(prompts, completions, pad_id)
    logits = completion_logits(model, packed)
    nodes = trie_nodes(trie, completions)
    allowed = allowed_mask(trie, nodes, packed.targets.shape[1], logits.shape[-1])
    mask = packed.targets >= 0
    token_logp = renormalised_token_logprobs(logits, packed.targets, allowed, temperature) * mask
    return token_logp, mask, logits


@torch.no_grad()
def sample_items(
    model: Any,
    trie: TokenTrie,
    prompt: Sequence[int],
    n: int,
    temperature: float,
    generator: torch.Generator,
) -> tuple[list[list[int]], list[int]]:
    """``n`` titles drawn for one prompt from the renormalised trie distribution at ``temperature`` (ancestral
    sampling, one forward pass per depth with the prompt's KV cache shared): their token sequences and items."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    ids = torch.tensor([list(prompt)] * n, dtype=torch.long)
    out = model(input_ids=ids, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1, :]
    nodes = [trie.ROOT] * n
    tokens: list[list[int]] = [[] for _ in range(n)]
    done = [False] * n
    while not all(done):
        allowed = torch.zeros_like(logits, dtype=torch.bool)
        for s, node in enumerate(nodes):
            if not done[s]:
                allowed[s, trie.allowed_tokens[node]] = True
            else:
                allowed[s, 0] = True  # finished rows keep stepping with a placeholder, ignored
        z = (logits.float() / temperature).masked_fill(~allowed, float("-inf"))
        picked = torch.multinomial(torch.softmax(z, dim=-1), 1, generator=generator).squeeze(1)
        for s in range(n):
            if done[s]:
                continue
            tok = int(picked[s])
            tokens[s].append(tok)
            nodes[s] = trie.children[nodes[s]][tok]
            done[s] = not trie.children[nodes[s]]
        out = model(input_ids=picked[:, None], past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1, :]
    return tokens, [trie.items[node][0] for node in nodes]
