"""LURE's ablations (§7) as DVC experiments, collected in one table (lure.judge.ablations).

    python scripts/judge_ablations.py --run            # lure exp run -n judge-<name> -S ... for each ablation
    python scripts/judge_ablations.py --out docs/results/judge_ablations.csv   # the table of finished ones

Run in a project whose pipeline has run (``make repro``): each experiment re-runs only the stages its overrides touch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from lure.experiments import dvc_exp_show, experiments_from_exp_show, flatten_params, metrics_at
from lure.io import read_yaml
from lure.judge.ablations import ABLATIONS, PREFIX, ablation_table, full_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="run the ablations that have no experiment yet")
    parser.add_argument("--out", type=Path, help="write the table as CSV (and Markdown next to it)")
    args = parser.parse_args()
    done = {e.name: e.rev for e in experiments_from_exp_show(dvc_exp_show()) if e.kind == "experiment"}
    if args.run:
        baseline = flatten_params(read_yaml("params.yaml"))  # the spec every ablation departs from
        for name in ABLATIONS:
            if PREFIX + name in done:
                continue
            command = [sys.executable, "-m", "lure.cli", "exp", "run", "-n", PREFIX + name]
            for override in full_overrides(name, baseline):
                command += ["-S", override]
            print("+", " ".join(command), flush=True)
            subprocess.run(command, check=True)
        done = {e.name: e.rev for e in experiments_from_exp_show(dvc_exp_show()) if e.kind == "experiment"}
    revs = {name: done[PREFIX + name] for name in ABLATIONS if PREFIX + name in done}
    table = ablation_table(metrics_at, revs)
    print(table.to_string(index=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False, float_format="%.4f")
        args.out.with_suffix(".md").write_text(table.to_markdown(index=False, floatfmt=".4f") + "\n")


if __name__ == "__main__":
    main()
