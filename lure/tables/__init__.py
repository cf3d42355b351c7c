"""The papers' published tables, rendered next to our numbers (see docs/paper-tables.md).

``paper_numbers.yaml`` holds the papers' numbers (the only place they are written down); ``registry`` validates it;
``render`` looks up our counterpart of every cell in the pipeline metrics and writes ``<table_id>.{md,tex,csv}``.
"""

from lure.tables.registry import (
    DEFAULT_PATH,
    Cell,
    PaperTable,
    PaperTablesError,
    Row,
    load_tables,
    parse_tables,
    table_ids_for,
)
from lure.tables.render import (
    MISSING,
    NOT_PUBLISHED,
    RenderedCell,
    RenderedTable,
    collect_metrics,
    fill_table,
    lookup_metric,
    print_tables,
    render_spec,
    render_tables,
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
    "MISSING",
    "NOT_PUBLISHED",
    "REQUIRED_TABLE_IDS",
    "Cell",
    "PaperTable",
    "PaperTablesError",
    "RenderedCell",
    "RenderedTable",
    "Row",
    "collect_metrics",
    "fill_table",
    "load_tables",
    "lookup_metric",
    "parse_tables",
    "print_tables",
    "render_spec",
    "render_tables",
    "table_ids_for",
]
