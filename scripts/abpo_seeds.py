"""ABPO's seed study (docs/abpo.md, "Three seeds"): every compared method over successive rounds, for several seeds of
the bandit process (the rounds' windows, the logged draws and feedback, the rollouts, the CTR draws), on the world
and the SFT recommender of the default pipeline (run `make repro` first).

    python scripts/abpo_seeds.py --seeds 0 1 2 --rounds 3 --out reports/abpo_seeds.json

Per method and round it reports the mean over seeds and a Student-t interval of true CTR, NDCG@10, the prior-exposed
share@10 and the Gini gap@10, and ABPO's paired differences with GRPO and with SFT on positives (per seed, then the
interval of the differences). Every method of a seed starts from the same SFT weights and sees the same windows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lure.abpo.run import bandit_log, continual_rounds, load_recommender
from lure.abpo.update import method_settings
from lure.io import write_json
from lure.layout import Prepared
from lure.llm.model import set_torch_threads
from lure.spec.abpo import AbpoSpec, VariantSpec
from lure.spec.load import load_spec
from lure.stats import t_interval

VARIANTS = {
    "sft_positive": VariantSpec(method="sft_positive"),
    "ips_sft": VariantSpec(method="ips_sft"),
    "grpo": VariantSpec(method="grpo"),
    "abpo": VariantSpec(method="abpo"),
    "abpo_no_snips": VariantSpec(method="abpo", snips=False),
    "abpo_untempered": VariantSpec(method="abpo", tempering="none"),
    "abpo_direct": VariantSpec(method="abpo", tempering="direct"),
    "abpo_out_of_baseline": VariantSpec(method="abpo", anchor_in_baseline=False),
    "abpo_tempered_advantage": VariantSpec(method="abpo", tempering_at="advantage"),
}
METRICS = ("true_ctr", "ndcg_at_10", "prior_exposed_share_at_10", "gini_gap_at_10", "snips_ctr")
COMPARED = (("abpo", "grpo"), ("abpo", "sft_positive"))


def interval(values: list[float]) -> dict[str, float]:
    mean, low, high = t_interval(values, 0.95)
    return {"mean": round(mean, 4), "low": round(low, 4), "high": round(high, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("reports/abpo_seeds.json"))
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="FIELD=VALUE",
        help="abpo fields to change for the study, e.g. contexts=256 eval_contexts=400 (YAML values)",
    )
    args = parser.parse_args()
    set_torch_threads()
    spec = load_spec("params.yaml")
    assert spec.abpo is not None, "params.yaml has no abpo section"
    changes = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    cfg = AbpoSpec.model_validate({**spec.abpo.model_dump(), **changes, "rounds": args.rounds})
    prepared = Prepared()
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {v: {} for v in args.variants}
    round_0: dict[int, dict[str, float]] = {}
    for seed in args.seeds:
        logged = bandit_log(prepared, load_recommender(prepared, spec.model), None, cfg, seed, spec.eval.llm.rank_batch)
        round_0[seed] = logged.round_0
        for name in args.variants:
            policy = load_recommender(prepared, spec.model)  # every method starts from the SFT weights
            settings = method_settings(VARIANTS[name], cfg)
            rounds, _ = continual_rounds(prepared, policy, name, settings, cfg, seed, spec.eval.llm.rank_batch, logged)
            runs[name][seed] = rounds
            print(f"seed {seed} {name}: " + ", ".join(f"r{r['round']} ctr {r['true_ctr']:.4f}" for r in rounds))
    summary: dict[str, Any] = {
        "seeds": args.seeds,
        "rounds": args.rounds,
        "abpo": {k: v for k, v in cfg.model_dump().items() if k != "variants"},
        "round_0": {},
        "methods": {},
        "paired": {},
    }
    for m in METRICS:
        summary["round_0"][m] = interval([round_0[s][m] for s in args.seeds])
    for name, by_seed in runs.items():
        summary["methods"][name] = [
            {m: interval([by_seed[s][r][m] for s in args.seeds]) for m in METRICS} for r in range(args.rounds)
        ]
    for a, b in COMPARED:
        if a in runs and b in runs:
            summary["paired"][f"{a}_minus_{b}"] = [
                {
                    m: interval([runs[a][s][r][m] - runs[b][s][r][m] for s in args.seeds])
                    for m in ("true_ctr", "ndcg_at_10", "prior_exposed_share_at_10")
                }
                for r in range(args.rounds)
            ]
    write_json(args.out, summary)
    print(json.dumps(summary, indent=1))
    print(markdown(summary))


def markdown(summary: dict[str, Any]) -> str:
    """The per-method table of the last round: mean [95 % t interval] over seeds."""

    def cell(v: dict[str, float]) -> str:
        return f"{v['mean']:.4f} [{v['low']:.4f}, {v['high']:.4f}]"

    lines = ["| method | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    lines.append("| sft (round 0) | " + " | ".join(cell(summary["round_0"][m]) for m in METRICS) + " |")
    for name, per_round in summary["methods"].items():
        lines.append(f"| {name} | " + " | ".join(cell(per_round[-1][m]) for m in METRICS) + " |")
    return "\n".join(lines) + "\n" + f"({np.size(summary['seeds'])} seeds, after round {summary['rounds']})"


if __name__ == "__main__":
    main()
