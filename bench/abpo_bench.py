"""ABPO's costs (issue 17). Run: ``python -m bench.abpo_bench`` (``make bench`` runs it).

On the default world and a tiny Llama of the default size (hidden 128, 2 layers, catalogue BPE; untrained: speed
does not depend on the weights), the same logged batches of ``abpo.batch_size`` training windows, the same
rollouts (one generator seed per step for both methods):

* ``abpo_over_grpo_step_ratio``: the median over batches of ABPO's step time (G rollouts + the anchor, SNIPS,
  self-certainty) over plain GRPO's on the same batch (the same code with the anchor off; the two alternate).
  Goal <= 1.15: the anchor is one more member of the group's single forward pass, and its extras are elementwise.
  Measured 1.108 and 1.147 in two runs on the 2-core machine (GRPO 0.74-0.83 s a step, ABPO 0.83-1.01 s).
* ``abpo_rollouts_per_s``: sampled rollouts per second (ancestral sampling over the title trie, KV cache). Goal
  >= 100, so one round's 128 x 4 rollouts take seconds; measured 128 and 145.
* ``abpo_step_s``: one ABPO step (sampling, forward, backward, AdamW), seconds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

STEPS = 8  # timed batches per method, after one warm-up batch


def bench_abpo() -> dict[str, float]:
    from lure.abpo.catalogue import sample_items
    from lure.abpo.logs import policy_log
    from lure.abpo.serve import Recommender
    from lure.abpo.train import logged_batches
    from lure.abpo.update import method_settings, step_loss
    from lure.data.prepare import prepare
    from lure.layout import Prepared
    from lure.llm.data import load_window_split, title_lookup
    from lure.llm.model import build_tiny_llama, set_torch_threads
    from lure.llm.tokenizer import train_tokenizer
    from lure.spec.abpo import VariantSpec
    from lure.spec.model import Spec

    set_torch_threads()
    spec = Spec()
    cfg = spec.abpo
    assert cfg is not None
    with tempfile.TemporaryDirectory() as tmp:
        prepare(spec.data, spec.seed, Path(tmp) / "prepared")
        prepared = Prepared(Path(tmp) / "prepared")
        titles = title_lookup(prepared.read_items(columns=["item_id", "title"]))
        windows = load_window_split(prepared, "train").iloc[: cfg.batch_size * (STEPS + 1)].reset_index(drop=True)
    tok = train_tokenizer(list(titles.values()), vocab_size=spec.model.tiny.vocab_size)
    t = spec.model.tiny
    model = build_tiny_llama(tok, hidden=t.hidden, layers=t.layers, heads=t.heads, seed=0)
    policy = Recommender.build(model, tok, spec.model.template, titles, spec.model.max_length)
    rng = np.random.default_rng(0)
    log = policy_log(
        1,
        range(len(windows)),
        windows["user_id"],
        windows["history"],
        windows["item_id"].to_numpy(),  # the exposed item: any catalogue item serves for timing
        np.full(len(windows), 0.01),
        rng.integers(0, 2, len(windows)),
        "bench",
    )
    batches = logged_batches(policy, log, cfg.batch_size, np.random.default_rng(0))
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.0)  # lr 0: every step sees the same weights

    settings = {m: method_settings(VariantSpec(method=m), cfg) for m in ("grpo", "abpo")}

    def step_seconds(method: str, batch: object, seed: int) -> float:
        t0 = time.perf_counter()
        loss, _ = step_loss(
            model, None, policy.trie, batch, settings[method], policy.pad_id, torch.Generator().manual_seed(seed)
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return time.perf_counter() - t0

    # the two methods alternate on each batch (same rollouts: same seed, same weights), so drift in the machine's
    # speed hits both; the first batch is a warm-up
    times: dict[str, list[float]] = {"grpo": [], "abpo": []}
    for i, batch in enumerate(batches):
        for method in ("grpo", "abpo") if i % 2 else ("abpo", "grpo"):
            times[method].append(step_seconds(method, batch, i))
    grpo, abpo = times["grpo"][1:], times["abpo"][1:]
    ratios = [a / g for a, g in zip(abpo, grpo, strict=True)]
    prompts = policy.prompts(windows.iloc[: cfg.batch_size])
    model.eval()
    t0 = time.perf_counter()
    for i, p in enumerate(prompts):
        sample_items(model, policy.trie, p, cfg.group_size, cfg.rollout_temperature, torch.Generator().manual_seed(i))
    rollouts_per_s = len(prompts) * cfg.group_size / (time.perf_counter() - t0)
    return {
        "abpo_over_grpo_step_ratio": round(statistics.median(ratios), 3),
        "abpo_step_s": round(statistics.median(abpo), 3),
        "grpo_step_s": round(statistics.median(grpo), 3),
        "abpo_rollouts_per_s": round(rollouts_per_s, 1),
    }


if __name__ == "__main__":
    for key, value in bench_abpo().items():
        print(f"{key}: {value}")
