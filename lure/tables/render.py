"""Render the papers' tables with our numbers next to theirs: ``reports/tables/<table_id>.{md,tex,csv}``.

Every cell shows four values: the paper's (exactly as printed); ours, looked up by the cell's dotted ``ours`` key in
the metrics of a run on the paper's dataset; the difference ours − paper; and the world's, looked up by its ``world``
key in the default pipeline's metrics on the simulated world (a different dataset, so no difference is taken).

Each of our two values is in one of three states: a number; "not run" (the key is mapped, and the table's ``runs``
name the spec that fills it, but its metrics are absent here); "not impl." (no key: lure does not implement the
method or metric, which the table's ``not_implemented`` explains). Paper numbers come only from
``paper_numbers.yaml``.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from lure import io
from lure.spec.tables import TablesSpec
from lure.tables.registry import Cell, PaperTable, PaperTablesError, Side, load_tables, table_ids_for

NOT_PUBLISHED = "n/a"  # the paper prints no number for this cell
NOT_RUN = "not run"  # mapped, but the run that fills it has not written its metrics here
NOT_IMPLEMENTED = "not impl."  # no key: lure does not implement the method or the metric
NO_DELTA = "—"  # no difference: the paper's or our value is not a number
WORLD = "world (simulated)"
State = Literal["value", "not_run", "not_implemented"]
STATE_TEXT: dict[State, str] = {"not_run": NOT_RUN, "not_implemented": NOT_IMPLEMENTED}
FORMATS = ("md", "tex", "csv")
PAPER_NAMES = {"lure": "LURE", "gdrt": "GDRT", "reclaif": "RecLAIF", "abpo": "ABPO"}
CSV_COLUMNS = (
    "table_id", "row", "column", "paper", "ours", "delta", "world",
    "paper_value", "ours_value", "delta_value", "world_value", "paper_bold",
    "ours_state", "world_state", "ours_key", "world_key", "ours_spec", "world_spec",
)  # fmt: skip
LEGEND = (
    "paper: as printed (**bold** as printed; / and - printed by the paper: not applicable; n/a: no number "
    "published). ours: our value on the paper's dataset. Δ = ours − paper (— when either is not a number). "
    f"world: our value for the same method and metric on the simulated world, filled by the default pipeline; a "
    f"different dataset, so no difference is taken. {NOT_RUN}: the spec that fills the cell exists but its run's "
    f"metrics are not here (the table names the spec and the command). {NOT_IMPLEMENTED}: lure does not implement "
    "the method or the metric (the table says which)."
)


@dataclass(frozen=True)
class RenderedCell:
    row: str
    column: str
    paper: str  # as printed, or NOT_PUBLISHED
    ours: str  # formatted, NOT_RUN or NOT_IMPLEMENTED
    delta: str  # formatted ours - paper, or NO_DELTA
    world: str  # formatted, NOT_RUN or NOT_IMPLEMENTED
    paper_value: float | None
    ours_value: float | None
    delta_value: float | None
    world_value: float | None
    paper_bold: bool
    ours_state: State
    world_state: State
    ours_key: str | None
    world_key: str | None
    ours_spec: str | None  # the spec whose run fills ours (None when not implemented)
    world_spec: str | None


@dataclass(frozen=True)
class RenderedTable:
    table: PaperTable
    cells: tuple[RenderedCell, ...]
    paths: dict[str, Path] = field(default_factory=dict)  # format -> written file

    @property
    def id(self) -> str:
        return self.table.id

    @property
    def n_mapped(self) -> int:
        """Cells with an ``ours`` or a ``world`` key."""
        return sum(c.ours_key is not None or c.world_key is not None for c in self.cells)

    @property
    def n_filled(self) -> int:
        """Cells with at least one of our values (ours or world)."""
        return sum(c.ours_value is not None or c.world_value is not None for c in self.cells)

    def states(self, side: Side) -> dict[State, int]:
        """How many cells of ``side`` are in each state (every state listed, zeros included)."""
        counts = Counter(getattr(c, f"{side}_state") for c in self.cells)
        return {state: counts.get(state, 0) for state in ("value", "not_run", "not_implemented")}

    def cell(self, row: str, column: str) -> RenderedCell:
        for c in self.cells:
            if c.row == row and c.column == column:
                return c
        raise KeyError(f"{self.id}: no cell ({row!r}, {column!r})")

    def to_frame(self) -> pd.DataFrame:
        """Long format, one line per cell (the CSV's content)."""
        records = [{"table_id": self.id, **c.__dict__} for c in self.cells]
        return pd.DataFrame.from_records(records, columns=list(CSV_COLUMNS))


def summarize(rendered: Sequence[RenderedTable]) -> dict[str, Any]:
    """Counts over every rendered table: what the ``tables`` stage records as its metrics."""
    cells = [c for rt in rendered for c in rt.cells]

    def side(name: Side) -> dict[str, int]:
        counts = [rt.states(name) for rt in rendered]
        return {
            "filled": sum(c["value"] for c in counts),
            "not_run": sum(c["not_run"] for c in counts),
            "not_implemented": sum(c["not_implemented"] for c in counts),
        }

    return {
        "tables": len(rendered),
        "cells": len(cells),
        "cells_with_paper_value": sum(c.paper_value is not None for c in cells),
        "cells_mapped": sum(rt.n_mapped for rt in rendered),
        "cells_filled": sum(rt.n_filled for rt in rendered),
        "ours": side("ours"),
        "world": side("world"),
    }


# ------------------------------------------------------------------------------------------------------------ metrics


def collect_metrics(metrics_dir: str | Path) -> dict[str, Any]:
    """Every ``<metrics_dir>/*.json`` as {file stem: content}; {} when the directory does not exist yet."""
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        return {}
    return {path.stem: io.read_json(path) for path in sorted(metrics_dir.glob("*.json"))}


def lookup_metric(metrics: Mapping[str, Any], key: str) -> float | None:
    """The number at dotted ``key`` ("evaluate.world.gdrt.ndcg_at_10"); None when any part of the path is missing.

    Raises TypeError when the path exists but does not lead to a number: that is a wrong mapping, not a missing value.
    """
    node: Any = metrics
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if node is None:
        return None
    if isinstance(node, bool) or not isinstance(node, numbers.Real):
        raise TypeError(f"metric {key!r} is a {type(node).__name__}, not a number")
    return node  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------------------- render


def render_tables(
    metrics: Mapping[str, Any],
    out_dir: str | Path,
    table_ids: Sequence[str] | None = None,
    *,
    decimals: int = 4,
    tables: Mapping[str, PaperTable] | None = None,
) -> list[RenderedTable]:
    """Fill every cell from ``metrics`` and write ``<out_dir>/<table_id>.{md,tex,csv}`` atomically.

    ``table_ids`` selects tables (default: all, in file order); ``tables`` replaces the registry (tests).
    """
    tables = load_tables() if tables is None else tables
    ids = list(tables) if table_ids is None else list(table_ids)
    unknown = [tid for tid in ids if tid not in tables]
    if unknown:
        raise KeyError(f"unknown table ids {unknown}; known: {list(tables)}")
    out_dir = Path(out_dir)
    rendered = []
    for tid in ids:
        filled = fill_table(tables[tid], metrics, decimals=decimals)
        writers = {"md": to_markdown, "tex": to_latex, "csv": to_csv}
        paths = {fmt: io.write_text(out_dir / f"{tid}.{fmt}", writers[fmt](filled)) for fmt in FORMATS}
        rendered.append(RenderedTable(filled.table, filled.cells, paths))
    return rendered


def render_spec(spec: TablesSpec, metrics: Mapping[str, Any], out_dir: str | Path | None) -> list[RenderedTable]:
    """Every table of ``spec.papers``: what the ``tables`` stage writes and ``lure tables`` prints.

    ``out_dir=None`` fills the tables without writing (the CLI must not rewrite the stage's DVC outputs).
    """
    tables = load_tables()
    ids = table_ids_for(spec.papers, tables)
    if out_dir is None:
        return [fill_table(tables[tid], metrics, decimals=spec.decimals) for tid in ids]
    return render_tables(metrics, out_dir, ids, decimals=spec.decimals, tables=tables)


def fill_table(table: PaperTable, metrics: Mapping[str, Any], *, decimals: int = 4) -> RenderedTable:
    """The table with ours, the difference and the world's value computed for every cell (nothing written)."""
    cells = []
    for row, column, cell in table.iter_cells():
        paper_value = None if cell.value is None else float(cell.value)
        ours_value, ours_state = _look_up(table, row, column, cell.ours, metrics)
        world_value, world_state = _look_up(table, row, column, cell.world, metrics)
        delta_value = _delta(cell, ours_value) if paper_value is not None and ours_value is not None else None
        cells.append(
            RenderedCell(
                row=row,
                column=column,
                paper=NOT_PUBLISHED if cell.paper is None else cell.paper,
                ours=STATE_TEXT.get(ours_state) or _format(ours_value, decimals),
                delta=NO_DELTA if delta_value is None else _format(delta_value, decimals, signed=True),
                world=STATE_TEXT.get(world_state) or _format(world_value, decimals),
                paper_value=paper_value,
                ours_value=None if ours_value is None else _plain(ours_value),
                delta_value=delta_value,
                world_value=None if world_value is None else _plain(world_value),
                paper_bold=cell.bold,
                ours_state=ours_state,
                world_state=world_state,
                ours_key=cell.ours,
                world_key=cell.world,
                ours_spec=None if cell.ours is None else table.run_for("ours", cell.ours).spec,
                world_spec=None if cell.world is None else table.run_for("world", cell.world).spec,
            )
        )
    return RenderedTable(table, tuple(cells))


def _look_up(
    table: PaperTable, row: str, column: str, key: str | None, metrics: Mapping[str, Any]
) -> tuple[float | None, State]:
    """Our value at ``key`` and its state: no key is "not implemented", a key without a value "not run"."""
    if key is None:
        return None, "not_implemented"
    try:
        value = lookup_metric(metrics, key)
    except TypeError as exc:
        raise PaperTablesError(f"table {table.id!r}, row {row!r}, column {column!r}: {exc}") from None
    return value, "not_run" if value is None else "value"


def _delta(cell: Cell, ours: float) -> float:
    """ours − paper; counts stay integers, anything else is computed in decimal (0.016 − 0.0152 is 0.0008)."""
    if isinstance(ours, numbers.Integral) and cell.decimals == 0:
        return int(ours) - int(cell.value)
    return float(Decimal(repr(float(ours))) - cell.value)


def _plain(value: float) -> float:
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _format(value: float, decimals: int, *, signed: bool = False) -> str:
    if isinstance(value, numbers.Integral):
        return f"{int(value):+,}" if signed else f"{int(value):,}"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    text = f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
    if float(text) == 0.0:  # no "-0.0000" / "+0.0000"
        text = f"{0.0:.{decimals}f}"
    return text


# ------------------------------------------------------------------------------------------------------------ formats


def grid(rt: RenderedTable) -> list[tuple[str, list[RenderedCell]]]:
    """Rows in printed order, each with its cells in column order."""
    width = len(rt.table.columns)
    return [(rt.cells[i].row, list(rt.cells[i : i + width])) for i in range(0, len(rt.cells), width)]


def fill_lines(rt: RenderedTable) -> list[tuple[str, str | None]]:
    """(what, command) pairs: which spec fills which cells, how many of them are filled here, and the shell command
    that fills them; then, without a command, what no spec fills and what lure does not implement."""
    t = rt.table
    lines: list[tuple[str, str | None]] = []
    for run in t.runs:
        mine = [c for c in rt.cells if getattr(c, f"{run.fills}_spec") == run.spec]
        filled = sum(getattr(c, f"{run.fills}_state") == "value" for c in mine)
        what = "ours" if run.fills == "ours" else f"{WORLD}, the default pipeline"
        rows = "every row" if run.rows == "*" else f"rows {run.rows}"
        status = f"{filled}/{len(mine)} cells filled" + ("" if filled else f", {NOT_RUN}")
        lines.append((f"{what}, {rows} ({status})", run.command))
    if not any(run.fills == "ours" for run in t.runs):
        lines.append(("ours: no spec fills this table", None))
    if not any(run.fills == "world" for run in t.runs):
        lines.append((f"{WORLD}: the default pipeline computes none of this table's quantities", None))
    if t.not_implemented:
        lines.append((f"{NOT_IMPLEMENTED}: {t.not_implemented}", None))
    return lines


def _fill_text(what: str, command: str | None) -> str:
    return f"{what}: `{command}`" if command else what


def _counts(rt: RenderedTable) -> str:
    ours, world = rt.states("ours"), rt.states("world")
    return (
        f"Of {len(rt.cells)} cells: ours {ours['value']} filled, {ours['not_run']} {NOT_RUN}, "
        f"{ours['not_implemented']} {NOT_IMPLEMENTED}; world {world['value']} filled, {world['not_run']} {NOT_RUN}, "
        f"{world['not_implemented']} {NOT_IMPLEMENTED}."
    )


def to_markdown(rt: RenderedTable) -> str:
    t = rt.table

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    header = [t.row_header] + [f"{c} {part}" for c in t.columns for part in ("paper", "ours", "Δ", "world (sim.)")]
    lines = [
        f"## {t.id}: {PAPER_NAMES[t.paper]} {t.label}",
        "",
        f"> {t.caption}",
        "",
        f"Source: {t.source}.",
        "",
        "Filled by:",
        "",
        *(f"- {_fill_text(*line)}" for line in fill_lines(rt)),
        "",
        f"Legend: {LEGEND} {_counts(rt)}",
        "",
        "| " + " | ".join(esc(h) for h in header) + " |",
        "|" + "---|" + "---:|" * (len(header) - 1),
    ]
    for label, cells in grid(rt):
        values = [label]
        for c in cells:
            values += [f"**{c.paper}**" if c.paper_bold else c.paper, c.ours, c.delta, c.world]
        lines.append("| " + " | ".join(esc(v) for v in values) + " |")
    notes = list(t.notes) + [f"{r.label}: {r.note}" for r in t.rows if r.note]
    notes += [f"{row} / {column}: {cell.note}" for row, column, cell in t.iter_cells() if cell.note]
    notes += [f"{row} / {column}: unit {cell.unit}" for row, column, cell in t.iter_cells() if cell.unit]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
    "≥": r"$\geq$", "≤": r"$\leq$", "—": "---", "–": "--", "−": "$-$", "Δ": r"$\Delta$", "§": r"\S{}",
}  # fmt: skip


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(rt: RenderedTable) -> str:
    """A booktabs table (needs \\usepackage{booktabs,graphicx}); four sub-columns per printed column."""
    t = rt.table
    n = len(t.columns)
    top = " & ".join([""] + [rf"\multicolumn{{4}}{{c}}{{{tex_escape(c)}}}" for c in t.columns])
    rules = " ".join(rf"\cmidrule(lr){{{2 + 4 * i}-{5 + 4 * i}}}" for i in range(n))
    sub = " & ".join([tex_escape(t.row_header)] + ["paper & ours & $\\Delta$ & world"] * n)
    body = []
    for label, cells in grid(rt):
        values = [tex_escape(label)]
        for c in cells:
            paper = tex_escape(c.paper)
            values += [rf"\textbf{{{paper}}}" if c.paper_bold else paper]
            values += [tex_escape(c.ours), tex_escape(c.delta), tex_escape(c.world)]
        body.append(" & ".join(values) + r" \\")
    caption = tex_escape(
        f"{PAPER_NAMES[t.paper]} {t.label}: {t.caption} (paper / ours / Δ = ours − paper / world = the same method "
        f"and metric on the simulated world; {NOT_RUN}: its spec has not run; {NOT_IMPLEMENTED}: not implemented)"
    )
    lines = [
        f"% Generated by lure.tables from lure/tables/paper_numbers.yaml ({t.id}); do not edit by hand.",
        *(f"% {_fill_text(*line)}" for line in fill_lines(rt)),
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{tab:{t.id}}}",
        r"\resizebox{\textwidth}{!}{%",
        rf"\begin{{tabular}}{{l{'rrrr' * n}}}",
        r"\toprule",
        top + r" \\",
        rules,
        sub + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def to_csv(rt: RenderedTable) -> str:
    return rt.to_frame().to_csv(index=False, lineterminator="\n")
