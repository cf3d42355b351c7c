"""The project's GPU path end to end on a model of Llama-3.2-3B's size: LoRA SFT and GDRT through ``accelerate
launch``, LoRA merge, exact ranking and constrained beam search, with throughput, step times and peak GPU memory.

Why: the CPU pipeline only ever runs the tiny Llama, so nothing else shows that the code path the GPU specs
(``specs/gdrt-*.yaml``: ``model.init: pretrained``, bf16, LoRA r=8 on q/k/v/o) rely on works on CUDA, nor what it
costs. Weights of meta-llama/Llama-3.2-3B cannot be downloaded here, so the model has its *architecture* (a
``LlamaConfig`` with hidden 3072, 28 layers, 24 heads, 8 KV heads, intermediate 8192, vocabulary 128,256, llama3
RoPE with theta 500,000, tied embeddings), random weights in bf16, saved with ``save_pretrained`` to a local folder.
The tokenizer is the project's catalogue BPE (``lure.llm.tokenizer.train_tokenizer``; its ids are < 128,256, so
most of the embedding rows are simply never used): sequence lengths are therefore those of the tiny pipeline, not
of Llama 3's own tokenizer. Random weights: the numbers are about speed, memory and the code path, never accuracy.

Everything below goes through the project's own functions: ``build_base`` / ``load_base`` with a ``ModelSpec``,
``sft_examples`` rows, ``fine_tune`` (TRL ``SFTTrainer``, then ``GDRTTrainer`` with seeded random token groups
attached as in ``bench/train_bench.py``), ``load_trained`` (merges the LoRA adapters), ``rank_catalogue`` and
``constrained_beam_search`` over ``bench.llm_bench.synthetic_titles``.

Run (one GPU)::

    accelerate launch --config_file accelerate/multi_gpu.yaml --num_processes 1 -m bench.gpu_bench --out gpu.json

``--tiny`` shrinks the model (2 layers, hidden 64) and the work so the script can be smoke-tested on a CPU; without
it the script refuses to run when no CUDA device is present.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.train_bench import attach_random_token_groups, step_timer, sync

LLAMA_3_2_3B = {  # config.json of meta-llama/Llama-3.2-3B (architecture only)
    "vocab_size": 128256,
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 28,
    "num_attention_heads": 24,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
    },
    "tie_word_embeddings": True,
    "hidden_act": "silu",
}
TINY = {
    **LLAMA_3_2_3B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}


def _gib(n: int) -> float:
    return round(n / 2**30, 2)


def _accelerate_info() -> dict[str, Any]:
    from accelerate import PartialState

    st = PartialState()
    return {
        "distributed_type": str(st.distributed_type),
        "num_processes": int(st.num_processes),
        "process_index": int(st.process_index),
        "device": str(st.device),
        "backend": st.backend,
        "env_WORLD_SIZE": os.environ.get("WORLD_SIZE"),
        "env_LOCAL_RANK": os.environ.get("LOCAL_RANK"),
        "env_ACCELERATE_MIXED_PRECISION": os.environ.get("ACCELERATE_MIXED_PRECISION"),
        "launched_by_accelerate": any(k.startswith("ACCELERATE_") for k in os.environ),
    }


def _build_model_folder(folder: Path, config_kwargs: dict[str, Any], tokenizer: Any, seed: int) -> dict[str, Any]:
    """Random-init a bf16 Llama with ``config_kwargs`` directly on the device and save it with ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **config_kwargs,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    with torch.device(dev):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    seconds = time.perf_counter() - t0
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    return {"model_parameters": int(n_params), "model_folder_gib": _gib(size), "build_and_save_s": round(seconds, 1)}


