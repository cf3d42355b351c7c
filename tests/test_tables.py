"""Paper tables: the transcription of the papers' numbers, its validation, and the rendering next to ours."""

from __future__ import annotations

import copy
import io as stdio
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError
from rich.console import Console

from lure.spec.tables import TablesSpec
from lure.tables import (
    DEFAULT_PATH,
    MISSING,
    NOT_PUBLISHED,
    REQUIRED_TABLE_IDS,
    PaperTablesError,
    collect_metrics,
    load_tables,
    parse_tables,
    print_tables,
    render_tables,
    table_ids_for,
)


@pytest.fixture(scope="module")
def tables():
    return load_tables()


# ------------------------------------------------------------------------------------------------- the data file


def test_every_required_table_exists_with_its_printed_shape(tables):
    shapes = {tid: (len(t.rows), len(t.columns)) for tid, t in tables.items()}
    assert shapes == {
        "lure_table1": (6, 2),
        "lure_sec43": (3, 1),
        "gdrt_table2": (18, 9),
        "gdrt_table3": (6, 4),
        "reclaif_table2": (7, 4),
        "reclaif_table3": (4, 10),
        "abpo_comparison": (4, 2),
    }
    assert set(REQUIRED_TABLE_IDS) == set(tables)


# (table, row, column, the text printed in the paper)
PRINTED = [
    ("lure_table1", "ALL", "PairAUC_IPS", "0.445"),
    ("lure_table1", "ALL", "RJS", "-0.110"),
    ("lure_table1", "pop_bin=1", "PairAUC_IPS", "0.500"),
    ("lure_table1", "pop_bin=1", "RJS", "0.000"),
    ("lure_table1", "pop_bin=4", "RJS", "-0.161"),
    ("lure_sec43", "Accepted interactions", "Value", "47,117"),
    ("lure_sec43", "Accept ratio", "Value", "0.98"),
    ("lure_sec43", "Tail ratio (pop_bin ≥ 3)", "Value", "0.607"),
    ("gdrt_table2", "Toy / NDCG@5 ↑", "SASRec", "0.0057"),
    ("gdrt_table2", "Toy / NDCG@10 ↑", "GDRT", "0.0203"),
    ("gdrt_table2", "Clothing / DGU@5 ↓", "Reweight", "0.7988"),
    ("gdrt_table2", "Book / HIT@10 ↑", "D3", "0.0240"),
    ("gdrt_table2", "Book / MGU@5 ↓", "DROS", "/"),
    ("gdrt_table2", "Toy / NDCG@5 ↑", "SASRec++", "0.0120"),
    ("gdrt_table3", "MSL", "Toy / NDCG@5", "0.0198"),
    ("gdrt_table3", "LLaRA+GDRT", "Clothing / DGU@5", "0.2320"),
    ("gdrt_table3", "A-LLM", "Toy / DGU@5", "0.6122"),
    ("reclaif_table2", "Retrieval-Based / BM25", "Relevance / NDCG@5", "0.7335"),
    ("reclaif_table2", "Retrieval-Based / BLAIR", "Expl", "-"),
    ("reclaif_table2", "LLM-Based / Qwen2.5-7B-Instruct", "Relevance / NDCG@5", "0.7700"),
    ("reclaif_table2", "RecLAIF", "Expl", "88.90"),
    ("reclaif_table3", "Traditional / SASRec", "Beauty / ValidRatio", "1.0000"),
    ("reclaif_table3", "LLM-Based / Mistral-7B-Instruct", "Beauty / ValidRatio", "0.6047"),
    ("reclaif_table3", "LLM-Based / Claude", "Beauty / ValidRatio", "0.9921"),
    ("reclaif_table3", "LLM-Based / Claude", "LastFM / Diversity", "0.7676"),
    ("reclaif_table3", "Ours / RecLAIF", "LastFM / NDCG@3", "0.6517"),
]


@pytest.mark.parametrize(("table_id", "row", "column", "printed"), PRINTED)
def test_transcribed_numbers_match_the_paper(tables, table_id, row, column, printed):
    assert tables[table_id].cell(row, column).paper == printed


def test_spot_checks_cover_every_table_with_numbers(tables):
    for tid, table in tables.items():
        if table.paper != "abpo":
            assert sum(t == tid for t, *_ in PRINTED) >= 3, tid


