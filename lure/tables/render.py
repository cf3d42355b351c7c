"""Render the papers' tables with our numbers next to theirs: ``reports/tables/<table_id>.{md,tex,csv}``.

Every cell shows three values: the paper's (exactly as printed), ours (looked up in the pipeline metrics by the cell's
dotted ``ours`` key) and the difference ours − paper. "—" marks a value we do not have (metric not mapped, or its
stage has not run) and "n/a" a number the paper does not publish. Paper numbers come only from ``paper_numbers.yaml``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from lure import io
from lure.spec.tables import TablesSpec
from lure.tables.registry import PaperTable, PaperTablesError, load_tables, table_ids_for

MISSING = "—"  # we have no value (not mapped, or not computed yet)
NOT_PUBLISHED = "n/a"  # the paper prints no number for this cell
FORMATS = ("md", "tex", "csv")
PAPER_NAMES = {"lure": "LURE", "gdrt": "GDRT", "reclaif": "RecLAIF", "abpo": "ABPO"}
CSV_COLUMNS = (
    "table_id", "row", "column", "paper", "ours", "delta",
    "paper_value", "ours_value", "delta_value", "paper_bold", "ours_key",
)  # fmt: skip


@dataclass(frozen=True)
class RenderedCell:
    row: str
    column: str
    paper: str  # as printed, or NOT_PUBLISHED
    ours: str  # formatted, or MISSING
    delta: str  # formatted ours - paper, or MISSING
    paper_value: float | None
    ours_value: float | None
    delta_value: float | None
    paper_bold: bool
    ours_key: str | None


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
        return sum(c.ours_key is not None for c in self.cells)

    @property
    def n_filled(self) -> int:
        return sum(c.ours_value is not None for c in self.cells)

    def cell(self, row: str, column: str) -> RenderedCell:
        for c in self.cells:
            if c.row == row and c.column == column:
                return c
        raise KeyError(f"{self.id}: no cell ({row!r}, {column!r})")

    def to_frame(self) -> pd.DataFrame:
        """Long format, one line per cell (the CSV's content)."""
        records = [{"table_id": self.id, **c.__dict__} for c in self.cells]
        return pd.DataFrame.from_records(records, columns=list(CSV_COLUMNS))


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
    """The table with ours and the difference computed for every cell (nothing written)."""
    cells = []
    for row, column, cell in table.iter_cells():
        paper_value = None if cell.value is None else float(cell.value)
        ours_value = None
        if cell.ours is not None:
            try:
                ours_value = lookup_metric(metrics, cell.ours)
            except TypeError as exc:
                raise PaperTablesError(f"table {table.id!r}, row {row!r}, column {column!r}: {exc}") from None
        delta_value = None
        if paper_value is not None and ours_value is not None:
            # Counts stay integers; anything else is a float.
            exact = isinstance(ours_value, numbers.Integral) and cell.decimals == 0
            if exact:
                delta_value = int(ours_value) - int(cell.value)
            else:  # in decimal, so 0.016 - 0.0152 is 0.0008 and not 0.0008000000000000004
                delta_value = float(Decimal(repr(float(ours_value))) - cell.value)
        cells.append(
            RenderedCell(
                row=row,
                column=column,
                paper=NOT_PUBLISHED if cell.paper is None else cell.paper,
                ours=_format(ours_value, decimals),
                delta=_format(delta_value, decimals, signed=True),
                paper_value=paper_value,
                ours_value=None if ours_value is None else _plain(ours_value),
                delta_value=delta_value,
                paper_bold=cell.bold,
                ours_key=cell.ours,
            )
        )
    return RenderedTable(table, tuple(cells))


def _plain(value: float) -> float:
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _format(value: float | None, decimals: int, *, signed: bool = False) -> str:
    if value is None:
        return MISSING
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


def _grid(rt: RenderedTable) -> list[tuple[str, list[RenderedCell]]]:
    """Rows in printed order, each with its cells in column order."""
    width = len(rt.table.columns)
    return [(rt.cells[i].row, list(rt.cells[i : i + width])) for i in range(0, len(rt.cells), width)]


def _legend(rt: RenderedTable) -> str:
    return (
        f"Each column: paper (as printed{'; bold as printed' if any(c.paper_bold for c in rt.cells) else ''}), "
        f"ours (pipeline metrics), Δ = ours − paper. {MISSING} = we have no value yet; {NOT_PUBLISHED} = the paper "
        f"publishes no number. Our values for {rt.n_filled}/{len(rt.cells)} cells."
    )


def to_markdown(rt: RenderedTable) -> str:
    t = rt.table

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    header = [t.row_header] + [f"{c} {part}" for c in t.columns for part in ("paper", "ours", "Δ")]
    lines = [
        f"## {t.id}: {PAPER_NAMES[t.paper]} {t.label}",
        "",
        f"> {t.caption}",
        "",
        f"Source: {t.source}. {_legend(rt)}",
        "",
        "| " + " | ".join(esc(h) for h in header) + " |",
        "|" + "---|" + "---:|" * (len(header) - 1),
    ]
    for label, cells in _grid(rt):
        values = [label]
        for c in cells:
            values += [f"**{c.paper}**" if c.paper_bold else c.paper, c.ours, c.delta]
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
    """A booktabs table (needs \\usepackage{booktabs,graphicx}); three sub-columns per printed column."""
    t = rt.table
    n = len(t.columns)
    top = " & ".join([""] + [rf"\multicolumn{{3}}{{c}}{{{tex_escape(c)}}}" for c in t.columns])
    rules = " ".join(rf"\cmidrule(lr){{{2 + 3 * i}-{4 + 3 * i}}}" for i in range(n))
    sub = " & ".join([tex_escape(t.row_header)] + ["paper & ours & $\\Delta$"] * n)
    body = []
    for label, cells in _grid(rt):
        values = [tex_escape(label)]
        for c in cells:
            paper = tex_escape(c.paper)
            values += [rf"\textbf{{{paper}}}" if c.paper_bold else paper, tex_escape(c.ours), tex_escape(c.delta)]
        body.append(" & ".join(values) + r" \\")
    caption = tex_escape(f"{PAPER_NAMES[t.paper]} {t.label}: {t.caption} (paper / ours / Δ = ours − paper)")
    lines = [
        f"% Generated by lure.tables from lure/tables/paper_numbers.yaml ({t.id}); do not edit by hand.",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{tab:{t.id}}}",
        r"\resizebox{\textwidth}{!}{%",
        rf"\begin{{tabular}}{{l{'rrr' * n}}}",
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


# ------------------------------------------------------------------------------------------------------------ console


def print_tables(rendered: Sequence[RenderedTable], console: Any = None) -> None:
    """One rich table per paper table; each cell stacks paper / ours / Δ on three lines."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    for rt in rendered:
        t = rt.table
        table = Table(
            title=f"{t.id}: {PAPER_NAMES[t.paper]} {t.label}",
            caption=f"each cell: paper / ours / Δ(ours − paper) · ours for {rt.n_filled}/{len(rt.cells)} cells",
            show_lines=True,
        )
        table.add_column(Text(t.row_header), style="bold")
        for column in t.columns:
            table.add_column(Text(column), justify="right")
        for label, cells in _grid(rt):
            texts = []
            for c in cells:
                text = Text(c.paper, style="bold" if c.paper_bold else "")
                text.append("\n" + c.ours, style="dim" if c.ours == MISSING else "cyan")
                text.append("\n" + c.delta, style="dim" if c.delta == MISSING else "magenta")
                texts.append(text)
            table.add_row(Text(label), *texts)
        console.print(table)
