"""Load and validate ``paper_numbers.yaml``, the single transcription of the papers' published numbers.

Every error names the table (and, where it applies, the row and column) so a typo in the data file is found at once.
The schema is described in ``docs/paper-tables.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lure.io import YamlError, read_yaml
from lure.spec.tables import PAPERS, PaperId

DEFAULT_PATH = Path(__file__).with_name("paper_numbers.yaml")
SCHEMA_VERSION = 1

# Texts the papers print in a cell instead of a number ("not applicable").
NOT_APPLICABLE_MARKS = frozenset({"/", "-"})

# A printed number: optional sign (ASCII or Unicode minus), thousands separators, decimals and % sign.
_NUMBER = re.compile(r"^(?P<sign>[+\-−]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?P<pct>%?)$")
# A dotted metric key: stage.key.key...; segments are anything but dots and whitespace.
_METRIC_KEY = re.compile(r"^[^.\s]+(?:\.[^.\s]+)*$")


class PaperTablesError(ValueError):
    """``paper_numbers.yaml`` (or a mapping of a cell to a metric) is malformed; the message names the table."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cell(_Model):
    """One printed cell: the paper's text and the metric key of our counterpart."""

    paper: str | None = Field(
        description="The printed text exactly ('0.0500', '47,117', '/', '-'); null where the paper prints no number."
    )
    ours: str | None = Field(
        description="Dotted path into the metrics of a run on the paper's dataset; null when lure does not implement "
        "the method or metric."
    )
    world: str | None = Field(
        None,
        description="Dotted path into the metrics of the default pipeline on the simulated world, for the same method "
        "and metric; null (the default) when the world run does not compute it.",
    )
    bold: bool = Field(False, description="Printed in bold (only where the extracted text shows it).")
    unit: str | None = Field(None, description="Unit of the printed value when not a plain ratio/score.")
    note: str | None = Field(None, description="Judgement made while transcribing this cell.")

    @field_validator("paper", mode="before")
    @classmethod
    def _paper_is_text(cls, value: Any) -> Any:
        if isinstance(value, int | float):  # bool included; pydantic reports only ValueError as a validation error
            raise ValueError(  # noqa: TRY004
                f'must be a quoted string exactly as printed (e.g. "0.0500"), got the bare number {value!r}, '
                "whose printed precision is lost"
            )
        return value

    @field_validator("paper")
    @classmethod
    def _paper_is_number_or_mark(cls, value: str | None) -> str | None:
        if value is not None and value not in NOT_APPLICABLE_MARKS and _NUMBER.match(value) is None:
            raise ValueError(
                f"{value!r} is neither a printed number nor a not-applicable mark {sorted(NOT_APPLICABLE_MARKS)}"
            )
        return value

    @field_validator("ours", "world")
    @classmethod
    def _ours_is_dotted_key(cls, value: str | None) -> str | None:
        if value is not None and _METRIC_KEY.match(value) is None:
            raise ValueError(f"{value!r} is not a dotted metric key like 'evaluate.world.gdrt.ndcg_at_10'")
        return value

    @property
    def value(self) -> Decimal | None:
        """The printed number (in the printed unit: '24.29%' gives 24.29); None for marks and unpublished cells."""
        match = _NUMBER.match(self.paper or "")
        if match is None:
            return None
        sign = "-" if match["sign"] in ("-", "−") else ""
        digits = match["int"].replace(",", "") + (f".{match['frac']}" if match["frac"] else "")
        try:
            return Decimal(sign + digits)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
            return None

    @property
    def decimals(self) -> int | None:
        """Decimal places as printed ('0.0500' gives 4, '47,117' gives 0); None when no number is printed."""
        match = _NUMBER.match(self.paper or "")
        if match is None:
            return None
        return len(match["frac"] or "")


Side = Literal["ours", "world"]


