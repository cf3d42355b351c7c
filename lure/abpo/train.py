"""One round's update: the policy learns from one bandit log, batch by batch, through
:func:`lure.abpo.update.step_loss` (every compared method is the same loop; only the settings differ)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from lure.abpo.serve import Recommender
from lure.abpo.update import LoggedBatch, UpdateSettings, step_loss

#: Gradient-norm clip of every update step (the usual 1.0 of GRPO/PPO implementations, TRL's max_grad_norm).
MAX_GRAD_NORM = 1.0


def logged_batches(
    policy: Recommender, log: pd.DataFrame, batch_size: int, rng: np.random.Generator
) -> list[LoggedBatch]:
    """The log's rows in a seeded random order, cut into batches of prompts, anchors, log mu and rewards."""
    prompts = policy.prompts(log)
    anchors = policy.completions(log["action"].to_numpy())
    order = rng.permutation(len(log))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batches.append(
            LoggedBatch(
                prompts=[prompts[i] for i in rows],
                anchors=[anchors[i] for i in rows],
                actions=torch.as_tensor(log["action"].to_numpy()[rows], dtype=torch.long),
                log_mu=torch.log(torch.as_tensor(log["mu"].to_numpy()[rows], dtype=torch.float32)),
                rewards=torch.as_tensor(log["reward"].to_numpy()[rows], dtype=torch.long),
            )
        )
    return batches


def update_on_log(
    policy: Recommender,
    reference: Any | None,
    log: pd.DataFrame,
    settings: UpdateSettings,
    batch_size: int,
    epochs: int,
    learning_rate: float,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> dict[str, float]:
    """Update ``policy.model`` in place on ``log`` (AdamW at a constant rate, ``epochs`` passes); the mean of each
    step's statistics, the steps and the seconds they took."""
    model = policy.model
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    model.train()
    seen: list[dict[str, float]] = []
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in logged_batches(policy, log, batch_size, rng):
            loss, stats = step_loss(model, reference, policy.trie, batch, settings, policy.pad_id, generator)
            optimiser.zero_grad()
            if loss.requires_grad:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
                optimiser.step()
            seen.append(stats)
    seconds = time.perf_counter() - start
    model.eval()
    keys = sorted({k for s in seen for k in s})
    out = {k: float(np.mean([s[k] for s in seen if k in s])) for k in keys}
    return out | {"steps": float(len(seen)), "update_seconds": seconds}