def test_printed_precision_is_kept(tables):
    cell = tables["gdrt_table2"].cell("Toy / NDCG@5 ↑", "SASRec++")
    assert (cell.paper, cell.decimals, float(cell.value)) == ("0.0120", 4, 0.012)
    count = tables["lure_sec43"].cell("Accepted interactions", "Value")
    assert (count.value, count.decimals) == (47117, 0)
    assert tables["gdrt_table2"].cell("Toy / MGU@5 ↓", "SASRec").value is None


def test_abpo_layout_has_no_paper_numbers(tables):
    table = tables["abpo_comparison"]
    assert [r.label for r in table.rows] == ["Prior policy (before update)", "GRPO", "ABPO w/o self-certainty", "ABPO"]
    assert all(cell.paper is None for _, _, cell in table.iter_cells())


def test_lure_rjs_is_twice_pairauc_minus_one(tables):
    # tau_w aggregates tau_u = 2 a_u - 1 with the PairAUC weights, so RJS = 2 PairAUC - 1 up to printed rounding.
    for row in tables["lure_table1"].rows:
        auc, rjs = float(row.cells["PairAUC_IPS"].value), float(row.cells["RJS"].value)
        assert abs(rjs - (2 * auc - 1)) <= 0.0015, row.label


def test_gdrt_table2_bold_is_the_best_of_each_row(tables):
    for row in tables["gdrt_table2"].rows:
        numbers = {col: float(c.value) for col, c in row.cells.items() if c.value is not None}
        best = max(numbers.values()) if row.label.endswith("↑") else min(numbers.values())
        bold = [col for col, c in row.cells.items() if c.bold]
        assert bold == ["GDRT"] and numbers["GDRT"] == best, row.label


def test_reclaif_numbers_quoted_in_the_text_match_table2(tables):
    quoted = {"Retrieval-Based / BM25": "0.7335", "Retrieval-Based / BLAIR": "0.7441",
              "LLM-Based / Claude 3 Sonnet": "0.8059", "RecLAIF": "0.8279"}  # fmt: skip
    for row, printed in quoted.items():
        assert tables["reclaif_table2"].cell(row, "Relevance / NDCG@5").paper == printed


def test_no_cell_is_mapped_to_a_number_in_the_data_file():
    raw = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    for table in raw["tables"]:
        for row in table["rows"]:
            for cell in row["cells"].values():
                assert cell["ours"] is None or isinstance(cell["ours"], str)


# ------------------------------------------------------------------------------------------------------ rendering


def _mini(**cells) -> dict:
    """A one-table data file whose cells are given as column -> cell."""
    return {
        "schema_version": 1,
        "tables": [
            {
                "id": "gdrt_mini",
                "paper": "gdrt",
                "label": "Table X",
                "caption": "A test table.",
                "source": "nowhere",
                "row_header": "Method",
                "columns": list(cells),
                "rows": [{"label": "GDRT", "cells": cells}],
            }
        ],
    }


def test_render_fills_ours_and_the_difference(tmp_path):
    mini = parse_tables(
        _mini(
            ndcg={"paper": "0.0152", "ours": "evaluate.world.gdrt.ndcg_at_5"},
            rjs={"paper": "-0.110", "ours": "judge.rjs"},
            count={"paper": "47,117", "ours": "exposynth.accepted"},
            unmapped={"paper": "0.445", "ours": None},
            absent={"paper": "0.5000", "ours": "evaluate.world.gdrt.not_computed"},
            na={"paper": "/", "ours": "evaluate.world.gdrt.mgu_at_5"},
            unpublished={"paper": None, "ours": "evaluate.world.gdrt.ndcg_at_5"},
        )
    )
    metrics = {
        "evaluate": {"world": {"gdrt": {"ndcg_at_5": 0.016, "mgu_at_5": 0.3}}},
        "judge": {"rjs": -0.1},
        "exposynth": {"accepted": 47000},
    }
    (rt,) = render_tables(metrics, tmp_path, tables=mini)
    cell = {c.column: c for c in rt.cells}
    assert (cell["ndcg"].paper, cell["ndcg"].ours, cell["ndcg"].delta) == ("0.0152", "0.0160", "+0.0008")
    assert cell["ndcg"].delta_value == pytest.approx(0.0008, abs=1e-12)
    assert (cell["rjs"].ours, cell["rjs"].delta) == ("-0.1000", "+0.0100")
    assert (cell["count"].ours, cell["count"].delta, cell["count"].delta_value) == ("47,000", "-117", -117)
    assert (cell["unmapped"].ours, cell["unmapped"].delta) == (MISSING, MISSING)
    assert (cell["absent"].ours, cell["absent"].delta) == (MISSING, MISSING)
    assert (cell["na"].paper, cell["na"].ours, cell["na"].delta) == ("/", "0.3000", MISSING)
    assert (cell["unpublished"].paper, cell["unpublished"].ours, cell["unpublished"].delta) == (
        NOT_PUBLISHED, "0.0160", MISSING,
    )  # fmt: skip
    assert (rt.n_mapped, rt.n_filled) == (6, 5)

    (rt2,) = render_tables(metrics, tmp_path, tables=mini, decimals=2)
    assert rt2.cell("GDRT", "ndcg").ours == "0.02" and rt2.cell("GDRT", "rjs").delta == "+0.01"


