"""The Hugging Face path of the base model, offline: a Llama saved locally from a config stands in for a hub model;
`model.init: pretrained` + LoRA trains adapters only, and evaluation merges them back into one plain causal LM."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from lure.llm.base import build_base, load_base, load_trained
from lure.llm.data import sft_dataset
from lure.llm.evaluate import rank_llm
from lure.llm.model import build_tiny_llama, trainable_parameters
from lure.llm.prompts import encode_prompt, render_prompt
from lure.llm.tokenizer import train_tokenizer
from lure.spec.llm import ModelSpec
from lure.spec.train import TrainSpec
from lure.train.finetune import fine_tune

TITLES = {i: f"Film {w} ({1980 + i})" for i, w in enumerate(["Alpha", "Beta", "Gamma", "Delta", "Epsilon"])}


def saved_hub_model(path: Path) -> Path:
    tok = train_tokenizer(list(TITLES.values()), vocab_size=300)
    model = build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=1)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_tiny_base_is_built_seeded_and_reloads(tmp_path: Path) -> None:
    spec = ModelSpec(
        tiny={"hidden": 32, "layers": 1, "heads": 2, "vocab_size": 300}, pretrain={"steps": 4, "batch_size": 8}
    )
    prior = [1.0, 0.0, -1.0, 0.5, 2.0]
    info = build_base(spec, list(TITLES.values()), [list(TITLES.values())[:3]], 0, tmp_path / "a", prior=prior)
    build_base(spec, list(TITLES.values()), [list(TITLES.values())[:3]], 0, tmp_path / "b", prior=prior)
    assert info["init"] == "tiny" and info["parameters"] > 0
    assert info["pretrain"]["steps"] == 4 and info["pretrain"]["rows"] == 32, info  # pretraining is seeded too
    a, tok = load_base(tmp_path / "a", spec)
    b, _ = load_base(tmp_path / "b", spec)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert tok.pad_token_id is not None and tok.eos_token_id is not None


def test_pretrained_with_lora_trains_adapters_and_merges_for_evaluation(tmp_path: Path) -> None:
    hub = saved_hub_model(tmp_path / "hub")
    spec = ModelSpec(init="pretrained", name_or_path=str(hub), lora={"r": 4, "alpha": 8, "dropout": 0.0})
    base_dir = tmp_path / "base"
    info = build_base(spec, [], [], 0, base_dir)
    assert info == {"init": "pretrained", "name_or_path": str(hub)}
    assert not (base_dir / "model.safetensors").exists(), "a pretrained base is a pointer, not a copy"
    model, tok = load_base(base_dir, spec, trainable=True)
    trainable, total = trainable_parameters(model)
    assert 0 < trainable < total / 4, (trainable, total)
    windows = pd.DataFrame(
        {
            "user_id": range(8),
            "history": [[i % 5, (i + 1) % 5] for i in range(8)],
            "item_id": [(i + 2) % 5 for i in range(8)],
        }
    )
    train = TrainSpec(epochs=1, batch_size=4, max_samples=None, learning_rate=5e-2, course_points=0)
    fine_tune(model, tok, sft_dataset(windows, TITLES, tok), train, 0, tmp_path / "sft", tmp_path / "work")
    assert (tmp_path / "sft" / "adapter_config.json").is_file()
    assert not (tmp_path / "sft" / "model.safetensors").exists(), "LoRA saves adapters only"
    merged, tok2 = load_trained(tmp_path / "sft", base_dir, spec)
    assert type(merged).__name__ == "LlamaForCausalLM", "adapters merged: the exact-ranking fast path applies"
    original, _ = load_base(base_dir, spec)
    changed = any(
        not torch.equal(p, q) for p, q in zip(merged.state_dict().values(), original.state_dict().values(), strict=True)
    )
    assert changed, "training must have moved the merged weights"
    prompts = [encode_prompt(tok2, render_prompt([TITLES[0], TITLES[1]])).input_ids]
    ranked = rank_llm(merged, tok2, prompts, list(TITLES), list(TITLES.values()), "exact", 5, 5, 8, progress=False)
    assert sorted(ranked[0].tolist()) == list(TITLES)
