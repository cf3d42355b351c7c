"""SASRec (Kang & McAuley 2018, "Self-Attentive Sequential Recommendation") in compact PyTorch, on the CPU.

Architecture (as in the paper and its reference code)
    e_t   = sqrt(d) · E[s_t] + P[t]          item embedding (shared with the output layer) + learned position
    x     = dropout(e) · 1[s_t ≠ pad]
    block = x + dropout(MHA(LN(x)))  ->  x + dropout(FFN(LN(x)))      (pre-LN, causal, ``layers`` times)
    h     = LN(x)                              hidden state of every position
    s(u, i) = h_last(u) · E[i]                score of item i after user u's sequence

Sequences are the user's training items in canonical order (the order of ``train`` within a user: by time,
ties already broken by the canonical sort), truncated to the last ``max_len`` and left-padded, so the most
recent item always sits at position ``max_len - 1``. Attention is causal and never attends to padding
(a padded query attends only to itself, to avoid empty rows; its output is masked away).

Training objective: **full softmax cross-entropy** over the whole catalogue at every non-padded position
(predict s_{t+1} from s_1..s_t, for each user's last ``max_len + 1`` training items), not the paper's binary
cross-entropy with one sampled negative. With catalogues of 10^3–10^4 items the full softmax is cheap on
the CPU, needs no negative sampling and is known to train SASRec better (Petrov & Macdonald, RecSys 2023).
Optimiser: Adam (betas 0.9, 0.98) at ``learning_rate``, mini-batches of users shuffled each epoch.

Scoring: after training, every user's FULL training sequence (its last ``max_len`` items) is encoded once
in eval mode and the last position's hidden state is stored; ``score`` is then an einsum of those vectors
with the item embeddings, so scores do not depend on the batch of users asked for. A user with no training
item gets the zero vector (all scores 0).

Determinism: ``fit`` runs inside ``torch.random.fork_rng`` seeded with ``seed`` (dropout), shuffles with its
own ``torch.Generator``, and turns on ``torch.use_deterministic_algorithms`` for its duration (the global
settings, the global RNG and the torch thread count are restored afterwards). With the same seed and
thread count the scores are bit-identical.

Measured fit times (this dev box's shared AMD EPYC CPU, other jobs running, so upper bounds; defaults:
hidden 64, 2 layers, 1 head, max_len 50, 20 epochs, batch 128, lr 0.005):
    default world (1,000 users x 800 items, ~33k training interactions), 1 thread:   ~21 s (~1.1 s/epoch)
    ML-1M-sized (6,040 users x 3,706 items, 1.0M interactions, synthetic), 2 threads: ~78 s per epoch, so
        20 epochs take ~25 min here -- NOT a few minutes; the full softmax over 3.7k items at every one of
        ~300k positions an epoch dominates. For such data lower ``epochs`` or use a GPU.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn


class _Block(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1 = nn.LayerNorm(hidden, eps=1e-8)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-8)
        self.ff1 = nn.Linear(hidden, hidden)
        self.ff2 = nn.Linear(hidden, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ff2(self.drop(F.relu(self.ff1(self.ln2(x))))))


class _SASRecNet(nn.Module):
    def __init__(self, n_items: int, hidden: int, layers: int, heads: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.item = nn.Embedding(n_items + 1, hidden, padding_idx=0)  # id 0 = padding, item i -> i + 1
        self.pos = nn.Embedding(max_len, hidden)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(hidden, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(hidden, eps=1e-8)
        nn.init.normal_(self.item.weight, std=1.0 / math.sqrt(hidden))
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states (batch x max_len x hidden) of left-padded sequences of shifted item ids."""
        t = seq.shape[1]
        real = seq > 0
        x = self.item(seq) * math.sqrt(self.hidden) + self.pos.weight[-t:][None]
        x = self.drop(x) * real[..., None]
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        # query i may attend key j <= i that is a real item; every query may attend itself (no empty rows)
        mask = (causal[None] & real[:, None, :]) | torch.eye(t, dtype=torch.bool)[None]
        mask = mask[:, None]  # broadcast over heads
        for block in self.blocks:
            x = block(x, mask) * real[..., None]
        return self.ln(x)


@contextlib.contextmanager
def _torch_settings(threads: int, seed: int):
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(old_det)
            torch.set_num_threads(old_threads)


def last_items(train: pd.DataFrame, n_users: int, width: int) -> np.ndarray:
    """int64 (n_users x width): each user's last ``width`` training items in order, as item id + 1, left-padded
    with 0. Within a user the order of ``train`` is kept (canonical order: by time)."""
    users = train["user_id"].to_numpy(dtype=np.int64)
    items = train["item_id"].to_numpy(dtype=np.int64)
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    counts = np.bincount(users, minlength=n_users)
    ends = np.cumsum(counts)
    from_end = ends[users] - 1 - np.arange(len(users))  # 0 for each user's last item
    keep = from_end < width
    out = np.zeros((n_users, width), np.int64)
    out[users[keep], width - 1 - from_end[keep]] = items[keep] + 1
    return out