def test_render_writes_md_tex_csv_for_every_table(tmp_path, tables):
    rendered = render_tables({}, tmp_path)
    assert [rt.id for rt in rendered] == list(tables)
    for rt in rendered:
        assert set(rt.paths) == {"md", "tex", "csv"}
        for fmt, path in rt.paths.items():
            assert path == tmp_path / f"{rt.id}.{fmt}" and path.is_file()
        frame = pd.read_csv(rt.paths["csv"], keep_default_na=False, dtype={"paper": str, "ours": str, "delta": str})
        table = tables[rt.id]
        assert len(frame) == len(table.rows) * len(table.columns)
        assert set(frame["ours"]) == {MISSING} and set(frame["delta"]) == {MISSING}
        assert list(frame["paper"]) == [NOT_PUBLISHED if c.paper is None else c.paper for *_, c in table.iter_cells()]
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]  # atomic writes left nothing behind

    md = (tmp_path / "gdrt_table2.md").read_text(encoding="utf-8")
    assert "| Toy / NDCG@5 ↑ | 0.0057 | — | — |" in md and "**0.0152**" in md
    tex = (tmp_path / "gdrt_table2.tex").read_text(encoding="utf-8")
    assert r"\begin{tabular}{l" + "rrr" * 9 + "}" in tex and r"Toy / NDCG@5 $\uparrow$" in tex
    frame = pd.read_csv(tmp_path / "gdrt_table2.csv", dtype={"paper": str})
    assert frame.loc[(frame["row"] == "Toy / NDCG@5 ↑") & (frame["column"] == "SASRec++"), "paper"].item() == "0.0120"

    rendered = render_tables({}, tmp_path / "sub", ["gdrt_table3"])
    assert [rt.id for rt in rendered] == ["gdrt_table3"]
    with pytest.raises(KeyError, match="no_such_table"):
        render_tables({}, tmp_path, ["no_such_table"])


def test_mapping_a_cell_is_a_one_line_edit(tmp_path):
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    line = '          "DROS": {paper: "0.0118", ours: null}'  # Toy / NDCG@10, a method we do not implement
    assert text.count(line) == 1
    edited = tmp_path / "paper_numbers.yaml"
    edited.write_text(text.replace(line, line.replace("ours: null", "ours: evaluate.world.dros.ndcg_at_10")))
    tables = load_tables(edited)
    metrics = {"evaluate": {"world": {"dros": {"ndcg_at_10": 0.0183}}}}
    (rt,) = render_tables(metrics, tmp_path / "out", ["gdrt_table2"], tables=tables)
    cell = rt.cell("Toy / NDCG@10 ↑", "DROS")
    assert (cell.paper, cell.ours, cell.delta) == ("0.0118", "0.0183", "+0.0065")
    assert rt.n_filled == 1


def test_a_metric_that_is_not_a_number_names_the_cell(tmp_path):
    mini = parse_tables(_mini(ndcg={"paper": "0.0152", "ours": "evaluate.world"}))
    with pytest.raises(PaperTablesError, match=r"gdrt_mini.*GDRT.*ndcg.*not a number"):
        render_tables({"evaluate": {"world": {"gdrt": {}}}}, tmp_path, tables=mini)


def test_print_tables_shows_paper_ours_and_delta(tables):
    mini = parse_tables(_mini(ndcg={"paper": "0.0152", "ours": "m.x"}))
    from lure.tables import fill_table

    out = stdio.StringIO()
    print_tables([fill_table(mini["gdrt_mini"], {"m": {"x": 0.02}})], Console(file=out, width=120))
    text = out.getvalue()
    assert "0.0152" in text and "0.0200" in text and "+0.0048" in text


