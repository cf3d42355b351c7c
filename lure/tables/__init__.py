"""The papers' published tables, rendered next to our numbers (see docs/paper-tables.md).

``paper_numbers.yaml`` holds the papers' numbers (the only place they are written down); ``registry`` validates it;
``render`` looks up our two counterparts of every cell (ours on the paper's dataset, the simulated world's) in the
pipeline metrics and writes ``<table_id>.{md,tex,csv}``; ``console`` prints them without truncating anything.

Every module is imported here, so the ``tables`` stage's derived code dependency is the whole ``lure/tables``
directory, ``paper_numbers.yaml`` included (docs/pipeline.md, "Code dependencies").
"""

from lure.tables.console import print_tables
from lure.tables.registry import (
    DEFAULT_PATH,
    Cell,
    PaperTable,
    PaperTablesError,
    Row,
    Run,
    load_tables,
    parse_tables,
    table_ids_for,
)
from lure.tables.render import (
    NO_DELTA,
    NOT_IMPLEMENTED,
    NOT_PUBLISHED,
    NOT_RUN,
    WORLD,
    RenderedCell,
    RenderedTable,
    collect_metrics,
    fill_table,
    lookup_metric,
    render_spec,
    render_tables,
    summarize,
)

REQUIRED_TABLE_IDS = (
    "lure_table1",
    "lure_sec43",
    "gdrt_table2",
    "gdrt_table3",
    "reclaif_table2",
    "reclaif_table3",
    "abpo_comparison",
)

__all__ = [
    "DEFAULT_PATH",
    "NOT_IMPLEMENTED",
    "NOT_PUBLISHED",
    "NOT_RUN",
    "NO_DELTA",
    "REQUIRED_TABLE_IDS",
    "WORLD",
    "Cell",
    "PaperTable",
    "PaperTablesError",
    "RenderedCell",
    "RenderedTable",
    "Row",
    "Run",
    "collect_metrics",
    "fill_table",
    "load_tables",
    "lookup_metric",
    "parse_tables",
    "print_tables",
    "render_spec",
    "render_tables",
    "summarize",
    "table_ids_for",
]
