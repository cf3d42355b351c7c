"""Run RecJudge-X's path once on a world with the simulated judge and print what docs/judge.md quotes.

    python scripts/judge_check.py --seed 0 --users 1000 [--accuracy 0.8 --position-bias 0.1 ...]

prepare -> logistic propensity -> labelled matched pairs -> judge prompts -> simulated replies -> parser -> labels
-> PairAUC_IPS / RJS of three scorings (the truth r(u, i), item popularity, random), no DVC: the functions the
tests use. Prints the status counts, the judge's accuracy against the world's true preference, the share of valid
answers that picked the first shown candidate, each scoring's PairAUC_IPS and RJS (IPS on and off) under both
invalid-answer policies, and the time of the judge path per 1000 pairs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from lure.data.prepare import prepare
from lure.judge.labels import labels, status_counts
from lure.judge.parse import judge_reply
from lure.judge.prompt import judge_prompts
from lure.judge.simulated import simulate_replies
from lure.layout import Prepared
from lure.metrics.pairwise import judge_accuracy, pairwise_metrics
from lure.pairs import sample_pairs
from lure.propensity import fit_propensity
from lure.spec.data import DataSpec
from lure.spec.judge import DownweightInvalid, DropInvalid, PairwiseMetricsSpec, SimulatedJudgeSpec
from lure.spec.pairs import PairsSpec
from lure.spec.propensity import PropensitySpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=10)
    defaults = SimulatedJudgeSpec()
    knobs = [name for name in SimulatedJudgeSpec.model_fields if name != "name"]
    for name in knobs:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    args = parser.parse_args()
    judge = SimulatedJudgeSpec(**{name: getattr(args, name) for name in knobs})

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        prepare(DataSpec.model_validate({"source": {"name": "world", "n_users": args.users}}), args.seed, out)
        propensity = fit_propensity(PropensitySpec(), out, seed=args.seed)
        pairs = sample_pairs(PairsSpec(mode="labeled", per_user=args.per_user), out, propensity, seed=args.seed)
        prepared = Prepared(out)
        items, train = prepared.read_items(), prepared.read_split("holdout", "train")

    start = time.perf_counter()
    prompts = judge_prompts(pairs, items, train, history_items=20, seed=args.seed)
    pop = items["popularity"].to_numpy(np.float64)
    i, j = pairs["item_i"].to_numpy(), pairs["item_j"].to_numpy()
    replies, _ = simulate_replies(prompts, pairs["r_i"], pairs["r_j"], pop[i], pop[j], judge, seed=args.seed)
    judged = [judge_reply(r, p.presentation) for r, p in zip(replies, prompts, strict=True)]
    seconds = time.perf_counter() - start
    print(f"pairs {len(pairs)}, users {pairs['user_id'].nunique()}, judge {judge.model_dump()}")
    print(f"judge path (prompts, replies, parsing): {1000 * seconds / len(pairs):.3f} s per 1000 pairs")
    print("statuses", status_counts(j.status for j in judged))
    valid = [k for k, jd in enumerate(judged) if jd.status == "valid"]
    first = np.mean(
        [
            prompts[k].presentation.label_of(judged[k].answer.winner) == "A"
            for k in valid
            if judged[k].answer.winner != "tie"
        ]
    )
    print(f"valid non-tie answers that picked the first shown candidate: {first:.3f}")

    truth = pairs["true_pref"].to_numpy()
    rng = np.random.default_rng(args.seed)
    scorings = {
        "truth": (pairs["r_i"].to_numpy(), pairs["r_j"].to_numpy()),
        "popularity": (pop[i], pop[j]),
        "random": (rng.random(len(pairs)), rng.random(len(pairs))),
    }
    for policy in (DropInvalid(), DownweightInvalid()):
        y, weight = labels(judged, policy)
        acc = judge_accuracy(y, weight, truth)
        acc_ips = judge_accuracy(y, weight, truth, w=pairs["w"].to_numpy())
        print(
            f"\n{policy.model_dump()}: accuracy vs true preference {acc['accuracy']:.3f} "
            f"(IPS-weighted {acc_ips['accuracy']:.3f}), coverage {acc['coverage']:.3f}, "
            f"accuracy vs held-out label {judge_accuracy(y, weight, pairs['label'].to_numpy())['accuracy']:.3f}"
        )
        for name, (s_i, s_j) in scorings.items():
            cells = []
            for ips in (True, False):
                frame = pairs.assign(score_i=s_i, score_j=s_j)
                r = pairwise_metrics(frame, y, weight, PairwiseMetricsSpec(ips=ips), 200, 0.95, seed=args.seed)["all"]
                auc = r["pair_auc_ips"]
                cells.append(
                    f"{'IPS' if ips else 'unweighted'} PairAUC {auc['mean']:.3f} "
                    f"[{auc['ci_low']:.3f}, {auc['ci_high']:.3f}] RJS {r['rjs']['mean']:+.3f}"
                )
            print(f"  {name:<10} " + " | ".join(cells))


if __name__ == "__main__":
    main()