def test_collect_metrics_reads_every_stage_file(tmp_path):
    assert collect_metrics(tmp_path / "missing") == {}
    (tmp_path / "evaluate.json").write_text(json.dumps({"world": {"ndcg": 0.1}}))
    (tmp_path / "prepare.json").write_text(json.dumps({"n_users": 3}))
    (tmp_path / "notes.txt").write_text("ignored")
    assert collect_metrics(tmp_path) == {"evaluate": {"world": {"ndcg": 0.1}}, "prepare": {"n_users": 3}}


# -------------------------------------------------------------------------------------------------- malformed data


def _broken(tables, mutate) -> dict:
    raw = copy.deepcopy(yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8")))
    mutate({t["id"]: t for t in raw["tables"]})
    return raw


def test_a_bare_number_is_rejected_naming_table_row_and_column(tables):
    def mutate(by_id):
        by_id["gdrt_table3"]["rows"][0]["cells"]["Toy / DGU@5"]["paper"] = 0.7162

    with pytest.raises(PaperTablesError) as err:
        parse_tables(_broken(tables, mutate))
    message = str(err.value)
    assert "'gdrt_table3'" in message and "row 'MSL'" in message and "column 'Toy / DGU@5'" in message
    assert "quoted string" in message


def test_a_missing_cell_is_rejected_naming_the_table_and_row(tables):
    def mutate(by_id):
        del by_id["reclaif_table2"]["rows"][1]["cells"]["Diversity"]

    with pytest.raises(PaperTablesError, match=r"reclaif_table2.*BLAIR.*missing \['Diversity'\]"):
        parse_tables(_broken(tables, mutate))


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda t: t["lure_table1"]["rows"][0]["cells"]["RJS"].update(paper="-0.11O"), r"lure_table1.*'ALL'.*RJS"),
        (lambda t: t["lure_table1"]["rows"][0]["cells"]["RJS"].update(ours="judge..rjs"), r"lure_table1.*dotted"),
        (lambda t: t["lure_sec43"]["rows"][0]["cells"]["Value"].update(colour="red"), r"lure_sec43.*colour"),
        (lambda t: t["abpo_comparison"].update(paper="lure"), r"abpo_comparison.*must start with"),
        (lambda t: t["gdrt_table3"]["columns"].append("Toy / NDCG@5"), r"gdrt_table3.*more than once"),
    ],
)
def test_malformed_tables_are_rejected_naming_the_table(tables, mutate, pattern):
    with pytest.raises(PaperTablesError, match=pattern):
        parse_tables(_broken(tables, mutate))


def test_duplicate_table_ids_and_yaml_keys_are_rejected(tmp_path):
    raw = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    raw["tables"].append(raw["tables"][0])
    with pytest.raises(PaperTablesError, match="'lure_table1' is defined more than once"):
        parse_tables(raw)
    line = '          "RJS": {paper: "-0.110", ours: null}'
    text = DEFAULT_PATH.read_text(encoding="utf-8").replace(line, f"{line}\n{line}")
    path = tmp_path / "dup.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PaperTablesError, match="duplicate key 'RJS'"):
        load_tables(path)


# ----------------------------------------------------------------------------------------------------------- spec


def test_tables_spec_defaults_and_constraints(tables):
    spec = TablesSpec()
    assert (spec.papers, spec.decimals) == (["lure", "gdrt", "reclaif", "abpo"], 4)
    assert table_ids_for(spec.papers, tables) == list(REQUIRED_TABLE_IDS)
    assert table_ids_for(["gdrt"], tables) == ["gdrt_table2", "gdrt_table3"]
    for bad in ({"papers": []}, {"papers": ["lure", "lure"]}, {"papers": ["sasrec"]}, {"decimals": -1},
                {"decimals": 11}, {"colour": "red"}):  # fmt: skip
        with pytest.raises(ValidationError):
            TablesSpec(**bad)
    for name, field in TablesSpec.model_fields.items():
        assert field.description, name


def test_render_spec_selects_papers_and_can_skip_writing(tmp_path):
    from lure.tables import render_spec

    metrics = {"judge": {"rjs": 0.1}}
    rendered = render_spec(TablesSpec(papers=["abpo", "lure"]), metrics, tmp_path / "out")
    assert [rt.id for rt in rendered] == ["abpo_comparison", "lure_table1", "lure_sec43"]
    assert (tmp_path / "out" / "lure_table1.csv").is_file()
    assert Path(rendered[0].paths["md"]).parent == tmp_path / "out"
    shown = render_spec(TablesSpec(papers=["gdrt"]), metrics, None)
    assert [rt.id for rt in shown] == ["gdrt_table2", "gdrt_table3"]
    assert not (tmp_path / "out" / "gdrt_table2.md").exists()