def _train(
    method: str,
    base_dir: Path,
    spec: Any,
    train: Any,
    rows: list[dict[str, Any]],
    work: Path,
    warmup: int,
    seed: int,
    n_groups: int,
) -> dict[str, Any]:
    import torch
    from datasets import Dataset

    from lure.llm.base import load_base
    from lure.llm.model import trainable_parameters
    from lure.train.finetune import fine_tune

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model, tokenizer = load_base(base_dir, spec, trainable=True)
    load_s = time.perf_counter() - t0
    trainable, total = trainable_parameters(model)
    timer = step_timer()
    kwargs: dict[str, Any] = {}
    if method == "gdrt":
        from lure.train import GDRTTrainer

        kwargs = {"trainer_cls": GDRTTrainer, "n_groups": n_groups, "tau": 0.5}
    else:
        rows = [{k: v for k, v in r.items() if k != "token_groups"} for r in rows]
    dataset = Dataset.from_list(rows)
    out_dir = work / f"model-{method}"
    result = fine_tune(
        model, tokenizer, dataset, train, seed, out_dir, work / f"ckpt-{method}", callbacks=[timer], **kwargs
    )
    from accelerate.state import AcceleratorState

    mp = str(AcceleratorState().mixed_precision)
    measured = timer.times[warmup:]
    step = statistics.median(measured)
    tokens_per_row = float(np.mean([len(r["input_ids"]) for r in rows]))
    out = {
        f"{method}_step_s": round(step, 4),
        f"{method}_step_s_mean": round(float(np.mean(measured)), 4),
        f"{method}_step_s_min": round(min(measured), 4),
        f"{method}_steps_measured": len(measured),
        f"{method}_tokens_per_s": round(tokens_per_row * train.batch_size / step, 1),
        f"{method}_fine_tune_tokens_per_s": result["metrics"]["tokens_per_s"],  # whole run, warm-up steps included
        f"{method}_final_loss": result["metrics"]["final_loss"],
        f"{method}_train_seconds": result["metrics"]["train_seconds"],
        f"{method}_trainer_device": result["metrics"]["device"],
        f"{method}_load_base_s": round(load_s, 1),
        f"{method}_trainable_parameters": int(trainable),
        f"{method}_total_parameters": int(total),
        f"{method}_accelerator_mixed_precision": mp,
        **{f"{method}_{k}": v for k, v in timer.info.items()},
    }
    if cuda:
        out[f"{method}_peak_gpu_memory_gib"] = _gib(torch.cuda.max_memory_allocated())
        out[f"{method}_peak_gpu_reserved_gib"] = _gib(torch.cuda.max_memory_reserved())
    del model, tokenizer, result, dataset
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return out