class SASRecRecommender:
    """Self-attentive sequential recommender; see the module docstring for the model, loss and timings."""

    n_users: int = 0
    n_items: int = 0

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 1,
        max_len: int = 50,
        dropout: float = 0.2,
        epochs: int = 20,
        batch_size: int = 128,
        learning_rate: float = 5e-3,
        threads: int = 1,
    ) -> None:
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.hidden, self.layers, self.heads, self.max_len = hidden, layers, heads, max_len
        self.dropout, self.epochs, self.batch_size = dropout, epochs, batch_size
        self.learning_rate, self.threads = learning_rate, threads

    def fit(self, train: pd.DataFrame, n_users: int, n_items: int, seed: int) -> SASRecRecommender:
        users = train["user_id"].to_numpy(dtype=np.int64)
        items = train["item_id"].to_numpy(dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"ids out of range: users must be in [0, {n_users}), items in [0, {n_items})")
        self.n_users, self.n_items = n_users, n_items
        full = last_items(train, n_users, self.max_len + 1)
        with _torch_settings(self.threads, seed):
            net = _SASRecNet(n_items, self.hidden, self.layers, self.heads, self.max_len, self.dropout)
            self.loss_history = self._train(net, full, seed)
            net.eval()
            self.net = net
            seqs = torch.from_numpy(full[:, 1:])  # the last max_len items of the full training sequence
            vecs = []
            with torch.no_grad():
                for start in range(0, n_users, 1024):
                    vecs.append(net(seqs[start : start + 1024])[:, -1])
                user_vecs = torch.cat(vecs) if vecs else torch.zeros(0, self.hidden)
                user_vecs[seqs[:, -1] == 0] = 0.0  # no training item: zero vector
                self.user_vecs = np.ascontiguousarray(user_vecs.numpy(), dtype=np.float32)
                self.item_vecs = np.ascontiguousarray(net.item.weight[1:].numpy(), dtype=np.float32)
        return self

    def _train(self, net: _SASRecNet, full: np.ndarray, seed: int) -> list[float]:
        trainable = (full[:, -2] > 0) & (full[:, -1] > 0)  # at least two training items
        data = torch.from_numpy(full[trainable])
        if not len(data):
            return []
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, betas=(0.9, 0.98))
        history = []
        net.train()
        for _ in range(self.epochs):
            perm = torch.randperm(len(data), generator=gen)
            total, count = 0.0, 0
            for start in range(0, len(data), self.batch_size):
                batch = data[perm[start : start + self.batch_size]]
                first = int((batch[:, :-1] > 0).any(0).nonzero()[0])  # drop all-padding leading columns
                inp, tgt = batch[:, first:-1], batch[:, first + 1 :]
                valid = (inp > 0) & (tgt > 0)
                h = net(inp)[valid]  # (positions x hidden): only real (input, next item) pairs
                logits = h @ net.item.weight[1:].T
                loss = F.cross_entropy(logits, tgt[valid] - 1)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * int(valid.sum())
                count += int(valid.sum())
            history.append(total / max(count, 1))
        return history

    def score_histories(self, histories: list[np.ndarray] | list[list[int]]) -> np.ndarray:
        """float32 (len(histories) x n_items) for arbitrary item sequences (oldest first), e.g. the history of a
        sliding window whose items extend past the training data: last hidden state · item embedding."""
        if not self.n_items:
            raise RuntimeError("SASRecRecommender is not fitted")
        seqs = np.zeros((len(histories), self.max_len), np.int64)
        for n, h in enumerate(histories):
            h = np.asarray(h, dtype=np.int64)[-self.max_len :]
            if h.size and (h.min() < 0 or h.max() >= self.n_items):
                raise ValueError(f"item ids must be in [0, {self.n_items})")
            if h.size:
                seqs[n, self.max_len - h.size :] = h + 1
        with _torch_settings(self.threads, 0), torch.no_grad():
            vecs = torch.cat([self.net(torch.from_numpy(seqs[s : s + 1024]))[:, -1] for s in range(0, len(seqs), 1024)])
            vecs[torch.from_numpy(seqs[:, -1] == 0)] = 0.0
        return np.einsum("uf,if->ui", vecs.numpy().astype(np.float32), self.item_vecs)

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        """float32 (len(user_ids) x n_items): last hidden state of the user's training sequence · item embedding."""
        if not self.n_items:
            raise RuntimeError("SASRecRecommender is not fitted")
        users = np.asarray(user_ids, dtype=np.int64)
        if users.size and (users.min() < 0 or users.max() >= self.n_users):
            raise ValueError(f"user ids must be in [0, {self.n_users})")
        return np.einsum("uf,if->ui", self.user_vecs[users], self.item_vecs)
