"""Paper tables: the transcription of the papers' numbers, its validation, and the rendering next to ours."""

from __future__ import annotations

import copy
import io as stdio
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError
from rich.console import Console

from lure.spec.tables import TablesSpec
from lure.tables import (
    DEFAULT_PATH,
    NO_DELTA,
    NOT_IMPLEMENTED,
    NOT_PUBLISHED,
    NOT_RUN,
    REQUIRED_TABLE_IDS,
    PaperTablesError,
    collect_metrics,
    fill_table,
    load_tables,
    parse_tables,
    render_spec,
    render_tables,
    summarize,
    table_ids_for,
)
from lure.tables.console import print_tables

ROOT = Path(__file__).resolve().parents[1]


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
        "abpo_comparison": (5, 6),
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
    assert [r.label for r in table.rows] == [
        "Prior policy (before update)",
        "SFT on positives",
        "GRPO",
        "ABPO w/o self-certainty",
        "ABPO",
    ]
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


def _mini(runs: list[dict] | None = None, not_implemented: str | None = "nothing else", **cells) -> dict:
    """A one-table data file whose cells are given as column -> cell; every key comes from the runs given."""
    runs = runs if runs is not None else [{"fills": "ours", "metrics": "m", "spec": "specs/mini.yaml"}]
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
                "runs": runs,
                "not_implemented": not_implemented,
                "rows": [{"label": "GDRT", "cells": cells}],
            }
        ],
    }


RUNS = [
    {"fills": "ours", "metrics": "evaluate.data", "spec": "specs/data.yaml"},
    {"fills": "ours", "metrics": "judge", "spec": "specs/judge.yaml"},
    {"fills": "ours", "metrics": "exposynth", "spec": "specs/synth.yaml"},
    {"fills": "world", "metrics": "evaluate.world", "spec": "specs/world.yaml"},
]


def test_render_fills_ours_the_difference_and_the_world(tmp_path):
    mini = parse_tables(
        _mini(
            RUNS,
            ndcg={"paper": "0.0152", "ours": "evaluate.data.gdrt.ndcg_at_5", "world": "evaluate.world.gdrt.ndcg_at_5"},
            rjs={"paper": "-0.110", "ours": "judge.rjs"},
            count={"paper": "47,117", "ours": "exposynth.accepted"},
            unmapped={"paper": "0.445", "ours": None},
            absent={"paper": "0.5000", "ours": "evaluate.data.gdrt.not_computed", "world": "evaluate.world.gdrt.nope"},
            na={"paper": "/", "ours": "evaluate.data.gdrt.mgu_at_5", "world": "evaluate.world.gdrt.mgu_at_5"},
            unpublished={"paper": None, "ours": "evaluate.data.gdrt.ndcg_at_5"},
        )
    )
    metrics = {
        "evaluate": {
            "data": {"gdrt": {"ndcg_at_5": 0.016, "mgu_at_5": 0.3}},
            "world": {"gdrt": {"ndcg_at_5": 0.02345, "mgu_at_5": 0.1}},
        },
        "judge": {"rjs": -0.1},
        "exposynth": {"accepted": 47000},
    }
    (rt,) = render_tables(metrics, tmp_path, tables=mini)
    cell = {c.column: c for c in rt.cells}
    ndcg = cell["ndcg"]
    assert (ndcg.paper, ndcg.ours, ndcg.delta, ndcg.world) == ("0.0152", "0.0160", "+0.0008", "0.0234")
    assert ndcg.delta_value == pytest.approx(0.0008, abs=1e-12) and ndcg.world_value == 0.02345
    assert (ndcg.ours_spec, ndcg.world_spec, ndcg.ours_state, ndcg.world_state) == (
        "specs/data.yaml", "specs/world.yaml", "value", "value",
    )  # fmt: skip
    assert (cell["rjs"].ours, cell["rjs"].delta, cell["rjs"].world) == ("-0.1000", "+0.0100", NOT_IMPLEMENTED)
    assert (cell["count"].ours, cell["count"].delta, cell["count"].delta_value) == ("47,000", "-117", -117)
    unmapped = cell["unmapped"]
    assert (unmapped.ours, unmapped.delta, unmapped.world) == (NOT_IMPLEMENTED, NO_DELTA, NOT_IMPLEMENTED)
    assert (unmapped.ours_state, unmapped.ours_spec) == ("not_implemented", None)
    absent = cell["absent"]
    assert (absent.ours, absent.delta, absent.world) == (NOT_RUN, NO_DELTA, NOT_RUN)
    assert (absent.ours_state, absent.ours_spec, absent.world_spec) == (
        "not_run",
        "specs/data.yaml",
        "specs/world.yaml",
    )
    assert (cell["na"].paper, cell["na"].ours, cell["na"].delta, cell["na"].world) == (
        "/",
        "0.3000",
        NO_DELTA,
        "0.1000",
    )
    assert (cell["unpublished"].paper, cell["unpublished"].ours, cell["unpublished"].delta) == (
        NOT_PUBLISHED, "0.0160", NO_DELTA,
    )  # fmt: skip
    assert (rt.n_mapped, rt.n_filled) == (6, 5)  # 'unmapped' has no key; 'absent' has keys but no values
    assert rt.states("ours") == {"value": 5, "not_run": 1, "not_implemented": 1}
    assert rt.states("world") == {"value": 2, "not_run": 1, "not_implemented": 4}
    assert summarize([rt, rt]) == {
        "tables": 2, "cells": 14, "cells_with_paper_value": 10, "cells_mapped": 12, "cells_filled": 10,
        "ours": {"filled": 10, "not_run": 2, "not_implemented": 2},
        "world": {"filled": 4, "not_run": 2, "not_implemented": 8},
    }  # fmt: skip

    (rt2,) = render_tables(metrics, tmp_path, tables=mini, decimals=2)
    assert rt2.cell("GDRT", "ndcg").ours == "0.02" and rt2.cell("GDRT", "rjs").delta == "+0.01"
    assert rt2.cell("GDRT", "ndcg").world == "0.02"

    md = (tmp_path / "gdrt_mini.md").read_text(encoding="utf-8")
    assert "- ours, every row (3/4 cells filled): `lure spec use specs/data.yaml && dvc repro`" in md
    assert "- world (simulated), the default pipeline, every row (2/3 cells filled): " in md
    assert "- not impl.: nothing else" in md
    assert "| ndcg paper | ndcg ours | ndcg Δ | ndcg world (sim.) |" in md
    assert "| GDRT | 0.0152 | 0.02 | 0.00 | 0.02 | -0.110 | -0.10 | +0.01 | not impl. |" in md


