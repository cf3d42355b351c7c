"""Print, per zoo model, each estimator's mean error against the world's truth and its z-score (docs/evaluation.md).

    python scripts/estimand_check.py --seed 3 --users 4000 [--flat]

One world, the five classic models fitted on its training log, the TRUE evaluation-round propensities, no DVC:
the same functions as ``tests/test_estimand.py``. d_u = est_u - truth_u over the estimator's users;
z = mean / (sd / sqrt n).
"""

from __future__ import annotations

import argparse

import numpy as np

from lure.data.prepare import world_interactions
from lure.data.world import generate_world
from lure.evaluation import ESTIMATORS, zoo_per_user
from lure.models.zoo import build_model, top_k
from lure.spec.source import WorldSpec

ZOO = ("random", "popularity", "itemknn", "als", "bpr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--flat",
        action="store_true",
        help="replace the true propensities by their mean (a wrong model: IPS must then fail the z-test)",
    )
    args = parser.parse_args()
    spec = WorldSpec(name="world", n_users=args.users)
    world = generate_world(spec, seed=args.seed)
    train, test = world_interactions(world)
    users = np.unique(train["user_id"].to_numpy())
    test = test[test["user_id"].isin(users)].reset_index(drop=True)
    lists = {
        n: top_k(build_model(n).fit(train, spec.n_users, spec.n_items, args.seed), users, train, args.k) for n in ZOO
    }
    pi = world.exposure_prob[test["user_id"].to_numpy(), test["item_id"].to_numpy()].astype(np.float64)
    if args.flat:
        pi = np.full(len(pi), pi.mean())
    per = zoo_per_user(lists, test, pi, [args.k], train, world.relevance, None, population=users)
    metric = f"recall_at_{args.k}"
    print(f"world seed {args.seed}, {args.users} users, {len(test)} held-out clicks; {metric}: error (z)")
    print(f"{'model':<12}{'truth':>9}" + "".join(f"{e:>22}" for e in ESTIMATORS))
    for model in ZOO:
        cells = []
        for est in ESTIMATORS:
            at = np.searchsorted(per.users["truth"], per.users[est])
            d = per.values[model][est][metric] - per.values[model]["truth"][metric][at]
            cells.append(f"{d.mean():+.4f} ({d.mean() / (d.std(ddof=1) / np.sqrt(len(d))):+6.1f})")
        print(f"{model:<12}{per.values[model]['truth'][metric].mean():>9.4f}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
