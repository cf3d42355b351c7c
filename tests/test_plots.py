"""Plots: the chart declarations and their dvc.yaml section, the Vega-Lite templates filled with the committed CSVs,
the offline HTML page, the PNGs drawn on small hand-made frames, and (slow) `dvc plots diff` of two experiments."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
import yaml

from lure.pipeline.generate import chart_props, plot_entries, render_dvc_yaml, stage_entry
from lure.pipeline.stages import pipeline_stages
from lure.plots import calibration, charts, estimates, llm, page, popularity
from lure.registry import PlotDef, StageDef
from lure.spec.load import load_spec
from tests.conftest import ROOT, dvc

matplotlib.use("Agg")
import matplotlib.pyplot as plt

CHARTS = (
    charts.POPULARITY,
    charts.CALIBRATION,
    charts.ESTIMATES,
    charts.ATTRIBUTION,
    charts.TOP1_GROUPS,
    charts.COURSE,
)


# ---------------------------------------------------------------- declarations and dvc.yaml


def test_plotdef_refuses_what_dvc_could_not_draw() -> None:
    with pytest.raises(ValueError, match="plot a.csv: y must be a non-empty tuple"):
        PlotDef("a.csv", x="k", y="v", title="t")  # type: ignore[arg-type]  # a bare string is not a tuple
    with pytest.raises(ValueError, match="plot a.csv: y must be"):
        PlotDef("a.csv", x="k", y=(), title="t")
    with pytest.raises(ValueError, match="plot a.csv: title must not be empty"):
        PlotDef("a.csv", x="k", y=("v",), title="")
    chart = PlotDef("p/a.csv", x="k", y=("v",), title="t")
    with pytest.raises(ValueError, match=r"stage 's': charts \['p/a.csv'\] are not among its plots"):
        StageDef(name="s", params=(), plots=("p/b.png",), charts=(chart,))


def test_plot_files_are_outputs_and_the_top_level_section_draws_them() -> None:
    one = PlotDef("p/a.csv", x="k", y=("v",), title="A", template="scatter", x_label="K")
    two = PlotDef("p/b.csv", x="k", y=("v", "w"), title="B", template="lure/plots/templates/loglog.json")
    stage = StageDef(
        name="s", params=(), outs=("d",), plots=("p/a.csv", "p/a.png", "p/b.csv"), charts=(one, two), module="m"
    )
    entry = stage_entry(stage, ROOT, derived=[])
    assert "plots" not in entry  # as stage plots too, DVC would also draw each CSV with its default
    assert entry["outs"] == [
        "d",
        {"p/a.csv": {"cache": False}},
        {"p/a.png": {"cache": False}},
        {"p/b.csv": {"cache": False}},
    ]
    assert plot_entries([stage]) == [
        {"p/a.csv": {"template": "scatter", "x": "k", "y": "v", "title": "A", "x_label": "K"}},
        "p/a.png",
        {"p/b.csv": {"template": "lure/plots/templates/loglog.json", "x": "k", "y": ["v", "w"], "title": "B"}},
    ]
    with pytest.raises(ValueError, match="plot p/a.csv: template 'scater' is neither a .json file nor one of DVC's"):
        chart_props(PlotDef("p/a.csv", x="k", y=("v",), title="A", template="scater"))


def test_default_spec_charts_every_csv_with_columns_of_the_committed_files() -> None:
    spec = load_spec(ROOT / "specs" / "world.yaml")
    doc = yaml.safe_load(render_dvc_yaml(spec, ROOT))
    assert not any("plots" in entry for entry in doc["stages"].values())
    declared = [p for s in pipeline_stages(spec) for p in s.plots]
    top = [next(iter(e)) if isinstance(e, dict) else e for e in doc["plots"]]
    assert top == declared and len(declared) == 22  # 11 charts, each a CSV and its PNG
    for entry in doc["plots"]:
        if isinstance(entry, str):
            assert entry.endswith(".png")
            continue
        ((path, props),) = entry.items()
        header = next(csv.reader(io.StringIO((ROOT / path).read_text())))
        ys = props["y"] if isinstance(props["y"], list) else [props["y"]]
        assert {props["x"], *ys} <= set(header), (path, header)
        assert (ROOT / props["template"]).is_file() and props["title"]


def _fields(node: Any) -> set[str]:
    """Every field name a Vega-Lite spec reads (``field`` of encodings, facets and filters)."""
    if isinstance(node, dict):
        found = {node["field"]} if isinstance(node.get("field"), str) else set()
        return found | {f for v in node.values() for f in _fields(v)}
    if isinstance(node, list):
        return {f for v in node for f in _fields(v)}
    return set()


def _computed(node: Any) -> set[str]:
    """The names transforms add (``calculate ... as``)."""
    if isinstance(node, dict):
        found = {node["as"]} if isinstance(node.get("as"), str) else set()
        return found | {f for v in node.values() for f in _computed(v)}
    if isinstance(node, list):
        return {f for v in node for f in _computed(v)}
    return set()


@pytest.mark.parametrize("chart", CHARTS, ids=lambda c: c.path)
def test_templates_filled_with_the_committed_csv_read_only_its_columns_and_the_revision(chart: PlotDef) -> None:
    """dvc_render fills the template as `dvc plots show` does: every anchor is replaced, every field the chart
    reads is a column of the CSV, the revision (so `dvc plots diff` keeps experiments apart) or computed in it."""
    from dvc_render.vega import VegaRenderer

    rows = list(csv.DictReader(io.StringIO((ROOT / chart.path).read_text())))
    points = [{**r, "rev": "workspace"} for r in rows]
    props = chart_props(chart) | {"template": str(ROOT / chart.template)}
    spec = VegaRenderer(points, chart.path, **props).get_filled_template()
    assert "<DVC_METRIC" not in json.dumps(spec)
    assert spec["data"]["values"] == points and spec["title"]["text"] == chart.title
    fields = _fields(spec)
    assert "rev" in fields, "revisions must be told apart"
    assert fields <= set(rows[0]) | {"rev"} | _computed(spec), fields - set(rows[0])


# ---------------------------------------------------------------- the offline page


def test_page_inlines_the_vendored_builds_and_loads_nothing() -> None:
    html = page.page_template()
    assert "{plot_divs}" in html and "{scripts}" not in html  # dvc_render's CDN <script> tags have nowhere to go
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.IGNORECASE)
    for _, package, version in page.BUILDS:
        assert f"/*! {package} {version}, BSD-3-Clause" in html
        assert (page.VENDOR / f"LICENSE-{package}").read_text().count("Redistribution and use in source and binary")
    assert "editor: false" in html and "sourceMappingURL" not in html


def test_page_refuses_a_build_that_is_not_the_declared_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page, "BUILDS", (("vega.min.js", "vega", "9.9.9"),))
    with pytest.raises(ValueError, match=r"vega.min.js: expected vega 9.9.9"):
        page.page_template()


def test_dvc_render_fills_the_page_without_any_network_reference(tmp_path: Path) -> None:
    from dvc_render import render_html
    from dvc_render.vega import VegaRenderer

    template = page.write_page_template(tmp_path / "page.html")
    points = [
        {"rank": "1", "interactions": "5", "rev": "workspace"},
        {"rank": "2", "interactions": "2", "rev": "workspace"},
    ]
    renderer = VegaRenderer(
        points, "pop.csv", **chart_props(charts.POPULARITY) | {"template": str(ROOT / charts.POPULARITY.template)}
    )
    out = Path(render_html([renderer], tmp_path / "out" / "index.html", html_template=template))
    html = out.read_text()
    assert "vegaEmbed('#pop_csv', spec)" in html and '"interactions": "5"' in html
    assert "cdn.jsdelivr" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html, re.IGNORECASE)


# ---------------------------------------------------------------- PNGs on hand-made frames


def _axes(ncols: int = 1) -> tuple[Any, Any]:
    fig, ax = plt.subplots(1, ncols)
    return fig, ax


def _tidy() -> pd.DataFrame:
    rows = []
    for model, truth in (("a", 0.10), ("b", 0.20)):
        for est, value, lo, hi in (
            ("naive", 2 * truth, 2 * truth - 0.01, 2 * truth + 0.02),
            ("ips", truth + 0.01, truth - 0.03, truth + 0.05),
            ("snips", truth, truth - 0.02, truth + 0.02),
            ("truth", truth, truth - 0.005, truth + 0.004),
        ):
            rows.append(("recall_at_10", model, est, value, lo, hi, truth))
    return pd.DataFrame(rows, columns=["metric", "model", "estimator", "value", "ci_low", "ci_high", "target"])


def test_estimates_draw_both_intervals_and_name_the_target() -> None:
    tidy = _tidy()
    assert estimates.target_name(tidy) == "truth"
    assert estimates.target_name(tidy.assign(estimator=tidy["estimator"].replace("truth", "mar"))) == "mar"
    fig, ax = _axes()
    estimates.draw_estimates(ax, tidy)
    ips = next(c for c in ax.containers if c.get_label() == "ips")
    data_line, _caps, (xbars, ybars) = ips.lines[0], ips.lines[1], ips.lines[2]
    assert np.allclose(data_line.get_ydata(), [0.11, 0.21])
    # model a: estimate 0.11 with CI [0.07, 0.15]; its truth 0.10 with CI [0.095, 0.104]
    assert np.allclose(ybars.get_segments()[0], [[0.10, 0.07], [0.10, 0.15]])
    assert np.allclose(xbars.get_segments()[0], [[0.095, 0.11], [0.104, 0.11]])
    assert ax.get_xlim() == pytest.approx((0.0, 0.20 * 1.12)) and ax.get_ylim()[0] == 0.0
    assert ax.get_title() == "Offline estimates vs truth: recall@10" and ax.get_xlabel() == "truth recall@10"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["estimate = truth", "naive", "ips", "snips"]
    plt.close(fig)


def _shares() -> pd.DataFrame:
    ref = [("test targets", g, s) for g, s in ((1, 0.5), (2, 0.3), (3, 0.2))]
    model = [("sft", g, s) for g, s in ((1, 0.9), (2, 0.1), (3, 0.0))]
    return pd.DataFrame(ref + model, columns=["model", "group", "share"])


def test_top1_groups_draw_the_test_targets_as_a_reference_and_explain_the_groups() -> None:
    fig, ax = _axes()
    llm.draw_top1_groups(ax, _shares())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["G1\n(most relevant)", "G2", "G3\n(least relevant)"]
    assert ax.get_ylim() == (0.0, 1.0) and "Eq. 2 relevance to the auxiliary tokens" in ax.get_xlabel()
    (ref,) = [c for c in ax.collections if c.get_label() == "test targets (reference)"]
    assert np.allclose([seg[0][1] for seg in ref.get_segments()], [0.5, 0.3, 0.2])
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.9, 0.1, 0.0]  # bars: the recommenders only
    plt.close(fig)


def test_course_panels_share_one_scale_and_one_legend_of_the_groups() -> None:
    rows = pd.DataFrame(
        [(m, step, g, s) for m in ("gdrt", "sft") for step in (10, 20) for g, s in ((1, 0.6), (2, 0.3), (3, 0.1))],
        columns=["model", "step", "group", "share"],
    )
    fig, axes = _axes(2)
    llm.draw_course(fig, axes, rows)
    assert [a.get_ylim() for a in axes] == [(-0.02, 1.02)] * 2 and [a.get_title() for a in axes] == ["gdrt", "sft"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["G1 (most relevant)", "G2", "G3 (least relevant)"]
    plt.close(fig)


def test_attribution_uses_readable_ratio_names_and_labels_every_bar() -> None:
    rows = pd.DataFrame(
        [
            ("base", "ratio_task_to_history", -4.5),
            ("base", "ratio_first_token_to_history", 0.8),
            ("sft", "ratio_task_to_history", -0.004),
            ("sft", "ratio_first_token_to_history", 6.25),
        ],
        columns=["model", "ratio", "value"],
    )
    fig, ax = _axes()
    llm.draw_attribution(ax, rows)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["= history (1)", "task text / history", "first title token / history"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(["-4.50", "-0.00", "0.80", "6.25"])
    plt.close(fig)


def test_popularity_leaves_out_items_without_interactions_and_says_so() -> None:
    curve = popularity.popularity_curve(pd.DataFrame({"popularity": [0, 5, 2, 0, 9]}))
    fig, ax = _axes()
    popularity.draw_popularity(ax, curve)
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [1, 2, 3] and list(line.get_ydata()) == [9, 5, 2]
    assert ax.get_legend().get_texts()[0].get_text() == "3 items (2 more with no interaction, not drawn)"
    assert ax.get_xscale() == ax.get_yscale() == "log"
    plt.close(fig)


def test_calibration_is_log_log_on_one_scale_unless_a_bin_saw_nothing() -> None:
    table = pd.DataFrame({"bin": [0, 1], "n": [10, 10], "pred_mean": [0.001, 0.1], "obs_rate": [0.002, 0.08]})
    fig, ax = _axes()
    calibration.draw_calibration(ax, table)
    assert ax.get_xscale() == "log" and ax.get_xlim() == ax.get_ylim() == pytest.approx((0.001 / 1.5, 0.1 * 1.5))
    plt.close(fig)
    fig, ax = _axes()
    calibration.draw_calibration(ax, table.assign(obs_rate=[0.0, 0.08]))
    assert ax.get_xscale() == "linear" and ax.get_xlim() == ax.get_ylim() == pytest.approx((0.0, 0.1 * 1.05))
    plt.close(fig)


def test_writers_keep_the_csv_and_write_a_png(tmp_path: Path) -> None:
    estimates.write_estimates_plot(_tidy(), tmp_path)
    llm.write_top1_groups_plot(_shares(), tmp_path)
    assert (tmp_path / "estimates.csv").read_text() == _tidy().to_csv(index=False)
    for name in ("estimates", "top1_groups"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- dvc plots diff of two experiments


@pytest.mark.slow
def test_plots_diff_of_two_experiments_overlays_each_ones_data_offline(offline_copy: Path) -> None:
    root = offline_copy
    path = charts.ESTIMATES.path
    written = {}
    for name, boot in (("boot-30", 30), ("boot-40", 40)):
        dvc("exp", "run", "-n", name, "-S", f"eval.bootstrap={boot}", cwd=root)
        written[name] = list(csv.DictReader(io.StringIO((root / path).read_text())))
    assert written["boot-30"] != written["boot-40"]  # other bootstrap draws, other intervals
    shown = json.loads(dvc("plots", "diff", "boot-30", "boot-40", "--json", cwd=root).stdout)
    assert not shown.get("errors"), shown.get("errors")
    (chart,) = shown["data"][path]
    assert chart["revisions"] == ["boot-30", "boot-40"] and "facet" in chart["content"]  # lure's template
    values = chart["content"]["data"]["values"]
    for name, rows in written.items():
        mine = [
            {k: v for k, v in d.items() if k not in ("rev", "filename", "field")} for d in values if d["rev"] == name
        ]
        assert mine == rows, name
    page.write_page_template(root / ".lure" / "plots.html")
    dvc("plots", "diff", "boot-30", "boot-40", "--html-template", ".lure/plots.html", "-o", "dvc_plots", cwd=root)
    html = (root / "dvc_plots" / "index.html").read_text()
    assert "boot-40" in html and "cdn.jsdelivr" not in html
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.IGNORECASE)