def test_every_mapped_key_names_the_run_that_fills_it():
    def bad(**kwargs):
        with pytest.raises(PaperTablesError) as err:
            parse_tables(_mini(**kwargs))
        return str(err.value)

    message = bad(x={"paper": "0.1", "ours": "other.x"})
    assert "'gdrt_mini'" in message and "row 'GDRT', column 'x': ours key 'other.x' is filled by no run" in message
    assert "world key 'm.y' is filled by no run" in bad(x={"paper": "0.1", "ours": "m.x", "world": "m.y"})
    runs = [
        {"fills": "ours", "metrics": "m", "spec": "specs/a.yaml"},
        {"fills": "ours", "metrics": "m.x", "spec": "specs/b.yaml"},
    ]
    assert "is filled by 2 runs" in bad(runs=runs, x={"paper": "0.1", "ours": "m.x.y"})
    runs = [{"fills": "ours", "metrics": "m", "spec": "specs/a.yaml", "rows": "Toy / *"}]
    assert "whose rows 'Toy / *' do not include this row" in bad(runs=runs, x={"paper": "0.1", "ours": "m.x"})
    runs = [
        {"fills": "ours", "metrics": "m", "spec": "specs/a.yaml"},
        {"fills": "world", "metrics": "w", "spec": "specs/w.yaml"},
    ]
    assert "runs that fill no cell: ['specs/w.yaml']" in bad(runs=runs, x={"paper": "0.1", "ours": "m.x"})
    assert "say why in 'not_implemented'" in bad(not_implemented=None, x={"paper": "0.1", "ours": "m.x"})
    message = bad(runs=[{"fills": "ours", "metrics": "m", "spec": "mini.yaml"}], x={"paper": "0.1", "ours": "m.x"})
    assert "runs, 0, spec: String should match pattern" in message
    # a prefix matches whole segments only: 'm' does not fill 'mx.y'
    assert "ours key 'mx.y' is filled by no run" in bad(x={"paper": "0.1", "ours": "mx.y"})