def _evaluate(
    base_dir: Path, spec: Any, adapters: Path, titles: list[str], n_users: int, beam: int, batch: int, seed: int
) -> dict[str, Any]:
    import torch

    from lure.llm.base import load_trained
    from lure.llm.generate import constrained_beam_search, rank_catalogue
    from lure.llm.prompts import render_prompt
    from lure.llm.trie import TokenTrie

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model, tok = load_trained(adapters, base_dir, spec)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1)
    histories = [[titles[i] for i in rng.choice(len(titles), 10, replace=False)] for _ in range(n_users + 1)]
    prompts = [render_prompt(h) for h in histories]
    trie = TokenTrie.from_titles(tok, titles)
    from lure.llm.title_tree import tree_supported  # which exact-ranking path applies to the merged model

    tree = tree_supported(model)
    rank_catalogue(model, tok, prompts[:1], sequences=trie.sequences, batch=batch)  # warm-up
    constrained_beam_search(model, tok, prompts[:1], trie, beam=beam)
    users = prompts[1:]
    sync()
    t0 = time.perf_counter()
    scores = rank_catalogue(model, tok, users, sequences=trie.sequences, batch=batch)
    rank_s = (time.perf_counter() - t0) / len(users)
    few = users[: min(2, len(users))]
    sync()
    t0 = time.perf_counter()
    generic = rank_catalogue(model, tok, few, sequences=trie.sequences, batch=batch, method="generic")
    generic_s = (time.perf_counter() - t0) / len(few)
    sync()
    t0 = time.perf_counter()
    found = constrained_beam_search(model, tok, users, trie, beam=beam)
    beam_s = (time.perf_counter() - t0) / len(users)
    # consistency on the GPU: the beam's sequence scores are the exact scores of the same items, and the beam's
    # top-k overlaps the exact top-k (not guaranteed: beam search is approximate)
    beam_vs_exact = max(
        abs(s - float(scores[u, i])) for u, r in enumerate(found) for i, s in zip(r.items, r.scores, strict=True)
    )
    exact_top = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :beam]
    overlap = float(np.mean([len(set(r.items) & set(exact_top[u].tolist())) / beam for u, r in enumerate(found)]))
    out = {
        "eval_items": len(titles),
        "eval_users": len(users),
        "eval_model_class": type(model).__name__,
        "eval_model_dtype": str(next(model.parameters()).dtype),
        "eval_load_trained_s": round(load_s, 1),
        "eval_exact_path": "tree" if tree else "generic",
        "rank_s_per_user": round(rank_s, 4),
        "rank_generic_s_per_user": round(generic_s, 4),
        "beam_s_per_user": round(beam_s, 4),
        "beam": beam,
        "rank_batch": batch,
        "tree_vs_generic_max_abs_diff": round(float((generic - scores[: len(few)]).abs().max()), 4),
        "score_magnitude_mean": round(float(scores.abs().mean()), 2),
        "beam_vs_exact_score_max_abs_diff": round(beam_vs_exact, 4),
        "beam_topk_overlap_with_exact": round(overlap, 3),
        "title_tokens_mean": round(float(np.mean([len(s) for s in trie.sequences])), 2),
        "trie_nodes": len(trie),
        "scores_finite": bool(torch.isfinite(scores).all()),
    }
    if cuda:
        out["eval_peak_gpu_memory_gib"] = _gib(torch.cuda.max_memory_allocated())
    del model, scores, generic
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    p.add_argument("--tiny", action="store_true", help="CPU smoke test: 2-layer hidden-64 model, a few steps")
    p.add_argument("--steps", type=int, default=None, help="measured optimizer steps per method (default 20)")
    p.add_argument("--warmup", type=int, default=None, help="unmeasured first steps (default 2)")
    p.add_argument("--batch", type=int, default=None, help="rows per step (default 8)")
    p.add_argument("--items", type=int, default=None, help="catalogue titles for evaluation (default 2000)")
    p.add_argument("--users", type=int, default=None, help="users timed in evaluation (default 20)")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="SFT then GDRT this many times in one process; the last round is reported (default 2: the "
        "first steps of the first run pay CUDA/cuBLAS warm-up, which would bias the GDRT/SFT ratio)",
    )
    p.add_argument("--work", type=Path, default=Path("/tmp/lure-gpu-bench"), help="scratch folder (model: ~6 GiB)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available() and not a.tiny:
        print(
            "bench.gpu_bench needs a CUDA device (torch.cuda.is_available() is False); refusing to run a 3B model "
            "on the CPU. Use --tiny for a CPU smoke test of the code path.",
            file=sys.stderr,
        )
        return 2
    steps = a.steps or (2 if a.tiny else 20)
    warmup = a.warmup if a.warmup is not None else (1 if a.tiny else 2)
    batch = a.batch or (2 if a.tiny else 8)
    n_items = a.items or (200 if a.tiny else 2000)
    n_users = a.users or (2 if a.tiny else 20)
    rounds = a.rounds or (1 if a.tiny else 2)

    from bench.llm_bench import synthetic_titles
    from lure.llm.base import build_base
    from lure.llm.data import sft_examples
    from lure.llm.model import set_torch_threads
    from lure.llm.tokenizer import train_tokenizer
    from lure.spec.llm import LoraSpec, ModelSpec
    from lure.spec.train import TrainSpec

    t_start = time.perf_counter()
    set_torch_threads()
    acc = _accelerate_info()
    import pandas as pd

    work = a.work
    work.mkdir(parents=True, exist_ok=True)
    titles = synthetic_titles(n_items, a.seed)
    rng = np.random.default_rng(a.seed)
    n_rows = batch * (steps + warmup)
    windows = pd.DataFrame(
        {
            "user_id": np.arange(n_rows),
            "history": [rng.choice(n_items, 10, replace=False) for _ in range(n_rows)],
            "item_id": rng.integers(0, n_items, n_rows),
        }
    )
    lookup = dict(enumerate(titles))
    histories = [[lookup[i] for i in h] for h in windows["history"][:300]]
    tok = train_tokenizer(titles, histories)  # the project's catalogue BPE (vocab <= 2000), ids < 128256

    folder = work / "llama-3.2-3b-arch"
    from accelerate import PartialState

    state = PartialState()
    info: dict[str, Any] = {}
    if state.is_main_process:
        info.update(_build_model_folder(folder, TINY if a.tiny else LLAMA_3_2_3B, tok, a.seed))
    state.wait_for_everyone()
    spec = ModelSpec(
        init="pretrained",
        name_or_path=str(folder),
        dtype="bfloat16",
        max_length=768,
        lora=LoraSpec(r=8, alpha=16, dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
    )
    base_dir = work / "base"
    build_base(spec, titles, histories, a.seed, base_dir)

    from transformers import AutoTokenizer  # the tokenizer as load_base will read it back from the folder

    loaded_tok = AutoTokenizer.from_pretrained(str(folder))
    probe = f"{titles[0]} / {titles[1]}"
    same_tokens = loaded_tok(probe)["input_ids"] == tok(probe)["input_ids"]

    rows = sft_examples(windows, lookup, loaded_tok, max_length=spec.max_length)
    attach_random_token_groups(rows, rng)  # the grouping itself is outside the training step
    train = TrainSpec(
        batch_size=batch,
        grad_accum=1,
        epochs=1,
        max_samples=None,
        checkpoint_steps=10**6,
        warmup=0.0,
        scheduler="constant",
        learning_rate=1e-4,
        precision="auto",
    )

    result: dict[str, Any] = {
        "model": "Llama-3.2-3B architecture (LlamaConfig), random init, bf16" if not a.tiny else "tiny smoke test",
        "tiny": a.tiny,
        "lora": spec.lora.model_dump(),
        "batch": batch,
        "warmup_steps": warmup,
        "rounds": rounds,
        "row_tokens_mean": round(float(np.mean([len(r["input_ids"]) for r in rows])), 1),
        "row_tokens_max": int(max(len(r["input_ids"]) for r in rows)),
        "tokenizer": f"lure.llm.tokenizer.train_tokenizer catalogue BPE, {len(tok)} tokens",
        "tokenizer_roundtrip_same_ids": bool(same_tokens),
        "accelerate": acc,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "bf16_supported": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
        **info,
    }
    per_round = []
    for r in range(rounds):
        for method in ("sft", "gdrt"):
            result.update(_train(method, base_dir, spec, train, rows, work, warmup, a.seed, n_groups=5))
            print(json.dumps({k: v for k, v in result.items() if k.startswith(method)}), flush=True)
        result["gdrt_over_sft_step_ratio"] = round(result["gdrt_step_s"] / result["sft_step_s"], 3)
        per_round.append(
            {
                "round": r + 1,
                **{
                    k: result[k]
                    for k in (
                        "sft_step_s",
                        "sft_step_s_mean",
                        "sft_tokens_per_s",
                        "gdrt_step_s",
                        "gdrt_step_s_mean",
                        "gdrt_tokens_per_s",
                        "gdrt_over_sft_step_ratio",
                    )
                },
            }
        )
    result["per_round"] = per_round
    if state.is_main_process:
        result.update(_evaluate(base_dir, spec, work / "model-sft", titles, n_users, beam=10, batch=256, seed=a.seed))
        # the same merged model in float32: separates bf16 rounding from a real mismatch between the exact-ranking
        # paths (tree vs generic) and beam search
        spec32 = spec.model_copy(update={"dtype": "float32"})
        fp32 = _evaluate(base_dir, spec32, work / "model-sft", titles, 2, beam=10, batch=256, seed=a.seed)
        result.update(
            {
                f"fp32_{k}": fp32[k]
                for k in (
                    "eval_model_dtype",
                    "eval_exact_path",
                    "rank_s_per_user",
                    "rank_generic_s_per_user",
                    "beam_s_per_user",
                    "tree_vs_generic_max_abs_diff",
                    "beam_vs_exact_score_max_abs_diff",
                    "score_magnitude_mean",
                )
            }
        )
        result["total_wall_s"] = round(time.perf_counter() - t_start, 1)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
