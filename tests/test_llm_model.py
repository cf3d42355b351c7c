"""Tiny Llama construction, Hugging Face loading with LoRA, and thread setting (lure.llm.model)."""

from __future__ import annotations

import torch

from lure.llm.model import build_tiny_llama, load_causal_lm, set_torch_threads, trainable_parameters
from lure.llm.tokenizer import train_tokenizer

TITLES = ["Toy Story", "Heat", "Alien", "Aliens", "Up", "The Matrix"]


def _tok():
    return train_tokenizer(TITLES, vocab_size=300)


def test_tiny_llama_is_seeded_and_sized():
    tok = _tok()
    state = torch.random.get_rng_state()
    a, b = (
        build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=3),
        build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=3),
    )
    c = build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    wa, wb, wc = (m.get_input_embeddings().weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert a.config.vocab_size == len(tok) and a.config.eos_token_id == tok.eos_token_id
    logits = a(torch.tensor([[tok.bos_token_id, 5, 6]])).logits
    assert logits.shape == (1, 3, len(tok))


def test_load_causal_lm_with_lora_freezes_base(tmp_path):
    tok = _tok()
    build_tiny_llama(tok, hidden=32, layers=1, heads=2).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, tok2 = load_causal_lm(
        str(tmp_path), lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}, dtype="float32"
    )
    assert tok2.pad_token_id is not None and tok2.padding_side == "right"
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    trainable, total = trainable_parameters(model)
    assert 0 < trainable < total
    x = torch.tensor([[tok.bos_token_id, 7, 8, 9]])
    model(input_ids=x, labels=x).loss.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
    plain, _ = load_causal_lm(str(tmp_path), lora=None, dtype=torch.float32)
    assert all(p.requires_grad for p in plain.parameters())


def test_set_torch_threads():
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(1) == 1 and torch.get_num_threads() == 1
        n = set_torch_threads()
        assert n >= 1 and torch.get_num_threads() == n
    finally:
        torch.set_num_threads(before)