def test_render_writes_md_tex_csv_for_every_table(tmp_path, tables):
    rendered = render_tables({}, tmp_path)
    assert [rt.id for rt in rendered] == list(tables)
    for rt in rendered:
        assert set(rt.paths) == {"md", "tex", "csv"}
        for fmt, path in rt.paths.items():
            assert path == tmp_path / f"{rt.id}.{fmt}" and path.is_file()
        frame = pd.read_csv(rt.paths["csv"], keep_default_na=False, dtype=str)
        table = tables[rt.id]
        assert len(frame) == len(table.rows) * len(table.columns)
        # no metrics at all: a mapped cell is "not run", an unmapped one "not implemented", on either side
        for side in ("ours", "world"):
            expected = [NOT_IMPLEMENTED if getattr(c, side) is None else NOT_RUN for *_, c in table.iter_cells()]
            assert list(frame[side]) == expected, (rt.id, side)
        assert set(frame["delta"]) == {NO_DELTA}
        assert list(frame["paper"]) == [NOT_PUBLISHED if c.paper is None else c.paper for *_, c in table.iter_cells()]
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]  # atomic writes left nothing behind

    md = (tmp_path / "gdrt_table2.md").read_text(encoding="utf-8")
    assert "| Toy / NDCG@5 ↑ | 0.0057 | not run | — | not run | 0.0095 | not impl. | — | not impl. |" in md
    assert "**0.0152**" in md
    assert (
        "- ours, rows Book / * (0/18 cells filled, not run): `lure spec use specs/gdrt-books.yaml && dvc repro`" in md
    )
    tex = (tmp_path / "gdrt_table2.tex").read_text(encoding="utf-8")
    assert r"\begin{tabular}{l" + "rrrr" * 9 + "}" in tex and r"Toy / NDCG@5 $\uparrow$" in tex
    assert r"\cmidrule(lr){34-37}" in tex  # the ninth column's four sub-columns: 2 + 4*8 .. 5 + 4*8
    assert "% ours, rows Toy / * (0/18 cells filled, not run): `lure spec use specs/gdrt-toys.yaml && dvc repro`" in tex
    lure_md = (tmp_path / "lure_table1.md").read_text(encoding="utf-8")
    assert "- ours: no spec fills this table" in lure_md and "real LLM judge" in lure_md
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
    key = "llm-report.amazon-2023-Toys_and_Games.dros.ndcg_at_10"  # under the Toy run's prefix: no other edit needed
    edited.write_text(text.replace(line, line.replace("ours: null", f"ours: {key}")))
    tables = load_tables(edited)
    metrics = {"llm-report": {"amazon-2023-Toys_and_Games": {"dros": {"ndcg_at_10": 0.0183}}}}
    (rt,) = render_tables(metrics, tmp_path / "out", ["gdrt_table2"], tables=tables)
    cell = rt.cell("Toy / NDCG@10 ↑", "DROS")
    assert (cell.paper, cell.ours, cell.delta, cell.ours_spec) == (
        "0.0118",
        "0.0183",
        "+0.0065",
        "specs/gdrt-toys.yaml",
    )
    assert rt.n_filled == 1
    clothing = line.replace("0.0118", "0.0053")  # Clothing / NDCG@10: the Toy run cannot fill a Clothing row
    edited.write_text(text.replace(clothing, clothing.replace("ours: null", f"ours: {key}")))
    with pytest.raises(
        PaperTablesError, match=r"Clothing / NDCG@10 ↑.*DROS.*specs/gdrt-toys.yaml, whose rows 'Toy / \*'"
    ):
        load_tables(edited)


def test_a_metric_that_is_not_a_number_names_the_cell(tmp_path):
    mini = parse_tables(_mini(ndcg={"paper": "0.0152", "ours": "m"}))
    with pytest.raises(PaperTablesError, match=r"gdrt_mini.*GDRT.*ndcg.*not a number"):
        render_tables({"m": {"gdrt": {}}}, tmp_path, tables=mini)


# ------------------------------------------------------------------------------------------- the world and the specs


