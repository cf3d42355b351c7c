"""The starting point of every generative method: a tiny Llama + catalogue tokenizer (CPU) or a pretrained causal LM.

``build_base`` runs once per spec (the ``llm-base`` stage); every training and evaluation stage then loads the same
base through :func:`load_base` / :func:`load_trained`, so SFT, GDRT and later methods share tokenizer and weights.
For a pretrained model only a pointer is stored (``base.json``): copying a 3B checkpoint into the pipeline's cache
would cost more than re-reading it from the Hugging Face cache. The tiny model is pretrained here on a corpus weighted
by the world's title prior (:mod:`lure.llm.pretrain`), so that, like a pretrained LLM, it has a language prior before
any fine-tuning.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lure.io import read_json, write_json
from lure.rng import generator

BASE_FILE = "base.json"


def lora_kwargs(model_spec: Any) -> dict[str, Any] | None:
    """``peft.LoraConfig`` keyword arguments from ``model.lora`` (None = full fine-tuning)."""
    lora = model_spec.lora
    if lora is None:
        return None
    return {
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": list(lora.target_modules),
    }


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_base(
    model_spec: Any,
    titles: Sequence[str],
    histories: Sequence[Sequence[str]],
    seed: int,
    out_dir: Path,
    prior: Sequence[float] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the base model folder; return its description (also stored as ``base.json``).

    A tiny model is pretrained (``model.pretrain``) on a corpus in which ``titles`` appear in proportion to
    softmax(prior_strength * ``prior``); ``prior`` is the world's title prior per title, None on a real dataset
    (uniform corpus). A pretrained model is only pointed at: it brings its own prior.
    """
    from lure.train.finetune import save_atomically

    out_dir = Path(out_dir)
    if model_spec.init == "pretrained":
        info = {"init": "pretrained", "name_or_path": model_spec.name_or_path}
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / BASE_FILE, info)
        return info
    from lure.llm.model import build_tiny_llama
    from lure.llm.tokenizer import train_tokenizer

    tiny = model_spec.tiny
    tokenizer = train_tokenizer(titles, histories, vocab_size=tiny.vocab_size, template=model_spec.template)
    model = build_tiny_llama(
        tokenizer,
        hidden=tiny.hidden,
        layers=tiny.layers,
        heads=tiny.heads,
        max_positions=model_spec.max_length,
        seed=seed,
    )
    pretrained = None
    if model_spec.pretrain.steps:
        from lure.llm.pretrain import pretrain

        pretrained = pretrain(
            model,
            tokenizer,
            titles,
            prior,
            model_spec.pretrain,
            generator(seed, "llm-base.pretrain.corpus"),
            model_spec.template,
            progress=progress,
        )

    def save(path: str) -> None:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)

    save_atomically(out_dir, save)
    params = sum(p.numel() for p in model.parameters())
    info: dict[str, Any] = {"init": "tiny", "vocab": len(tokenizer), "parameters": int(params)}
    if pretrained is not None:
        info["pretrain"] = pretrained
    write_json(out_dir / BASE_FILE, info)
    return info


def load_base(base_dir: Path, model_spec: Any, trainable: bool = False) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the base; with ``trainable`` and ``model.lora`` the model gets fresh adapters."""
    from lure.llm.model import load_causal_lm

    info = read_json(Path(base_dir) / BASE_FILE)
    source = info.get("name_or_path") or str(base_dir)
    dtype = model_spec.dtype if info["init"] == "pretrained" else "float32"
    model, tokenizer = load_causal_lm(source, lora=lora_kwargs(model_spec) if trainable else None, dtype=dtype)
    return model.to(device()), tokenizer


def load_trained(model_dir: Path, base_dir: Path, model_spec: Any) -> tuple[Any, Any]:
    """A fine-tuned model ready for inference: LoRA adapters are merged into the base (one plain causal LM, so the
    exact-ranking fast path applies); a fully fine-tuned model is read from its own folder."""
    from lure.llm.model import load_causal_lm

    model_dir = Path(model_dir)
    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        base, tokenizer = load_base(base_dir, model_spec)
        model = PeftModel.from_pretrained(base, str(model_dir)).merge_and_unload()
    else:
        model, tokenizer = load_causal_lm(
            str(model_dir), dtype=model_spec.dtype if model_spec.init == "pretrained" else "float32"
        )
    return model.to(device()).eval(), tokenizer
