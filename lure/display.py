"""What the CLI and the stages print: tables that never truncate a name or a number, and progress that stays readable
when piped (:func:`progress`).

Rich shrinks a table that is wider than the console and cuts cells with "…", which turns ``0.0239`` into ``0.0…``
and ``sasrec`` into ``SASR…``. :func:`print_table` measures the table first: when it fits, it prints it as is; when
it does not, it splits the value columns into several tables that each fit, every one repeating the key columns;
when even one value column does not fit beside the keys, it switches to the long layout (one row per key, column and
value). Cells that are still wider than the console fold onto the next line instead of being cut.

The width is the console's: the terminal's width, ``COLUMNS`` when set, else 80 when piped (Rich's default), so a
table written to a file reads the same as at an 80-column terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from rich.console import Console
from rich.table import Table

#: Columns Rich adds around each cell (one space of padding either side plus the border).
_CELL_OVERHEAD = 3
#: Seconds between two progress lines when stderr is not a terminal (a log file stays a few lines long).
PIPED_PROGRESS_INTERVAL = 30.0

T = TypeVar("T")


def progress(
    items: Sequence[T] | Iterable[T],
    description: str,
    total: int | None = None,
    interval: float = PIPED_PROGRESS_INTERVAL,
    status: Callable[[], str] | None = None,
) -> Iterator[T]:
    """Iterate ``items`` showing progress on stderr: a live Rich bar on a terminal (removed when done); when piped,
    one plain line every ``interval`` seconds ("ranking (exact): 96/500 (19 %), 31 s") and none for work that ends
    sooner, so a log shows that a long stage is alive without filling up.

    ``status``, when given, is called after each item for counts the bar alone cannot show ("12 cached, 1 failed"):
    it follows the bar on a terminal and ends each piped line ("…, 31 s; 12 cached, 1 failed").
    """
    total = total if total is not None else (len(items) if isinstance(items, Sequence) else None)
    if sys.stderr.isatty():
        from rich.progress import Progress, TextColumn, track

        if status is None:
            yield from track(items, description=description, total=total, transient=True, console=Console(stderr=True))
            return
        columns = (*Progress.get_default_columns(), TextColumn("{task.fields[status]}"))
        with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
            task = bar.add_task(description, total=total, status=status())
            for item in items:
                yield item
                bar.update(task, advance=1, status=status())
        return
    start = last = time.monotonic()
    for done, item in enumerate(items, start=1):
        yield item
        now = time.monotonic()
        if now - last >= interval:
            last = now
            share = f"/{total} ({100 * done / total:.0f} %)" if total else ""
            extra = f"; {status()}" if status is not None else ""
            print(f"{description}: {done}{share}, {now - start:.0f} s{extra}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Column:
    """A column: its header and how its cells are aligned."""

    header: str
    justify: str = "right"


def table_width(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """Characters the table needs on one line per row: widest cell of each column plus Rich's padding and borders."""
    widths = [len(h) for h in headers]
    for row in rows:
        for j, cell in enumerate(row):
            widths[j] = max(widths[j], *(len(line) for line in cell.split("\n")))
    return sum(widths) + _CELL_OVERHEAD * len(widths) + 1


def print_table(
    console: Console,
    title: str,
    keys: Sequence[Column],
    values: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    caption: str | None = None,
) -> None:
    """Print ``rows`` (key cells, then value cells, all already formatted) so that nothing is truncated.

    ``soft_wrap=False`` on every print: a console made with ``soft_wrap=True`` (the CLI's) would otherwise let a
    long title or caption run past the terminal's width."""
    n_keys = len(keys)
    width = console.width
    all_headers = [c.header for c in (*keys, *values)]
    if table_width(all_headers, rows) <= width or not values:
        console.print(_table(title, [*keys, *values], rows, caption), soft_wrap=False)
        return
    key_rows = [r[:n_keys] for r in rows]
    chunks: list[list[int]] = []
    for j in range(len(values)):
        candidate = [*(chunks[-1] if chunks else []), j]
        headers = [c.header for c in keys] + [values[k].header for k in candidate]
        cells = [[*kr, *(r[n_keys + k] for k in candidate)] for kr, r in zip(key_rows, rows, strict=True)]
        if chunks and table_width(headers, cells) <= width:
            chunks[-1] = candidate
        else:
            chunks.append([j])
    single = [[c.header for c in keys] + [values[k].header] for k in range(len(values))]
    fits_alone = all(
        table_width(h, [[*kr, r[n_keys + k]] for kr, r in zip(key_rows, rows, strict=True)]) <= width
        for k, h in enumerate(single)
    )
    if fits_alone:
        for i, chunk in enumerate(chunks):
            part = f" ({i + 1}/{len(chunks)})" if len(chunks) > 1 else ""
            cells = [[*r[:n_keys], *(r[n_keys + k] for k in chunk)] for r in rows]
            console.print(
                _table(title + part, [*keys, *(values[k] for k in chunk)], cells, caption), soft_wrap=False
            )  # captions and titles wrap too
        return
    long_rows = [[*r[:n_keys], values[k].header, r[n_keys + k]] for r in rows for k in range(len(values))]
    console.print(
        _table(title, [*keys, Column("metric", "left"), Column("value")], long_rows, caption), soft_wrap=False
    )  # captions and titles wrap too


def _table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], caption: str | None) -> Table:
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for column in columns:
        table.add_column(column.header, justify=column.justify, overflow="fold")  # fold, never "…"
    for row in rows:
        table.add_row(*row)
    return table
