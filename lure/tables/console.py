"""Print the paper tables to a terminal or a pipe without ever truncating a name or a number.

The layout is :func:`lure.display.print_table`'s (one mechanism for every table ``lure`` prints): the grid as
printed in the paper when it fits the console's width (the terminal's, ``COLUMNS`` when set, else 80 when piped),
else split into several tables that repeat the row labels, else one row per (row label, column). ``long=True``
asks for one row per cell with paper, ours, Δ and the world's value in columns of their own; there the two label
columns wrap to the width and the value columns never do.

In the grid each cell stacks four lines: the paper's text (``**bold**`` as printed), ours, Δ, and ``w`` followed by
the world's value. Above each table: which spec fills which rows, with its command; below the last: the legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lure.display import Column, print_table
from lure.tables.render import LEGEND, PAPER_NAMES, WORLD, RenderedTable, fill_lines, grid, summarize

WORLD_MARK = "w "  # prefix of the world's line in a grid cell (explained in the caption)
LONG_WORLD = "world (sim.)"  # header of the world's column in the long layout (explained in the caption)


def print_tables(rendered: Sequence[RenderedTable], console: Any = None, *, long: bool = False) -> None:
    """Print every table (grid, or one row per cell when ``long``), then the legend and the totals."""
    from rich.console import Console

    console = console or Console()
    for rt in rendered:
        t = rt.table
        console.print()
        console.print(Text(f"{t.id}: {PAPER_NAMES[t.paper]} {t.label}. {t.caption}", style="bold"), soft_wrap=False)
        for what, command in fill_lines(rt):
            end = ":" if command else ("" if what.endswith(".") else ".")
            console.print(Text(f"  {what}{end}"), soft_wrap=False)
            if command:
                console.print(Text(f"    {command}", style="cyan"), soft_wrap=False)
        title = escape(f"{t.id}: {PAPER_NAMES[t.paper]} {t.label}")
        if long:
            _print_long(console, rt, title)
            continue
        rows = [
            [
                escape(label),
                *(f"{_paper(c.paper, c.paper_bold)}\n{c.ours}\n{c.delta}\n{WORLD_MARK}{c.world}" for c in cells),
            ]
            for label, cells in grid(rt)
        ]
        caption = f"each cell: paper / ours / Δ (ours − paper) / {WORLD_MARK.strip()} = {WORLD}; legend below"
        keys, values = [Column(escape(t.row_header), "left")], [Column(escape(c)) for c in t.columns]
        print_table(console, title, keys, values, rows, caption=caption)
    totals = summarize(rendered)
    console.print()
    console.print(Text(f"Legend: {LEGEND}"), soft_wrap=False)
    console.print(
        Text(
            f"{totals['cells_filled']} of {totals['cells']} cells have one of our values: ours "
            f"{totals['ours']['filled']}, world {totals['world']['filled']}."
        ),
        soft_wrap=False,
    )


def _print_long(console: Any, rt: RenderedTable, title: str) -> None:
    """One row per cell. The two label columns wrap at word boundaries and the value columns never do, so each
    number stays whole on one line. When even that is wider than the console (no label word may be cut),
    :func:`lure.display.print_table` lays it out instead (split, then one row per value)."""
    cells = [
        [escape(c.row), escape(c.column), _paper(c.paper, c.paper_bold), c.ours, c.delta, c.world] for c in rt.cells
    ]
    headers = (escape(rt.table.row_header), "column", "paper", "ours", "Δ", LONG_WORLD)
    caption = f"{LONG_WORLD} = {WORLD}"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for i, header in enumerate(headers):
        if i < 2:
            table.add_column(header, overflow="fold")
        else:
            table.add_column(header, justify="right", no_wrap=True)
    for row in cells:
        table.add_row(*row)
    if _long_width(headers, cells) <= console.width:
        console.print(table)
        return
    keys = [Column(h, "left") for h in headers[:2]]
    print_table(console, title, keys, [Column(h) for h in headers[2:]], cells, caption=caption)


def _long_width(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> int:
    """Characters the long table needs at least: the longest word of each label column (they wrap at spaces), the
    widest value of each value column (they do not wrap), and Rich's padding and borders (as lure.display counts)."""
    columns = list(zip(headers, *cells, strict=True))
    labels = [max(len(word) for text in column for word in text.split()) for column in columns[:2]]
    values = [max(len(text) for text in column) for column in columns[2:]]
    return sum(labels) + sum(values) + 3 * len(columns) + 1


def _paper(text: str, bold: bool) -> str:
    return f"**{text}**" if bold else text