class Run(_Model):
    """A spec whose pipeline run fills cells of a table: every metric key under ``metrics`` comes from its run."""

    fills: Side = Field(description="'ours' (a run on the paper's dataset) or 'world' (the default simulated world).")
    metrics: str = Field(description="Dotted prefix of the keys this run writes, e.g. 'llm-report.amazon-2023-Books'.")
    spec: str = Field(pattern=r"^specs/[^/\s]+\.yaml$", description="The spec file, e.g. 'specs/gdrt-books.yaml'.")
    rows: str = Field("*", min_length=1, description="Glob over the row labels it fills, e.g. 'Book / *'.")

    @field_validator("metrics")
    @classmethod
    def _metrics_is_dotted_key(cls, value: str) -> str:
        if _METRIC_KEY.match(value) is None:
            raise ValueError(f"{value!r} is not a dotted metric key prefix like 'llm-report.world'")
        return value

    @property
    def command(self) -> str:
        """The shell command that runs this spec's pipeline and so fills its cells."""
        return f"lure spec use {self.spec} && dvc repro"

    def fills_key(self, key: str) -> bool:
        return key == self.metrics or key.startswith(self.metrics + ".")


class Row(_Model):
    label: str = Field(min_length=1, description="Row label as printed; levels flattened as 'Outer / Inner'.")
    note: str | None = Field(None, description="Judgement made while transcribing this row.")
    cells: dict[str, Cell] = Field(description="One cell per column, keyed by the column label.")


class PaperTable(_Model):
    """One published table (or set of numbers quoted in a paper's text)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="'<paper>_<name>', e.g. 'gdrt_table2'.")
    paper: PaperId
    label: str = Field(min_length=1, description="What the paper calls it, e.g. 'Table 2'.")
    caption: str = Field(min_length=1, description="Caption as printed.")
    source: str = Field(min_length=1, description="Where in the paper.")
    row_header: str = Field(min_length=1, description="Header of the row-label column.")
    columns: list[str] = Field(min_length=1, description="Column labels; levels flattened as 'Outer / Inner'.")
    notes: list[str] = Field(default_factory=list, description="Transcription judgement calls for the table.")
    runs: list[Run] = Field(
        default_factory=list, description="The specs whose runs fill its cells; every mapped key names one."
    )
    not_implemented: str | None = Field(
        None, description="What lure does not implement here (required when a cell has no 'ours' or 'world' key)."
    )
    rows: list[Row] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> PaperTable:
        if not self.id.startswith(f"{self.paper}_"):
            raise ValueError(f"id must start with the paper name '{self.paper}_'")
        for what, labels in (("column", self.columns), ("row", [r.label for r in self.rows])):
            duplicates = sorted({label for label in labels if labels.count(label) > 1})
            if duplicates:
                raise ValueError(f"{what} labels listed more than once: {duplicates}")
        for row in self.rows:
            missing = [c for c in self.columns if c not in row.cells]
            extra = [c for c in row.cells if c not in self.columns]
            if missing or extra:
                raise ValueError(
                    f"row {row.label!r}: cells must match the columns; missing {missing}, not a column {extra}"
                )
        self._check_runs()
        return self

    def _check_runs(self) -> None:
        """Every mapped key is filled by exactly one run whose rows glob matches its row; every run fills a cell;
        an unmapped cell is explained by ``not_implemented``."""
        used: set[int] = set()
        unmapped = False
        for row, column, cell in self.iter_cells():
            for side in ("ours", "world"):
                key = getattr(cell, side)
                if key is None:
                    unmapped = True
                    continue
                matches = [i for i, run in enumerate(self.runs) if run.fills == side and run.fills_key(key)]
                where = f"row {row!r}, column {column!r}: {side} key {key!r}"
                if len(matches) != 1:
                    found = "no run" if not matches else f"{len(matches)} runs"
                    raise ValueError(f"{where} is filled by {found}; list exactly one in 'runs' (fills: {side})")
                run = self.runs[matches[0]]
                if not fnmatchcase(row, run.rows):
                    raise ValueError(f"{where} comes from {run.spec}, whose rows {run.rows!r} do not include this row")
                used.add(matches[0])
        idle = [run.spec for i, run in enumerate(self.runs) if i not in used]
        if idle:
            raise ValueError(f"runs that fill no cell: {idle}")
        if unmapped and not self.not_implemented:
            raise ValueError("some cells have no 'ours' or 'world' key: say why in 'not_implemented'")

    def run_for(self, side: Side, key: str) -> Run:
        """The run that fills ``key`` on ``side`` (validation guarantees exactly one)."""
        return next(run for run in self.runs if run.fills == side and run.fills_key(key))

    def cell(self, row: str, column: str) -> Cell:
        for r in self.rows:
            if r.label == row:
                if column not in r.cells:
                    raise KeyError(f"{self.id}: no column {column!r}; columns: {self.columns}")
                return r.cells[column]
        raise KeyError(f"{self.id}: no row {row!r}; rows: {[r.label for r in self.rows]}")

    def iter_cells(self) -> Iterator[tuple[str, str, Cell]]:
        """(row label, column label, cell) in printed order: row by row, columns left to right."""
        for row in self.rows:
            for column in self.columns:
                yield row.label, column, row.cells[column]


def load_tables(path: str | os.PathLike[str] = DEFAULT_PATH) -> dict[str, PaperTable]:
    """Read and validate the data file; returns {table id: table} in file order."""
    path = Path(path)
    try:
        data = read_yaml(path)
    except YamlError as exc:  # a syntax error or a duplicate key: the message names the file and the line
        raise PaperTablesError(str(exc)) from None
    return parse_tables(data, source=str(path))


def parse_tables(data: Any, source: str = "<data>") -> dict[str, PaperTable]:
    """Validate already-parsed YAML content (a mapping with ``schema_version`` and ``tables``)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("tables"), list):
        raise PaperTablesError(f"{source}: expected a mapping with a 'tables' list")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise PaperTablesError(f"{source}: schema_version must be {SCHEMA_VERSION}, got {data.get('schema_version')!r}")
    unknown = sorted(set(data) - {"schema_version", "tables"})
    if unknown:
        raise PaperTablesError(f"{source}: unknown top-level keys {unknown}")
    tables: dict[str, PaperTable] = {}
    for index, raw in enumerate(data["tables"]):
        name = raw.get("id") if isinstance(raw, Mapping) and raw.get("id") else f"#{index}"
        try:
            table = PaperTable.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(_describe(err, raw) for err in exc.errors())
            raise PaperTablesError(f"{source}: table {name!r}: {problems}") from None
        if table.id in tables:
            raise PaperTablesError(f"{source}: table {table.id!r} is defined more than once")
        tables[table.id] = table
    return tables


