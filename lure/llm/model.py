"""Causal LMs for the LLM recommenders: a seeded tiny Llama for CPU runs, any Hugging Face model for GPU runs.

The tiny model has the same architecture family as the papers' backbones (GDRT: Llama-3.2-3B), so the training,
ranking and decoding code paths are identical; only the size differs. Real models load through
``AutoModelForCausalLM`` and optionally get LoRA adapters through ``peft`` (the base then stays frozen).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

import torch

# transformers is imported inside the functions: stages that only set threads or read results should not pay for it


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's count: containers restrict it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads to the cores we actually have (default) and return the number.

    Why: torch sizes its pool from the machine, not the container's CPU quota; oversubscribed threads spin
    against each other (two busy threads on two cores slowed training elevenfold here).
    """
    n = available_cores() if n is None else max(1, int(n))
    torch.set_num_threads(n)
    retain_freed_memory()
    return n


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for the mmap threshold on 64-bit systems


def retain_freed_memory() -> bool:
    """Let glibc keep freed heap memory for reuse instead of unmapping it; True if it took effect.

    Why: CPU tensors come straight from malloc, and glibc serves large blocks with fresh ``mmap`` pages and hands
    them back on ``free`` (its threshold adapts, but only upwards from 128 KiB). A forward pass allocates and frees
    the same multi-MiB temporaries again and again, so each one paid page faults anew: 20-50 thousand per user in
    exact ranking, a fifth of its time on this machine. The cost: the process keeps its peak heap (not more).
    A no-op off glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # pragma: no cover - no C library to talk to
        mallopt = None
    if mallopt is None:  # pragma: no cover - musl, macOS, Windows
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def build_tiny_llama(
    tokenizer: Any,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate: int | None = None,
    max_positions: int = 1024,
    seed: int = 0,
    tie_embeddings: bool = True,
) -> Any:
    """A freshly initialised Llama sized for CPU, with vocabulary and special ids taken from ``tokenizer``.

    Initialisation happens under a forked RNG seeded with ``seed``: the same arguments give the same weights
    without touching the caller's global random state.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate or 4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tie_embeddings,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | str:
    if dtype is None or dtype == "auto":
        return "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, dtype)


def load_causal_lm(
    name_or_path: str,
    lora: dict[str, Any] | None = None,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    **model_kwargs: Any,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for any Hugging Face causal LM (hub id or local directory).

    ``lora``: keyword arguments of ``peft.LoraConfig`` (e.g. ``{"r": 8, "lora_alpha": 16, "lora_dropout": 0.05,
    "target_modules": ["q_proj", "v_proj"]}``); when given, the model is wrapped with ``get_peft_model`` so only the
    adapters train. ``task_type`` defaults to ``CAUSAL_LM``. ``dtype``: "bfloat16", "float32", a torch dtype or
    None/"auto" (the checkpoint's). A tokenizer without a pad token gets EOS as pad (Llama 3 ships none), and the
    padding side is set to right, which exact ranking and the SFT collator assume.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=_dtype(dtype), **model_kwargs)
    if device is not None:
        model = model.to(device)
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        kwargs = {"task_type": "CAUSAL_LM", **lora}
        model = get_peft_model(model, LoraConfig(**kwargs))
    return model, tokenizer


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts: a quick check that LoRA froze the base."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
