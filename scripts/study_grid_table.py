"""Markdown tables of a grid of seed studies written by ``lure study -S ... --out`` (one CSV per grid cell).

Why: a sensitivity study (GDRT over τ and G, docs/gdrt.md) is several ``lure study`` runs, one per cell, each
pairing the method with the baseline seed by seed. A reader wants one table: per metric, the baseline over seeds
and the paired difference method − baseline in every cell, with its interval (bold where it excludes 0), and the
distribution of a vector metric (the top-1 popularity groups) side by side. The numbers are the CSVs' own; this
only lays them out.

    python scripts/study_grid_table.py --method gdrt --baseline sft "τ 0.5, G 5=a.csv" "τ 0.1, G 5=b.csv" ...
"""

from __future__ import annotations

import argparse
import ast
import re

import pandas as pd


def load(path: str) -> pd.DataFrame:
    """One ``lure study --out`` CSV, indexed by (metric, what), per-seed values parsed."""
    frame = pd.read_csv(path)
    frame["values"] = frame["values"].map(ast.literal_eval)
    return frame.set_index(["metric", "what"])


def interval(row: pd.Series, digits: int) -> str:
    """``mean [low, high]``, bold when the interval excludes 0 (a difference whose sign the seeds agree on)."""
    text = f"{row['mean']:+.{digits}f} [{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]"
    return f"**{text}**" if row["ci_low"] > 0 or row["ci_high"] < 0 else text


def differences_table(cells: dict[str, pd.DataFrame], method: str, baseline: str, digits: int) -> str:
    """Rows: scalar metrics; columns: the baseline (mean over seeds, from the first cell) and method − baseline
    per cell."""
    first = next(iter(cells.values()))
    metrics = [m for m in dict.fromkeys(first.index.get_level_values(0)) if not re.search(r"\.\d+$", m)]  # scalars
    header = ["metric", f"{baseline} (mean over seeds)", *(f"{method} − {baseline}, {label}" for label in cells)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in metrics:
        base = first.loc[(metric, baseline)]
        cells_text = [
            interval(frame.loc[(metric, f"{method}-{baseline}")], digits) if (metric, method) in frame.index else "—"
            for frame in cells.values()
        ]
        lines.append(f"| {metric} | {base['mean']:.{digits}f} | " + " | ".join(cells_text) + " |")
    return "\n".join(lines)


def vector_table(
    cells: dict[str, pd.DataFrame], method: str, baseline: str, prefix: str, reference: str | None = None
) -> str:
    """Rows: the ``reference`` vector if given (e.g. the test targets' groups, read from the baseline's row), the
    baseline, then the method in each cell; columns: the entries ``prefix.0``, ``prefix.1`` ... (mean over seeds,
    and the per-seed values)."""
    first = next(iter(cells.values()))
    names = sorted(
        (m for m in dict.fromkeys(first.index.get_level_values(0)) if m.startswith(prefix + ".")),
        key=lambda m: int(m.rsplit(".", 1)[1]),
    )
    header = ["recommender", *(n.rsplit(".", 1)[1] for n in names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def cell(frame: pd.DataFrame, name: str, what: str) -> str:
        row = frame.loc[(name, what)]
        return f"{row['mean']:.3f} ({', '.join(f'{v:.2f}' for v in row['values'])})"

    if reference is not None:
        refs = [f"{reference}.{n.rsplit('.', 1)[1]}" for n in names]
        lines.append(f"| {reference} | " + " | ".join(cell(first, r, baseline) for r in refs) + " |")
    lines.append(f"| {baseline} | " + " | ".join(cell(first, n, baseline) for n in names) + " |")
    for label, frame in cells.items():
        lines.append(f"| {method}, {label} | " + " | ".join(cell(frame, n, method) for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cells", nargs="+", help="LABEL=CSV, one per grid cell, in column order")
    parser.add_argument("--method", default="gdrt")
    parser.add_argument("--baseline", default="sft")
    parser.add_argument("--digits", type=int, default=4)
    parser.add_argument("--vector", default="top1_group_share", help="prefix of the vector metric's entries")
    parser.add_argument("--reference", default="target_group_share", help="vector shown as the first row")
    args = parser.parse_args()
    cells = {}
    for item in args.cells:
        label, sep, path = item.rpartition("=")
        if not sep or not label:
            parser.error(f"{item!r}: expected LABEL=CSV")
        cells[label] = load(path)
    print(differences_table(cells, args.method, args.baseline, args.digits))
    first = next(iter(cells.values()))
    if any(m.startswith(args.vector + ".") for m in first.index.get_level_values(0)):
        print()
        has_reference = any(m.startswith(args.reference + ".") for m in first.index.get_level_values(0))
        reference = args.reference if has_reference else None
        print(vector_table(cells, args.method, args.baseline, args.vector, reference))


if __name__ == "__main__":
    main()