def test_world_and_ours_name_the_same_recommender_and_metric(tables):
    """A cell's world key is its ours key on the world: same stage, recommender and metric, another dataset."""
    pairs = [(c.ours, c.world) for t in tables.values() for *_, c in t.iter_cells() if c.world and c.ours]
    # GDRT Table 2: 3 datasets x 6 metrics x (SASRec, SFT, GDRT); LURE §4.3: 3; RecLAIF Table 3: 2 datasets x
    # (4 recommenders x 5 metrics - SASRec's explainability, not applicable); ABPO: 4 rows with a world value x 5
    # measures (True CTR has no ours: MovieLens-1M has no truth)
    assert len(pairs) == 54 + 3 + 2 * (4 * 5 - 1) + 4 * 5
    # LURE Table 1 has a world column only: its ours column needs a real LLM judge on MovieLens-1M
    world_only = [c.world for t in tables.values() for *_, c in t.iter_cells() if c.world and not c.ours]
    # ABPO's True CTR has a world column only (4 rows): MovieLens-1M has no true relevance
    assert len(world_only) == 12 + 4
    assert all(k.startswith("judge-metrics.models.als.") or k.endswith(".true_ctr") for k in world_only)
    for ours, world in pairs:
        stage, _, *rest = ours.split(".")
        assert world == ".".join([stage, "world", *rest]), (ours, world)


def test_every_run_is_a_spec_of_this_repository_that_writes_those_keys(tables):
    from lure.reclaif.instances import report_key
    from lure.registry import SOURCES
    from lure.spec.load import load_spec

    for table in tables.values():
        for run in table.runs:
            spec = load_spec(ROOT / run.spec)
            if run.metrics.startswith("judge-metrics."):  # keyed by recommender: the judge's agreement with it
                assert spec.judge is not None and run.metrics.split(".")[2] in spec.eval.models, run
                continue
            stage, dataset = run.metrics.split(".")
            # all key results by the dataset's label
            assert stage in ("llm-report", "exposynth", "reclaif-eval", "abpo-report"), run
            label = SOURCES.get(spec.data.source.name).dataset_label(spec.data.source)
            if stage == "reclaif-eval":
                assert spec.reclaif is not None, run
                label = report_key(label, spec.reclaif.task)  # the retrieval task's instances are ESCI's
            assert label == dataset, run
            assert (dataset == "world") == (run.fills == "world"), run
            if stage == "exposynth":  # LURE §4.3: the paper's procedure on the paper's dataset
                assert spec.exposynth is not None
                assert spec.exposynth.preset == ("paper" if run.fills == "ours" else "corrected"), run
                continue
            if stage == "reclaif-eval":  # Tables 2 and 3: the recommenders the spec's RecLAIF evaluation answers with
                assert spec.reclaif is not None, run
                answering = {"base", "teacher", "sft", *spec.reclaif.baselines}
                answering |= {f"dpo-{i}" for i in range(1, spec.reclaif.iterations + 1)}
                keys = [getattr(c, run.fills) for *_, c in table.iter_cells()]
                assert {k.split(".")[3] for k in keys if k and run.fills_key(k)} <= answering, run
                continue
            if stage == "abpo-report":  # the methods the spec's abpo section compares, and the SFT start (round 0)
                assert spec.abpo is not None, run
                keys = [getattr(c, run.fills) for *_, c in table.iter_cells()]
                for key in (k for k in keys if k and run.fills_key(k)):
                    parts = key.split(".")
                    assert parts[2] == "round_0" or (parts[2] == "methods" and parts[3] in spec.abpo.variants), key
                continue
            names = {spec.method.name, *spec.baselines}
            for *_, cell in table.iter_cells():
                key = getattr(cell, run.fills)
                if key is not None and run.fills_key(key):
                    assert key.split(".")[2] in names, (run.spec, key)


