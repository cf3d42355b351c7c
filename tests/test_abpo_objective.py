"""ABPO's objective on hand-made groups: every value below is computed by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from lure.abpo.objective import (
    anchor_rewards,
    clipped_token_loss,
    group_advantages,
    kl_k3,
    self_certainty,
    snips_weights,
    temper_anchor_advantage,
    tempering,
)

REWARDS = torch.tensor([[1.0, 0.0, 0.0]])  # one context, G = 3: the first rollout named the exposed, clicked item


def test_advantages_with_the_anchor_in_the_baseline() -> None:
    # members 1, 0, 0 and the anchor 1: mean 0.5, population std 0.5
    adv = group_advantages(REWARDS, torch.tensor([1.0]), anchor_in_baseline=True, eps=0.0)
    assert adv.rollouts.tolist() == [[1.0, -1.0, -1.0]] and adv.anchor.tolist() == [1.0]


def test_advantages_with_the_anchor_out_of_the_baseline_and_without_it() -> None:
    # statistics of 1, 0, 0 only: mean 1/3, std sqrt(2/9)
    std = math.sqrt(2 / 9)
    out = group_advantages(REWARDS, torch.tensor([1.0]), anchor_in_baseline=False, eps=0.0)
    assert out.rollouts[0].tolist() == pytest.approx([(2 / 3) / std, (-1 / 3) / std, (-1 / 3) / std])
    assert out.anchor.item() == pytest.approx((2 / 3) / std)
    plain = group_advantages(REWARDS, None, eps=0.0)  # plain GRPO: same rollouts' statistics, no anchor
    assert plain.rollouts[0].tolist() == pytest.approx(out.rollouts[0].tolist()) and plain.anchor.tolist() == [0.0]
    # a group where nothing was named: all rewards 0, advantages 0 (no signal), not NaN
    assert group_advantages(torch.zeros(1, 3), None).rollouts.tolist() == [[0.0, 0.0, 0.0]]
    # a no-response anchor of -0.5 against rollouts 0, 0, 0: mean -1/8, std sqrt(3/64) -> anchor -sqrt(3)
    lone = group_advantages(torch.zeros(1, 3), torch.tensor([-0.5]), eps=0.0)
    assert lone.anchor.item() == pytest.approx(-math.sqrt(3)) and lone.rollouts[0, 0].item() == pytest.approx(
        1 / math.sqrt(3)
    )


def test_a_baseline_without_spread_does_not_rescale() -> None:
    # anchor out of the baseline, rollouts 0, 0, 0: mean 0, std 0 -> A = R - mean, the anchor -0.5 (not -0.5 / eps)
    out = group_advantages(torch.zeros(1, 3), torch.tensor([-0.5]), anchor_in_baseline=False)
    assert out.anchor.item() == pytest.approx(-0.5) and out.rollouts.tolist() == [[0.0, 0.0, 0.0]]


def test_the_anchor_reward_scale_cancels_when_every_rollout_earns_zero() -> None:
    # G = 4 rollouts of 0 and an anchor x < 0: A_anchor = -sqrt(G) = -2 whatever x (why tempering_at: advantage)
    for x in (-1.0, -0.25, -0.01):
        adv = group_advantages(torch.zeros(1, 4), torch.tensor([x]), eps=0.0)
        assert adv.anchor.item() == pytest.approx(-2.0) and adv.rollouts[0, 0].item() == pytest.approx(0.5)
    # tempering at the advantage: a no-response's -2 times t = 0.25 -> -0.5; a positive's advantage is kept
    tempered = temper_anchor_advantage(
        torch.tensor([-2.0, 2.0]), torch.tensor([False, True]), torch.tensor([0.25, 0.0])
    )
    assert tempered.tolist() == pytest.approx([-0.5, 2.0])


def test_snips_weights_normalise_by_the_batch_mean_then_clip() -> None:
    # rho = 0.2/0.1, 0.1/0.1, 0.05/0.1 = 2, 1, 0.5; mean 7/6 -> 12/7, 6/7, 3/7; clipped at 1.5
    log_pi = torch.log(torch.tensor([0.2, 0.1, 0.05], requires_grad=True))
    log_mu = torch.log(torch.tensor([0.1, 0.1, 0.1]))
    assert snips_weights(log_pi, log_mu, 10.0).tolist() == pytest.approx([12 / 7, 6 / 7, 3 / 7])
    w = snips_weights(log_pi, log_mu, 1.5)
    assert w.tolist() == pytest.approx([1.5, 6 / 7, 3 / 7]) and not w.requires_grad


def test_self_certainty_is_the_kl_from_uniform() -> None:
    # one token, V = 2, p = (1/4, 3/4): KL(U || p) = 0.5 ln(0.5 / 0.25) + 0.5 ln(0.5 / 0.75)
    logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, -5.0]]])
    kl = 0.5 * math.log(2.0) + 0.5 * math.log(2 / 3)
    assert self_certainty(logits, torch.tensor([[True, False]])).item() == pytest.approx(kl)
    uniform = torch.zeros(1, 2, 7)
    assert self_certainty(uniform, torch.ones(1, 2, dtype=torch.bool)).item() == pytest.approx(0.0, abs=1e-6)  # float32
    with pytest.raises(ValueError, match="no scored token"):
        self_certainty(logits, torch.zeros(1, 2, dtype=torch.bool))


def test_tempering_and_anchor_rewards() -> None:
    c = torch.tensor([0.2, 0.6, 1.0])  # normalised: 0, 0.5, 1
    assert tempering(c, "inverse").tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert tempering(c, "direct").tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert tempering(c, "none").tolist() == [1.0, 1.0, 1.0]
    assert tempering(torch.tensor([0.3, 0.3]), "inverse").tolist() == [0.5, 0.5]
    # positive, no-response (t 0.5), no-response (t 0): r+ = 1, lambda = 0.5 -> 1, -0.25, 0
    r = anchor_rewards(torch.tensor([True, False, False]), torch.tensor([1.0, 0.5, 0.0]), 1.0, 0.5)
    assert r.tolist() == pytest.approx([1.0, -0.25, 0.0])


def test_clipped_loss_and_k3() -> None:
    logp = torch.log(torch.tensor([[0.6, 0.5]]))
    old = torch.log(torch.tensor([[0.4, 0.5]]))  # ratio 1.5 on the first token, 1 on the second (masked out)
    mask = torch.tensor([[True, False]])
    # A = 1: min(1.5, 1.2) = 1.2 -> loss -1.2; A = -1: min(-1.5, -1.2) = -1.5 -> loss 1.5
    assert clipped_token_loss(logp, old, torch.tensor([1.0]), mask, 0.2).item() == pytest.approx(-1.2)
    assert clipped_token_loss(logp, old, torch.tensor([-1.0]), mask, 0.2).item() == pytest.approx(1.5)
    # p = 0.5, q = 0.25: d = ln 0.5, exp(d) - d - 1 = 0.5 + ln 2 - 1
    k3 = kl_k3(torch.log(torch.tensor([[0.5]])), torch.log(torch.tensor([[0.25]])), torch.tensor([[True]]))
    assert k3.item() == pytest.approx(0.5 + math.log(2) - 1)