def table_ids_for(papers: Iterable[PaperId], tables: Mapping[str, PaperTable]) -> list[str]:
    """Ids of every table of the given papers, papers in the given order, tables in file order."""
    papers = list(papers)
    unknown = [p for p in papers if p not in PAPERS]
    if unknown:
        raise PaperTablesError(f"unknown papers {unknown}; known: {list(PAPERS)}")
    return [tid for paper in papers for tid, table in tables.items() if table.paper == paper]


def _describe(error: Mapping[str, Any], raw: Any) -> str:
    """A Pydantic error with row indices replaced by row labels: "row 'Toy / NDCG@5 ↑', column 'SFT', paper: ..."."""
    loc: Sequence[Any] = error.get("loc", ())
    parts: list[str] = []
    i = 0
    while i < len(loc):
        key = loc[i]
        if key == "rows" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            parts.append(f"row {_row_label(raw, loc[i + 1])}")
            i += 2
        elif key == "cells" and i + 1 < len(loc):
            parts.append(f"column {loc[i + 1]!r}")
            i += 2
        else:
            parts.append(str(key))
            i += 1
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{', '.join(parts)}: {message}" if parts else message


def _row_label(raw: Any, index: int) -> str:
    try:
        label = raw["rows"][index]["label"]
    except (KeyError, IndexError, TypeError):
        return f"#{index}"
    return repr(label) if isinstance(label, str) else f"#{index}"