def test_the_default_run_fills_gdrt_table2_world_column():
    """On the committed metrics of the default (world) run: the world column of GDRT Table 2 and nothing else."""
    metrics = collect_metrics(ROOT / "metrics")
    report = metrics["llm-report"]["world"]
    rendered = render_spec(TablesSpec(), metrics, None)
    by_id = {rt.id: rt for rt in rendered}
    rt = by_id["gdrt_table2"]
    for row in ("Toy", "Clothing", "Book"):
        cell = rt.cell(f"{row} / NDCG@10 ↑", "GDRT")
        assert (cell.world_value, cell.ours, cell.delta) == (report["gdrt"]["ndcg_at_10"], NOT_RUN, NO_DELTA)
        assert rt.cell(f"{row} / MGU@5 ↓", "SASRec").world_value == report["sasrec"]["mgu_at_5"]
        assert rt.cell(f"{row} / HIT@5 ↑", "SFT").world_value == report["sft"]["hit_at_5"]
    assert rt.states("world") == {"value": 54, "not_run": 0, "not_implemented": 108}
    assert rt.states("ours") == {"value": 0, "not_run": 54, "not_implemented": 108}
    lure = by_id["lure_table1"]
    assert lure.states("world")["value"] == 12
    judged = metrics["judge-metrics"]["models"]["als"]
    assert lure.cell("pop_bin=3", "RJS").world_value == judged["pop_bin_3"]["rjs"]["mean"]
    synth = next(t for t in rendered if t.id == "lure_sec43")
    assert synth.states("world")["value"] == 3 and synth.states("ours") == {
        "value": 0,
        "not_run": 3,
        "not_implemented": 0,
    }
    assert synth.cell("Accepted interactions", "Value").world_value == metrics["exposynth"]["world"]["accepted"]
    filled = ("gdrt_table2", "lure_table1", "lure_sec43", "reclaif_table3", "abpo_comparison")
    assert all(other.n_filled == 0 for other in rendered if other.id not in filled)
    # RecLAIF Table 3's world column: 38 mapped cells, less the base model's diversity in both datasets' columns
    # (its answers are all invalid on the world, so no list has two items to compare)
    assert by_id["reclaif_table3"].n_filled == 38 - 2
    # ABPO's comparison: 4 rows (the SFT start, SFT on positives, GRPO, ABPO) x 6 measures on the world
    assert by_id["abpo_comparison"].n_filled == 4 * 6
    totals = summarize(rendered)
    assert (totals["cells"], totals["cells_filled"], totals["ours"]["filled"], totals["world"]["filled"]) == (
        277 + 5 * 6 - 4 * 2,  # the ABPO table was 4 x 2 cells, now 5 x 6
        69 + 36 + 24,
        0,
        69 + 36 + 24,
    )


# ----------------------------------------------------------------------------------------------------------- console


def _printed(rendered, width: int, **kwargs) -> str:
    out = stdio.StringIO()
    print_tables(rendered, Console(file=out, width=width, color_system=None), **kwargs)
    return out.getvalue()


def test_print_tables_shows_paper_ours_delta_and_world():
    runs = [RUNS[1], RUNS[3]]
    mini = parse_tables(_mini(runs, ndcg={"paper": "0.0152", "ours": "judge.x", "world": "evaluate.world.x"}))
    (rt,) = [fill_table(mini["gdrt_mini"], {"judge": {"x": 0.02}, "evaluate": {"world": {"x": 0.5}}})]
    text = _printed([rt], 120)
    assert "0.0152" in text and "0.0200" in text and "+0.0048" in text and "w 0.5000" in text
    assert "lure spec use specs/judge.yaml && dvc repro" in text and "Legend:" in text
    long = _printed([rt], 120, long=True)
    assert "world (sim.)" in long and "0.5000" in long and "w 0.5000" not in long


@pytest.mark.parametrize("width", [40, 80, 200])
@pytest.mark.parametrize("long", [False, True])
def test_printed_tables_never_truncate(tables, width, long):
    metrics = collect_metrics(ROOT / "metrics")
    rendered = render_spec(TablesSpec(), metrics, None)
    text = _printed(rendered, width, long=long)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    for rt in rendered:
        if long and width < 80:  # (row, column, value) is wider than 40 for some cells: the widest fold, not cut
            continue
        for c in rt.cells:  # every number whole on one line
            for value in (c.paper, c.ours, c.world):
                assert value in text, (rt.id, c.row, c.column, value)
        if width >= 80:
            for spec in {run.spec for run in rt.table.runs}:
                assert f"lure spec use {spec} && dvc repro" in text
            if not long:
                assert all(label in text for label in rt.table.columns), rt.id
    if width == 200 and not long:
        assert re.search(r"gdrt_table2: GDRT Table 2 *\n┏", text) and "GDRT Table 2 (1/" not in text  # one grid
    if width == 80 and not long:
        assert "gdrt_table2: GDRT Table 2 (1/" in text  # split into tables that fit, row labels repeated


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
    line = '          "RJS": {paper: "-0.110", ours: null, world: judge-metrics.models.als.all.rjs.mean}'
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
