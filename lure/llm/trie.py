"""Token trie over the catalogue: which tokens may follow a partial title, and which items a full path names.

Each item is the token sequence :func:`lure.llm.prompts.encode_completion` gives (the title as it appears after
the response prefix, the template's closing terminator, then the tokenizer's EOS), so a path from the root ends
exactly when an item is complete and no item's sequence is a strict prefix of another's. Items with identical
titles share a leaf (``items`` of that leaf lists them all): the model cannot tell them apart.

A node below which no item remains is a *dead* prefix; catalogue tries have none, but restricted tries
(:meth:`TokenTrie.without`, e.g. seen items excluded) do, and constrained decoding drops a beam the moment it
would enter one, so no beam slot is wasted on a continuation that cannot name an item.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from lure.llm.prompts import PromptTemplate, encode_completion


class TokenTrie:
    """Trie with per-node tensors of allowed next tokens and the matching child nodes (for vectorised masking)."""

    ROOT = 0

    def __init__(self, sequences: Sequence[Sequence[int]], items: Sequence[int] | None = None) -> None:
        self.children: list[dict[int, int]] = [{}]
        self.items: list[list[int]] = [[]]
        self.depth: list[int] = [0]
        self.sequences = [list(map(int, s)) for s in sequences]
        item_ids = list(range(len(sequences))) if items is None else list(map(int, items))
        for seq, item in zip(self.sequences, item_ids, strict=True):
            if not seq:
                raise ValueError("an item's token sequence is empty")
            node = self.ROOT
            for tok in seq:
                nxt = self.children[node].get(tok)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][tok] = nxt
                    self.children.append({})
                    self.items.append([])
                    self.depth.append(self.depth[node] + 1)
                node = nxt
            self.items[node].append(item)
        for node, its in enumerate(self.items):
            if its and self.children[node]:
                raise ValueError("an item's sequence is a prefix of another's: sequences need a terminator")
        self._finalize()

    def _finalize(self) -> None:
        self.allowed_tokens = [torch.tensor(sorted(c), dtype=torch.long) for c in self.children]
        self.allowed_children = [torch.tensor([c[t] for t in sorted(c)], dtype=torch.long) for c in self.children]
        self.is_leaf = torch.tensor([bool(i) for i in self.items])
        # Dead: no item at or below the node. Children always have larger ids than their parent, so one reverse
        # sweep settles it bottom-up.
        alive = [bool(i) for i in self.items]
        for node in range(len(self.children) - 1, -1, -1):
            alive[node] = alive[node] or any(alive[c] for c in self.children[node].values())
        self.is_dead = torch.tensor([not a for a in alive])
        self.max_depth = max(self.depth)

    @classmethod
    def from_titles(
        cls,
        tokenizer: Any,
        titles: Sequence[str],
        template: PromptTemplate | str | None = None,
        items: Sequence[int] | None = None,
    ) -> TokenTrie:
        """Trie of the catalogue titles (``items[k]`` names title ``k``; default its position)."""
        return cls([encode_completion(tokenizer, t, template) for t in titles], items)

    def __len__(self) -> int:
        return len(self.children)

    def step(self, node: int, token: int) -> int | None:
        """Child of ``node`` along ``token``, or None when the token leaves the catalogue."""
        return self.children[node].get(int(token))

    def walk(self, tokens: Sequence[int]) -> int | None:
        """Node reached by ``tokens`` from the root, or None when they leave the trie."""
        node: int | None = self.ROOT
        for tok in tokens:
            node = self.step(node, tok)
            if node is None:
                return None
        return node

    def allowed(self, tokens: Sequence[int]) -> list[int]:
        """Tokens allowed after the prefix ``tokens`` (the ``prefix_allowed_tokens_fn`` contract)."""
        node = self.walk(tokens)
        return [] if node is None else self.allowed_tokens[node].tolist()

    def without(self, items: Sequence[int]) -> TokenTrie:
        """A copy in which ``items`` name no leaf (e.g. the user's history, when seen items are excluded).

        Paths are kept but a prefix leading only to removed items becomes dead, and beam search drops beams that
        would enter it; exact ranking is unaffected (mask those columns of its scores instead).
        """
        drop = set(map(int, items))
        out = copy.copy(self)
        out.items = [[i for i in its if i not in drop] for its in self.items]
        out._finalize()
        return out
