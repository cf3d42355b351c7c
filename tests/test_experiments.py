"""Comparing experiments (lure.experiments, `lure exp show`) and tables that never truncate (lure.display)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from lure.display import Column, print_table, table_width
from lure.experiments import changed_params, experiments_from_exp_show, flatten_params, headline_rows
from lure.registry import Headline, StageDef


def _row(rev: str, name: str | None, tau: float, ndcg: float, loss: float | None, state: str | None = None) -> dict:
    metrics = {"metrics/llm-eval-gdrt.json": {"data": {"ndcg_at_10": ndcg, "samples": 500}}}
    if loss is not None:
        metrics["metrics/train-gdrt.json"] = {"data": {"final_loss": loss, "device": "cpu"}}
    row = {
        "rev": rev,
        "name": name,
        "data": {
            "rev": rev,
            "params": {"params.yaml": {"data": {"seed": 0, "method": {"tau": tau}}}},
            "metrics": metrics,
        },
        "experiments": None,
    }
    return {"revs": [row], "name": name, "executor": {"state": state}} if state else row


SHOWN = [
    _row("workspace", None, 0.5, 0.02, 3.5),
    {
        **_row("abc1234def", "main", 0.5, 0.02, 3.5),
        "experiments": [
            _row("e1", "tau-0.3", 0.3, 0.03, 2.9, "success"),
            _row("e2", "tau-1", 1.0, 0.01, None, "success"),  # train metrics missing (e.g. failed to write)
            _row("e3", "running", 2.0, 0.99, 0.1, "running"),  # not finished: never counted
            _row("e4", "failed", 3.0, 0.99, 0.1, "failed"),
        ],
    },
]
STAGES = {
    "train-gdrt": StageDef("train-gdrt", (), headline=(Headline("final_loss", "final_loss", "lower"),)),
    "llm-eval-gdrt": StageDef("llm-eval-gdrt", (), headline=(Headline("ndcg_at_10", "ndcg@10", "higher"),)),
}


def test_experiments_are_flattened_and_unfinished_ones_skipped() -> None:
    found = experiments_from_exp_show(SHOWN)
    assert [(e.name, e.kind) for e in found] == [
        ("workspace", "workspace"),
        ("main", "commit"),
        ("tau-0.3", "experiment"),
        ("tau-1", "experiment"),
    ]
    assert found[2].metrics["llm-eval-gdrt"] == {"ndcg_at_10": 0.03, "samples": 500}
    assert found[1].rev == "abc1234def" and found[2].params["method"]["tau"] == 0.3


def test_changed_params_and_flattening() -> None:
    found = experiments_from_exp_show(SHOWN)
    assert flatten_params({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": [1, 2], "d": None}
    assert changed_params(found) == ["method.tau"]
    assert changed_params(found[:2]) == []


def test_headline_rows_mark_the_best_value_by_direction() -> None:
    found = experiments_from_exp_show(SHOWN)[1:]  # main, tau-0.3, tau-1
    rows = {r.name: r for r in headline_rows(found, STAGES)}
    assert list(rows) == ["train-gdrt/final_loss", "llm-eval-gdrt/ndcg@10"]  # stage order, not file order
    loss = rows["train-gdrt/final_loss"]
    assert loss.values == [3.5, 2.9, None] and loss.best == 1  # lower is better; a missing value never wins
    ndcg = rows["llm-eval-gdrt/ndcg@10"]
    assert ndcg.values == [0.02, 0.03, 0.01] and ndcg.best == 1
    assert [r.name for r in headline_rows(found, STAGES, ["*/ndcg*"])] == ["llm-eval-gdrt/ndcg@10"]
    same = headline_rows(found[:1] * 2, STAGES)
    assert all(r.best is None for r in same)  # nothing to choose between equal values


def _printed(width: int, keys, values, rows) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None, soft_wrap=True)  # as the CLI's
    print_table(console, "t", keys, values, rows, caption="a caption that is longer than forty characters, to wrap")
    return out.getvalue()


@pytest.mark.parametrize("width", [40, 80, 300])
def test_tables_never_truncate_cells(width: int) -> None:
    keys = [Column("recommender", "left")]
    values = [Column(f"metric_number_{j}_at_10") for j in range(9)]
    rows = [[name, *(f"0.{j}{k}34567" for j in range(9))] for k, name in enumerate(["sasrec", "popularity", "gdrt"])]
    text = _printed(width, keys, values, rows)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    for row in rows:
        for cell in row:
            assert cell in text, (width, cell)  # every name and number appears whole, on one line
    if width == 300:
        assert text.count("recommender") == 1  # fits: one table
    if width == 80:
        assert text.count("recommender") > 1 and "(1/" in text  # split into tables that fit, keys repeated


def test_long_layout_when_one_column_does_not_fit() -> None:
    keys = [Column("a very long key column header", "left")]
    values = [Column("another long metric header"), Column("x")]
    rows = [["some long key value here", "0.123456789", "2"]]
    assert table_width(["a very long key column header", "another long metric header"], [rows[0][:2]]) > 50
    text = _printed(50, keys, values, rows)
    assert "…" not in text and "metric" in text and "0.123456789" in text


def test_exp_show_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    from lure import cli, experiments

    monkeypatch.setattr(experiments, "dvc_exp_show", lambda all_commits=False: SHOWN)
    monkeypatch.setattr(cli, "_stages_of", lambda params: STAGES)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["exp", "show"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "workspace" not in text.split("\n", 2)[1]  # the workspace equals HEAD: shown once
    assert re.search(r"method\.tau\s*│\s*0\.5\s*│\s*0\.3\s*│\s*1\.0", text), text
    assert "0.0300*" in text and "2.9000*" in text and "—" in text and "…" not in text
    csv = runner.invoke(cli.app, ["exp", "show", "--csv", "-m", "*ndcg*"]).output.splitlines()
    assert csv == [
        "experiment,rev,method.tau,llm-eval-gdrt/ndcg@10",
        "main,abc1234def,0.5,0.02",
        "tau-0.3,e1,0.3,0.03",
        "tau-1,e2,1.0,0.01",
    ]
    md = runner.invoke(cli.app, ["exp", "show", "--md", "-m", "*loss"]).output
    assert "| train-gdrt/final_loss ↓ | 3.5000 | **2.9000** | — |" in md


def test_summary_shows_headline_metrics_only_and_full_shows_all(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import shutil
    from pathlib import Path

    from lure import cli

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "metrics").mkdir()
    report = {"world": {"sasrec": {"ndcg_at_10": 0.0232, "hit_at_10": 0.058}}, "comparison": {}}
    (tmp_path / "metrics" / "llm-report.json").write_text(json.dumps(report))
    train = {"final_loss": 1.0707, "threads": 2, "device": "cpu", "train_seconds": 229.2}
    (tmp_path / "metrics" / "train-sft.json").write_text(json.dumps(train))
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    text = runner.invoke(cli.app, ["summary"], env={"COLUMNS": "80"}).output
    assert re.search(r"train-sft\s*│\s*final_loss ↓\s*│\s*1\.0707", text), text
    assert "threads" not in text and "cpu" not in text and "…" not in text
    assert re.search(r"sasrec\s*│\s*0\.0232\s*│\s*0\.0580", text), text
    full = runner.invoke(cli.app, ["summary", "--full"], env={"COLUMNS": "80"}).output
    assert re.search(r"train-sft\s*│\s*threads\s*│\s*2", full) and re.search(r"device\s*│\s*cpu", full), full
