"""GDRT (docs/gdrt.md): relevance (Eq. 3), K-means grouping, closed-form Group DRO loss (Eq. 5), TRL trainer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lure.train import (
    NO_GROUP,
    assign_groups,
    group_dro_loss,
    group_tokens,
    item_relevance,
    response_values,
    token_groups_column,
    token_relevance,
)


# ---------------------------------------------------------------------------------------------------- group_dro_loss
def test_group_dro_hand_computed_two_groups() -> None:
    # group 0: losses 1, 3 -> L0 = 2 ; group 1: loss 4 -> L1 = 4 ; tau = 1
    losses = torch.tensor([1.0, 3.0, 4.0], dtype=torch.float64, requires_grad=True)
    groups = torch.tensor([0, 0, 1])
    loss, q, gl = group_dro_loss(losses, groups, n_groups=2, tau=1.0)
    q0 = 1 / (1 + math.e**2)
    q1 = math.e**2 / (1 + math.e**2)
    assert torch.allclose(gl, torch.tensor([2.0, 4.0], dtype=torch.float64))
    assert torch.allclose(q, torch.tensor([q0, q1], dtype=torch.float64))
    assert loss.item() == pytest.approx(2 * q0 + 4 * q1)  # 3.7616
    assert loss.item() == pytest.approx(3.761594155955765)
    loss.backward()
    # Q is a constant: d loss / d l_i = Q(g_i) / |G_{g_i}|
    assert torch.allclose(losses.grad, torch.tensor([q0 / 2, q0 / 2, q1], dtype=torch.float64))


def test_group_dro_gradient_is_q_weighted_group_gradients() -> None:
    torch.manual_seed(0)
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    x = torch.randn(10, 6, dtype=torch.float64)
    groups = torch.tensor([0, 1, 2, 0, 1, 2, 2, NO_GROUP, 1, 0])

    def token_losses() -> torch.Tensor:
        return torch.nn.functional.softplus(x @ w)

    loss, q, _ = group_dro_loss(token_losses(), groups, n_groups=3, tau=0.3)
    assert not q.requires_grad
    (grad,) = torch.autograd.grad(loss, w)

    expected = torch.zeros_like(w)
    tl = token_losses()
    for g in range(3):
        (gg,) = torch.autograd.grad(tl[groups == g].mean(), w, retain_graph=True)
        expected += q[g] * gg
    assert torch.allclose(grad, expected)
    # and it is NOT the gradient of the soft-max-weighted loss with Q differentiated through
    lg = torch.stack([tl[groups == g].mean() for g in range(3)])
    (full_grad,) = torch.autograd.grad((torch.softmax(lg / 0.3, 0) * lg).sum(), w)
    assert not torch.allclose(grad, full_grad)


def test_group_dro_tau_limits() -> None:
    losses = torch.tensor([0.5, 1.5, 3.0, 2.0, 7.0])
    groups = torch.tensor([0, 0, 1, 1, 2])  # L = [1, 2.5, 7]
    big, _, _ = group_dro_loss(losses, groups, 3, tau=1e6)
    assert big.item() == pytest.approx((1 + 2.5 + 7) / 3, rel=1e-4)  # group average, not token average (2.8)
    inf, q_inf, _ = group_dro_loss(losses, groups, 3, tau=math.inf)
    assert inf.item() == pytest.approx(3.5) and torch.allclose(q_inf, torch.full((3,), 1 / 3))
    small, q_small, _ = group_dro_loss(losses, groups, 3, tau=1e-3)
    assert small.item() == pytest.approx(7.0, abs=1e-4)
    assert q_small[2].item() == pytest.approx(1.0)
    tiny, _, _ = group_dro_loss(losses, groups, 3, tau=1e-30)  # no overflow at extreme temperatures
    assert tiny.item() == pytest.approx(7.0)


def test_group_dro_absent_groups_and_ignored_tokens() -> None:
    losses = torch.tensor([[1.0, 3.0, float("inf")], [5.0, 2.0, 2.0]], requires_grad=True)
    groups = torch.tensor([[0, 0, NO_GROUP], [3, NO_GROUP, NO_GROUP]])  # groups 1, 2 absent
    loss, q, gl = group_dro_loss(losses, groups, n_groups=4, tau=math.inf)
    assert loss.item() == pytest.approx((2.0 + 5.0) / 2)
    assert q.tolist() == pytest.approx([0.5, 0.0, 0.0, 0.5])
    assert torch.isnan(gl[1]) and torch.isnan(gl[2])
    loss.backward()
    assert torch.isfinite(losses.grad).all()
    assert losses.grad[0, 2].item() == 0.0 and losses.grad[1, 1].item() == 0.0
    # nothing to train on: a finite zero that still backpropagates
    empty = torch.tensor([1.0, 2.0], requires_grad=True)
    z, qz, _ = group_dro_loss(empty, torch.tensor([NO_GROUP, NO_GROUP]), 2, tau=1.0)
    z.backward()
    assert z.item() == 0.0 and qz.sum().item() == 0.0 and empty.grad.abs().sum().item() == 0.0


def test_group_dro_single_group_is_token_mean() -> None:
    losses = torch.tensor([1.0, 2.0, 6.0])
    loss, q, _ = group_dro_loss(losses, torch.zeros(3, dtype=torch.long), 1, tau=0.1)
    assert loss.item() == pytest.approx(3.0) and q.item() == pytest.approx(1.0)


def test_group_dro_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        group_dro_loss(torch.ones(2), torch.tensor([0, 2]), 2, tau=1.0)
    with pytest.raises(ValueError):
        group_dro_loss(torch.ones(2), torch.tensor([0, 1]), 2, tau=0.0)


# ------------------------------------------------------------------------------------------- relevance & grouping
def test_token_relevance_matches_log_softmax_with_shift() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, 1], [-100, 2, 6, -100, -100]])
    r = token_relevance(logits, labels)
    lp = torch.log_softmax(logits, -1)
    assert torch.isnan(r[0, :2]).all() and torch.isnan(r[1, 0]) and torch.isnan(r[1, 3:]).all()
    assert r[0, 2].item() == pytest.approx(lp[0, 1, 3].item())
    assert r[0, 4].item() == pytest.approx(lp[0, 3, 1].item())
    assert r[1, 1].item() == pytest.approx(lp[1, 0, 2].item())
    item = item_relevance(r)  # Eq. 2: mean over the item's tokens
    assert item[1].item() == pytest.approx((lp[1, 0, 2] + lp[1, 1, 6]).item() / 2)
    vals = response_values(r, labels)
    assert [v.size for v in vals] == [3, 2]


def test_group_tokens_orders_groups_by_descending_relevance() -> None:
    rng = np.random.default_rng(0)
    r = np.concatenate([rng.normal(-0.5, 0.05, 50), rng.normal(-4.0, 0.05, 50), rng.normal(-9.0, 0.05, 50)])
    perm = rng.permutation(r.size)
    a, c = group_tokens(r[perm], groups=3, seed=0)
    assert np.all(np.diff(c) < 0)  # group 0 = most relevant to auxiliary tokens
    truth = np.repeat([0, 1, 2], 50)[perm]
    assert np.array_equal(a, truth)
    assert np.array_equal(assign_groups(np.array([-0.4, -8.0, -3.9]), c), [0, 2, 1])
    aq, cq = group_tokens(r[perm], groups=3, method="quantile")
    assert np.array_equal(aq, truth) and np.all(np.diff(cq) < 0)
    with pytest.raises(ValueError):
        group_tokens(np.array([1.0, 1.0, 1.0]), groups=2)
    with pytest.raises(ValueError):
        group_tokens(np.array([1.0, np.nan, 0.0]), groups=2)


def test_token_groups_column() -> None:
    assert token_groups_column([-100, -100, 5, 6], [1, 0]) == [NO_GROUP, NO_GROUP, 1, 0]
    with pytest.raises(ValueError):
        token_groups_column([-100, 5], [0, 1])


# ------------------------------------------------------------------------------------------------------ trainer
VOCAB = 100


def _tiny_setup(tmp_path, tau: float, n_groups: int = 3):  # type: ignore[no-untyped-def]
    from datasets import Dataset
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import SFTConfig

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(cfg)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, VOCAB)}}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<pad>")),
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )
    rng = np.random.default_rng(0)
    rows = {"input_ids": [], "labels": [], "token_groups": []}
    for n_prompt, n_resp in [(4, 3), (6, 2), (3, 5), (5, 4)]:
        ids = [1, *rng.integers(3, VOCAB, n_prompt + n_resp).tolist(), 2]
        labels = [-100] * (n_prompt + 1) + ids[n_prompt + 1 :]
        resp_groups = rng.integers(0, n_groups, n_resp + 1).tolist()
        rows["input_ids"].append(ids)
        rows["labels"].append(labels)
        rows["token_groups"].append(token_groups_column(labels, resp_groups))
    args = SFTConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=1,
        learning_rate=1e-2,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,  # SFTConfig defaults it to True; new name of gradient_checkpointing
        use_cpu=True,
        report_to=[],
        remove_unused_columns=False,
        packing=False,
        padding_free=False,
        max_length=None,
        shuffle_dataset=False,
        dataset_num_proc=None,
        logging_steps=1,
        save_strategy="no",
        seed=0,
        dataloader_num_workers=0,
    )
    return model, tok, Dataset.from_dict(rows), args


def _hand_loss(model, batch, n_groups: int, tau: float):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lp = torch.log_softmax(logits[:, :-1].double(), -1)
    labels = batch["labels"][:, 1:]
    tok_loss = -lp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    groups = torch.where(labels != -100, batch["token_groups"][:, 1:], torch.full_like(labels, NO_GROUP))
    mask = labels != -100
    return group_dro_loss(tok_loss, groups, n_groups, tau), tok_loss, groups, mask


@pytest.mark.parametrize("tau", [0.5, 1e9])
def test_gdrt_trainer_loss_and_one_step(tmp_path, tau: float) -> None:  # type: ignore[no-untyped-def]
    from lure.train import GDRTTrainer

    model, tok, ds, args = _tiny_setup(tmp_path, tau)
    trainer = GDRTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, n_groups=3, tau=tau)
    assert "token_groups" in trainer.train_dataset.column_names
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["token_groups"].shape == batch["labels"].shape
    assert torch.equal(batch["token_groups"] >= 0, batch["labels"] != -100)

    trainer.model.eval()  # deterministic (no dropout anyway); compute_loss vs. the same logits recomputed by hand
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    (expected, _, _), tok_loss, groups, mask = _hand_loss(trainer.model, batch, 3, tau)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    if tau > 1e6:  # tau -> inf: the plain average of the per-group mean token losses
        group_avg = torch.stack([tok_loss[groups == g].mean() for g in range(3) if (groups == g).any()]).mean()
        assert loss.item() == pytest.approx(group_avg.item(), rel=1e-5)
        token_avg = tok_loss[mask].mean()
        assert abs(group_avg.item() - token_avg.item()) > 1e-6  # differs from SFT's token mean (Eq. 1)

    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.model.train()
    out = trainer.train()
    assert math.isfinite(out.training_loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.model.parameters(), strict=True))
    logged = trainer.state.log_history[0]
    assert "gdrt_q_0" in logged and "loss" in logged
