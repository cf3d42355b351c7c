"""SFT throughput and GDRT's overhead per step: the same batches through TRL's SFTTrainer and through GDRTTrainer.

Run: ``python -m bench.train_bench [steps]``. The paper claims GDRT has SFT's complexity (one forward pass, a
per-token reweighting); the goal is ``gdrt_over_sft_step_ratio`` <= 1.10. Step times are medians over ``steps``
optimizer steps after two warm-up steps, measured by a callback (data loading included, logging excluded).
On a GPU machine the same script records ``sft_tokens_per_s`` there.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

import numpy as np

WARMUP_STEPS = 5  # dropped: the first steps of a process pay allocator / kernel start-up (seconds each on a GPU)


def sync() -> None:
    """Wait for queued GPU work, so a wall-clock interval covers the step's kernels (no-op on the CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_timer() -> Any:
    """A callback recording each optimizer step's wall time (GPU synchronised) and what the Trainer ran with."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.info: dict[str, Any] = {}

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            params = list(model.parameters()) if model is not None else []
            trainable = [p for p in params if p.requires_grad]
            frozen = [p for p in params if not p.requires_grad]
            self.info = {
                "args_bf16": bool(args.bf16),
                "args_fp16": bool(args.fp16),
                "args_device": str(args.device),
                "args_world_size": int(args.world_size),
                "args_parallel_mode": str(args.parallel_mode),
                "frozen_param_dtype": str(frozen[0].dtype) if frozen else None,
                "trainable_param_dtype": str(trainable[0].dtype) if trainable else None,
                "model_class": type(model).__name__ if model is not None else None,
            }

        def on_step_begin(self, args, state, control, **kwargs):
            sync()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            self.times.append(time.perf_counter() - self.t0)

    return StepTimer()


def attach_random_token_groups(rows: list[dict[str, Any]], rng: np.random.Generator, n_groups: int = 5) -> None:
    """Seeded random GDRT token groups on SFT rows: step cost does not depend on how tokens are grouped."""
    from lure.train import token_groups_column

    for r in rows:
        r["token_groups"] = token_groups_column(
            r["labels"], rng.integers(0, n_groups, sum(x != -100 for x in r["labels"]))
        )


def _step_times(trainer: Any) -> list[float]:
    from transformers import PrinterCallback

    timer = step_timer()
    trainer.add_callback(timer)
    trainer.remove_callback(PrinterCallback)  # keeps stdout pure JSON (the printer echoes train_runtime dicts)
    trainer.train()
    return timer.times[WARMUP_STEPS:]


def bench_train(steps: int = 20, batch: int = 32, seed: int = 0) -> dict[str, float]:
    import pandas as pd
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    from bench.llm_bench import synthetic_titles
    from lure.llm.data import sft_examples
    from lure.llm.model import build_tiny_llama, set_torch_threads
    from lure.llm.tokenizer import train_tokenizer
    from lure.spec.train import TrainSpec
    from lure.train import GDRTTrainer
    from lure.train.finetune import sft_config

    threads = set_torch_threads()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    titles = dict(enumerate(synthetic_titles(800, seed)))
    rng = np.random.default_rng(seed)
    n = batch * (steps + WARMUP_STEPS)
    windows = pd.DataFrame(
        {
            "user_id": np.arange(n),
            "history": [rng.choice(800, 10, replace=False) for _ in range(n)],
            "item_id": rng.integers(0, 800, n),
        }
    )
    tok = train_tokenizer(list(titles.values()), [[titles[i] for i in h] for h in windows["history"][:300]])
    rows = sft_examples(windows, titles, tok)
    attach_random_token_groups(rows, rng)  # the grouping itself is outside the training step
    tokens = float(np.mean([len(r["input_ids"]) for r in rows]) * batch)
    train = TrainSpec(
        batch_size=batch,
        epochs=1,
        max_samples=None,
        checkpoint_steps=10**6,
        warmup=0.0,
        scheduler="constant",
        learning_rate=1e-3,
    )
    out: dict[str, float] = {}
    medians = {}
    # a throwaway SFT run first, so neither measured trainer pays the process's one-off start-up (on a GPU the
    # first trainer of a process was 2-4x slower over 20 steps, which made the ratio meaningless)
    for name in ("warmup", "sft", "gdrt"):
        model = build_tiny_llama(tok, seed=seed).to(device)
        used = rows[: batch * (WARMUP_STEPS + 2)] if name == "warmup" else rows
        data = Dataset.from_list([{k: v for k, v in r.items() if name == "gdrt" or k != "token_groups"} for r in used])
        args = sft_config(train, "/tmp/lure-train-bench", seed, len(data))
        args.save_strategy = "no"
        args.logging_steps = 10**6
        args.disable_tqdm = True
        if name in ("warmup", "sft"):
            trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
        else:
            trainer = GDRTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, n_groups=5, tau=0.5)
        medians[name] = statistics.median(_step_times(trainer))
        if name != "warmup":
            out[f"{name}_step_s"] = round(medians[name], 4)
    out["gdrt_over_sft_step_ratio"] = round(medians["gdrt"] / medians["sft"], 3)
    out["sft_tokens_per_s"] = round(tokens / medians["sft"], 1)
    out["train_bench_batch_tokens"] = round(tokens, 1)
    out["train_bench_threads"] = float(threads)
    out["train_bench_device"] = device
    return out


if __name__ == "__main__":
    print(json.dumps(bench_train(*[int(a) for a in sys.argv[1:]]), indent=2))
