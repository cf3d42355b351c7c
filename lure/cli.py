"""The ``lure`` command: spec management, experiments that may change the pipeline's shape, summaries, tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fnmatch import fnmatchcase as fnmatch
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lure.io import write_json, write_text
from lure.layout import PARAMS
from lure.spec.dump import dump_spec
from lure.spec.load import (
    SpecError,
    apply_overrides,
    flatten,
    load_spec,
    read_yaml_mapping,
    structural_values,
    validate_spec,
)
from lure.spec.model import Spec, spec_to_dict

app = typer.Typer(help="lure: reproducible experiments on bias in LLM-based recommenders.", no_args_is_help=True)
spec_app = typer.Typer(help="Validate, select, inspect and document experiment specs.", no_args_is_help=True)
exp_app = typer.Typer(help="Run experiments through DVC, regenerating dvc.yaml when the shape changes.")
app.add_typer(spec_app, name="spec")
app.add_typer(exp_app, name="exp")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        from lure import __version__

        console.print(f"lure {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print lure's version and exit", callback=_version, is_eager=True, metavar=""),
    ] = False,
) -> None:
    """lure: reproducible experiments on bias in LLM-based recommenders."""


#: How a headline metric's direction is shown after its label.
ARROWS = {"higher": " ↑", "lower": " ↓", None: ""}


def _die(exc: SpecError) -> None:
    err.print(f"[bold red]invalid spec[/]\n{exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _write_pipeline(spec: Spec) -> None:
    from lure.pipeline.generate import DVC_YAML, render_dvc_yaml

    write_text(DVC_YAML, render_dvc_yaml(spec))


@spec_app.command("use")
def spec_use(path: Annotated[Path, typer.Argument(help="Spec file to make active, e.g. specs/world.yaml")]) -> None:
    """Validate a spec, write it to params.yaml with every field spelled out, and regenerate dvc.yaml."""
    try:
        spec = load_spec(path)
        _write_pipeline(spec)  # before params.yaml: a plugin import error must not leave a half-switched repo
    except (SpecError, ValueError) as exc:
        if isinstance(exc, SpecError):
            _die(exc)
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    write_text(PARAMS, dump_spec(spec))
    console.print(f"[green]✓[/] {path} is valid; wrote {PARAMS} (every field, defaults included) and dvc.yaml")


@spec_app.command("check")
def spec_check(params: Annotated[Path, typer.Option(help="Spec to check")] = Path(PARAMS)) -> None:
    """Validate params.yaml; fail with a diff if dvc.yaml is not what the generator writes now."""
    from lure.pipeline.generate import diff_dvc_yaml

    try:
        spec = load_spec(params)
    except SpecError as exc:
        _die(exc)
    diff = diff_dvc_yaml(spec)
    if diff:
        err.print("[bold red]dvc.yaml is stale[/]: regenerate it with `lure spec use params.yaml`", highlight=False)
        err.print(diff, markup=False, highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {params} is valid and dvc.yaml is up to date")


@spec_app.command("schema")
def spec_schema(
    out: Annotated[Path, typer.Option(help="Where to write the JSON Schema")] = Path("spec.schema.json"),
) -> None:
    """Write the spec's JSON Schema (editors use it for completion and inline validation)."""
    write_json(out, Spec.model_json_schema())
    console.print(f"[green]✓[/] wrote {out}")


@spec_app.command("show")
def spec_show(
    section: Annotated[
        str | None, typer.Argument(help="Show only this section or field, e.g. 'method' or 'data.source'")
    ] = None,
    params: Annotated[Path, typer.Option(help="Spec to show")] = Path(PARAMS),
) -> None:
    """Print the effective spec (defaults filled in) with each field's description."""
    try:
        spec = load_spec(params)
    except SpecError as exc:
        _die(exc)
    fields = flatten(spec_to_dict(spec))
    if section is not None:
        fields = {k: v for k, v in fields.items() if k == section or k.startswith(section + ".")}
        if not fields:
            sections = ", ".join(sorted({k.split(".")[0] for k in flatten(spec_to_dict(spec))}))
            err.print(f"[red]the spec has no field {section!r}[/]; sections: {sections}")
            raise typer.Exit(2)
    table = Table(title=f"effective spec: {params}" + (f" ({section})" if section else ""), show_lines=False)
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("value", style="green")
    table.add_column("description")
    descriptions = field_descriptions()
    for path, value in fields.items():
        mark = " [magenta](structural)[/]" if path in structural_values(spec) else ""
        table.add_row(path, json.dumps(value), descriptions.get(path, "") + mark)
    Console(soft_wrap=True).print(table)  # a fresh console: the terminal width (COLUMNS) is read at call time


def field_descriptions() -> dict[str, str]:
    """Dotted path → description, walking the JSON Schema (covers every union member)."""
    schema = Spec.model_json_schema()
    defs = schema.get("$defs", {})
    out: dict[str, str] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, prop in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            if "description" in prop and path not in out:
                out[path] = prop["description"]
            for ref in _refs(prop):
                walk(defs[ref], path + ".")

    def _refs(prop: dict[str, Any]) -> list[str]:
        found = []
        for key in ("$ref",):
            if key in prop:
                found.append(prop[key].rsplit("/", 1)[-1])
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in prop.get(key, []):
                found.extend(_refs(sub))
        return found

    walk(schema, "")
    return out


@exp_app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exp_run(
    ctx: typer.Context,
    set_param: Annotated[
        list[str], typer.Option("-S", "--set-param", help="KEY=VALUE override (repeat it)", metavar="KEY=VALUE")
    ] = [],
    queue: Annotated[
        bool, typer.Option("--queue", help="Queue instead of running now (dvc queue start runs it)", metavar="")
    ] = False,
) -> None:
    """Validate overrides, regenerate dvc.yaml if they change the pipeline's shape, then `dvc exp run`.

    Every other option is passed to `dvc exp run` unchanged (e.g. `-n NAME`, `--temp`, `--force`).
    On any failure params.yaml and dvc.yaml are left byte for byte as they were."""
    from lure.io import write_with
    from lure.pipeline.generate import DVC_YAML, render_dvc_yaml, shape_mismatch

    try:
        current = read_yaml_mapping(PARAMS)
        new_spec = validate_spec(apply_overrides(current, set_param), f"{PARAMS} with -S {' '.join(set_param)}")
        old_spec = validate_spec(current, PARAMS)
    except SpecError as exc:
        _die(exc)
    dvc_args = [sys.executable, "-m", "dvc", "exp", "run", *[a for s in set_param for a in ("-S", s)], *ctx.args]
    if queue:
        dvc_args.append("--queue")
    reshaped = structural_values(new_spec) != structural_values(old_spec) or shape_mismatch(old_spec) is not None
    # `dvc exp run -S` writes the new values into params.yaml and leaves them there when a stage fails; a failed,
    # interrupted or queued run (a queued one took its snapshot) gets both files back byte for byte.
    saved = {p: Path(p).read_bytes() if Path(p).exists() else None for p in (PARAMS, DVC_YAML)}
    code = 130  # kept by a KeyboardInterrupt (and by any other exception, which then propagates)
    try:
        if reshaped:
            write_text(PARAMS, _set_preserving_comments(saved[PARAMS].decode("utf-8"), set_param))
            write_text(DVC_YAML, render_dvc_yaml(new_spec))
            console.print("[yellow]pipeline shape changed:[/] regenerated dvc.yaml for this experiment")
        code = _run(dvc_args)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]: params.yaml and dvc.yaml restored", highlight=False)
    finally:
        if queue or code != 0:
            for path, data in saved.items():
                if data is None:
                    Path(path).unlink(missing_ok=True)
                elif not Path(path).exists() or Path(path).read_bytes() != data:
                    write_with(path, lambda tmp, data=data: tmp.write_bytes(data))
    raise typer.Exit(code)


@exp_app.command("show")
def exp_show(
    metric: Annotated[
        list[str],
        typer.Option("--metric", "-m", help="Show only metrics matching this pattern, e.g. 'llm-eval-*/ndcg*'"),
    ] = [],
    param: Annotated[
        list[str], typer.Option("--param", "-p", help="Also show parameters matching this pattern, e.g. 'method.*'")
    ] = [],
    all_commits: Annotated[
        bool, typer.Option("--all-commits", help="Include every commit, not only HEAD", metavar="")
    ] = False,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV: one row per experiment", metavar="")] = False,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table", metavar="")] = False,
) -> None:
    """Compare experiments: the parameters that differ and each stage's headline metrics, best value marked (*).

    Reads `dvc exp show --json` (the workspace, HEAD and its experiments: named runs, queue results). The table has
    one row per metric and one column per experiment, and splits into several tables rather than truncate.
    """
    from lure.display import Column, print_table
    from lure.experiments import changed_params, dvc_exp_show, experiments_from_exp_show, flatten_params, headline_rows

    try:
        shown = dvc_exp_show(all_commits=all_commits)
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    experiments = _distinct(experiments_from_exp_show(shown))
    if not experiments:
        console.print("no experiments with results yet: run `make repro` or `lure exp run -S KEY=VALUE`")
        return
    stages = _stages_of(experiment.params for experiment in experiments)
    rows = headline_rows(experiments, stages, metric)
    flat = [flatten_params(e.params) for e in experiments]
    shown_params = [*changed_params(experiments)]
    shown_params += [k for k in sorted({k for f in flat for k in f}) if any(fnmatch(k, p) for p in param)]
    shown_params = list(dict.fromkeys(shown_params))
    names = [e.name for e in experiments]
    if csv or md:
        _print_comparison_text(experiments, shown_params, rows, csv=csv)
        return
    cells = [[p, *(_param_text(f.get(p)) for f in flat)] for p in shown_params]
    cells.append(["git revision", *(e.rev[:7] if e.kind != "workspace" else "workspace" for e in experiments)])
    for row in rows:
        cells.append([row.name + ARROWS[row.better], *(_fmt(v, star=i == row.best) for i, v in enumerate(row.values))])
    print_table(
        console,
        f"{len(experiments)} experiment(s): {len(shown_params)} parameter(s) that differ, {len(rows)} headline metrics",
        [Column("parameter / stage/metric", "left")],
        [Column(n) for n in names],
        cells,
        caption="* best of the row (↑ higher is better, ↓ lower); — not computed in that experiment",
    )


def _distinct(experiments: list[Any]) -> list[Any]:
    """Drop the workspace row when it equals the commit it sits on (nothing run since): DVC lists both."""
    if len(experiments) > 1 and experiments[0].kind == "workspace":
        workspace, head = experiments[0], experiments[1]
        if (workspace.params, workspace.metrics) == (head.params, head.metrics):
            return experiments[1:]
    return experiments


def _stages_of(all_params: Any) -> dict[str, Any]:
    """Every stage (by name, pipeline order) of the experiments' specs. A spec that no longer validates (an older
    commit's, written before a spec change) contributes nothing; the default spec's stages come last, so the
    metrics of such an experiment still show wherever today's stages of the same name declare headlines."""
    from lure.pipeline.stages import pipeline_stages

    stages: dict[str, Any] = {}
    for params in all_params:
        try:
            spec = validate_spec(params, "experiment")
        except SpecError:
            continue
        for stage in pipeline_stages(spec):
            stages.setdefault(stage.name, stage)
    for stage in pipeline_stages(Spec()):
        stages.setdefault(stage.name, stage)
    return stages


def _param_text(value: Any) -> str:
    """A parameter as the spec writes it (0.5, 1.0, [sft], null), '—' where the experiment has no such field."""
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value)


def _fmt(value: Any, *, star: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        text = f"{int(value):,}"  # counts: 36,645 rather than 3.664e+04
    elif isinstance(value, float):
        text = f"{value:.4g}" if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-3) else f"{value:.4f}"
    else:
        text = json.dumps(value) if not isinstance(value, str) else value
    return text + ("*" if star else "")


def _print_comparison_text(experiments: list[Any], params: list[str], rows: list[Any], *, csv: bool) -> None:
    """CSV (one row per experiment, full precision) or Markdown (one row per metric, as the table)."""
    from lure.experiments import flatten_params

    flat = [flatten_params(e.params) for e in experiments]
    if csv:
        import csv as csv_module

        writer = csv_module.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["experiment", "rev", *params, *(r.name for r in rows)])
        for i, e in enumerate(experiments):
            values = [flat[i].get(p) for p in params] + [r.values[i] for r in rows]
            writer.writerow([e.name, e.rev, *("" if v is None else v for v in values)])
        return
    header = ["parameter / stage/metric", *(e.name for e in experiments)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p in params:
        lines.append("| " + " | ".join([p, *(_param_text(f.get(p)) for f in flat)]) + " |")
    for r in rows:
        cells = [f"**{_fmt(v)}**" if i == r.best else _fmt(v) for i, v in enumerate(r.values)]
        lines.append("| " + " | ".join([r.name + ARROWS[r.better], *cells]) + " |")
    sys.stdout.write("\n".join(lines) + "\n")


def _run(args: list[str]) -> int:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return subprocess.run(args, env=env).returncode


def _set_preserving_comments(text: str, overrides: list[str]) -> str:
    """Apply -S overrides to params.yaml's text, keeping comments and order, as dvc exp run -S does."""
    from lure.io import set_yaml_values
    from lure.spec.load import parse_override

    return set_yaml_values(text, [parse_override(item) for item in overrides], PARAMS)


@app.command("summary")
def summary(
    metrics_dir: Annotated[Path, typer.Option(help="Folder of stage metrics")] = Path("metrics"),
    full: Annotated[bool, typer.Option("--full", help="Every metric, nested ones included", metavar="")] = False,
) -> None:
    """Print the pipeline's results (the end of `make repro`): each stage's headline metrics, the offline
    evaluation as a model × estimator table and the next-item results. `--full` lists every metric of every stage."""
    from lure.display import Column, print_table
    from lure.io import read_json
    from lure.pipeline.stages import pipeline_stages

    files = {f.stem: f for f in sorted(metrics_dir.glob("*.json"))}
    if not files:
        console.print(f"no metrics in {metrics_dir}/ yet: run `make repro`")
        return
    data = {stem: read_json(path) for stem, path in files.items()}
    keys = [Column("stage", "left"), Column("metric", "left")]
    if full:
        rows = [[stem, key, _fmt(value)] for stem, d in data.items() for key, value in flatten(d).items()]
        print_table(console, "every metric", keys, [Column("value")], rows)
        return
    try:  # the headline metrics each stage declares; without a params.yaml, the default spec's stages
        stages = pipeline_stages(load_spec(PARAMS) if Path(PARAMS).is_file() else Spec())
    except SpecError as exc:
        _die(exc)
    rows = [
        [stage.name, item.label + ARROWS[item.better], _fmt(item.value)]
        for stage in stages
        if stage.name in data
        for item in stage.headline_values(data[stage.name])
    ]
    print_table(console, "headline metrics (`lure summary --full`: every metric)", keys, [Column("value")], rows)
    if "evaluate" in data:
        _print_evaluation(data["evaluate"])
    if "llm-report" in data:
        _print_llm_report(data["llm-report"])


#: Blocks of the llm-report metrics that are not a dataset's recommender × metric table.
REPORT_BLOCKS = ("comparison", "attribution", "language_bias")


def _print_llm_report(report: dict[str, Any]) -> None:
    """Recommender × metric on the window test split (the llm-report stage), one table per dataset."""
    from lure.display import Column, print_table

    columns = ("ndcg_at_5", "ndcg_at_10", "hit_at_5", "hit_at_10", "mgu_at_5", "dgu_at_5", "true_relevance_at_10",
               "coverage_at_10")  # fmt: skip
    headers = ("ndcg@5", "ndcg@10", "hit@5", "hit@10", "mgu@5", "dgu@5", "true_rel@10", "coverage@10")
    for dataset, results in report.items():
        if dataset in REPORT_BLOCKS or not isinstance(results, dict):
            continue
        shown = [c for c in columns if any(c in v for v in results.values())]
        if not shown:
            continue
        rows = [[name, *(_fmt(values.get(c)) for c in shown)] for name, values in results.items()]
        print_table(
            console,
            f"next-item recommendation on {dataset} (window test split)",
            [Column("recommender", "left")],
            [Column(headers[columns.index(c)]) for c in shown],
            rows,
        )
    bias = report.get("language_bias")
    if isinstance(bias, dict) and bias:
        keys = ("eq2_spearman_prior", "eq2_spearman_popularity", "top1_top_prior_share", "top1_top_prior_expected",
                "ratio_task_to_history", "ratio_first_token_to_history")  # fmt: skip
        names = ("eq2 ρ prior", "eq2 ρ popularity", "top1 high-prior", "reference", "task/history", "first/history")
        shown = [k for k in keys if any(k in v for v in bias.values() if isinstance(v, dict))]
        rows = [[m, *(_fmt(v.get(k)) for k in shown)] for m, v in bias.items() if isinstance(v, dict)]
        print_table(
            console,
            "language bias against the world's truth (docs/gdrt.md)",
            [Column("model", "left")],
            [Column(names[keys.index(k)]) for k in shown],
            rows,
        )


@app.command("study")
def study(
    baseline: Annotated[str, typer.Option(help="Recommender the method under study is compared with")] = "sft",
    method: Annotated[str | None, typer.Option(help="Recommender under study (default: the spec's method)")] = None,
    dataset: Annotated[str, typer.Option(help="Dataset key of the report (data.source.name, e.g. world)")] = "world",
    metric: Annotated[
        list[str],
        typer.Option(
            help="Metric to compare (repeat the option): an llm-report column (ndcg_at_10, true_relevance_at_10 ...), "
            "a language-bias measure (top1_top_prior_share, eq2_spearman_prior ...) or an llm-eval entry "
            "(top1_group_share.0 ...)"
        ),
    ] = [
        "ndcg_at_10",
        "hit_at_10",
        "mgu_at_5",
        "dgu_at_5",
    ],
    set_param: Annotated[
        list[str],
        typer.Option(
            "-S",
            "--set-param",
            help="KEY=VALUE: study the experiments run with params.yaml plus this override (repeat it), e.g. one "
            "cell of a grid: -S method.tau=0.1",
            metavar="KEY=VALUE",
        ),
    ] = [],
    confidence: Annotated[float, typer.Option(help="Confidence level of the t intervals")] = 0.95,
    out: Annotated[Path | None, typer.Option(help="Also write the table as CSV here")] = None,
) -> None:
    """Across-seed comparison from DVC experiments: run `lure exp run --queue -S seed=1` (2, ...) and
    `dvc queue start` first; every experiment run with params.yaml (plus the -S overrides), seed aside, counts once
    per seed."""
    from lure.experiments import dvc_exp_show
    from lure.study import experiment_reports, same_spec, seed_study, with_eval_files

    try:
        reference = apply_overrides(read_yaml_mapping(PARAMS), set_param)
        spec = validate_spec(reference, f"{PARAMS} with -S {' '.join(set_param)}" if set_param else PARAMS)
    except SpecError as exc:
        _die(exc)
    try:
        shown = dvc_exp_show()
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    reports, skipped = same_spec(experiment_reports(shown), reference)
    if skipped:
        console.print(
            f"skipped {len(skipped)} experiment(s) run with another spec than {PARAMS}"
            + (f" with -S {' '.join(set_param)}" if set_param else "")
            + " (seed aside): "
            + ", ".join(sorted({str(r["name"]) for r in skipped}))
        )
    reports = with_eval_files(reports, [method or spec.method.name, baseline])
    try:
        frame = seed_study(reports, method or spec.method.name, baseline, dataset, metric, confidence)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if int(frame["n_seeds"].iloc[0]) < 2:
        err.print(
            "[yellow]warning:[/] only one seed has results, so every interval below has zero width and says nothing "
            "about seed-to-seed noise; run more seeds (`lure exp run --queue -S seed=1`, then `dvc queue start`)"
        )
    from lure.display import Column, print_table

    rows = [
        [r.metric, r.what, f"{r.mean:.4f}", f"[{r.ci_low:.4f}, {r.ci_high:.4f}]", ", ".join(map(str, r.values))]
        for r in frame.itertuples()
    ]
    print_table(
        console,
        f"{method or spec.method.name} vs {baseline} over seeds {frame['seeds'].iloc[0]} "
        f"({confidence:.0%} t intervals)",
        [Column("metric", "left"), Column("what", "left")],
        [Column("mean"), Column("interval"), Column("per seed", "left")],
        rows,
    )
    if out is not None:
        write_text(out, frame.to_csv(index=False))


def _print_evaluation(result: dict[str, Any], metric: str = "recall_at_10") -> None:
    """Model × estimator means of one metric, with the confidence interval of each estimate."""
    from lure.display import Column, print_table

    reserved = {"users", "comparisons", "summary"}  # the non-model blocks of lure.evaluation.evaluate_zoo
    models = [m for m, v in result.items() if m not in reserved and isinstance(v, dict)]
    order = ("naive", "ips", "snips", "ips_global_sn", "truth", "mar")
    estimators = [e for e in order if any(e in result[m] for m in models)]
    rows = []
    for m in models:
        cells = []
        for est in estimators:
            stats = result[m].get(est, {}).get(metric, {})
            mean, lo, hi = stats.get("mean"), stats.get("ci_low"), stats.get("ci_high")
            cells.append("—" if mean is None else f"{mean:.4f}" + (f"\n[{lo:.3f}, {hi:.3f}]" if lo is not None else ""))
        rows.append([m, *cells])
    target = result.get("summary", {}).get("target")
    print_table(
        console,
        f"offline evaluation: {metric}, mean and CI per estimator (target: {target})",
        [Column("model", "left")],
        [Column(e) for e in estimators],
        rows,
    )


@app.command("tables")
def tables(
    params: Annotated[Path, typer.Option(help="Spec to take tables.* from")] = Path(PARAMS),
    long: Annotated[
        bool,
        typer.Option("--long", help="One row per cell: paper, ours, Δ and world (simulated) in columns", metavar=""),
    ] = False,
) -> None:
    """Print every registered paper table (paper | ours | difference | world) from the current metrics.

    Each table says which spec fills which rows and with what command; a table wider than the terminal (or COLUMNS,
    80 when piped) is split or laid out one row per cell, never truncated. Files are written by the ``tables``
    stage (`make paper-tables` runs it first); this command only shows them.
    """
    from lure.pipeline.stages import pipeline_stages, read_dep_metrics
    from lure.tables.console import print_tables
    from lure.tables.render import render_spec

    try:
        spec = load_spec(params)
    except SpecError as exc:
        _die(exc)
    stage = next(s for s in pipeline_stages(spec) if s.name == "tables")
    print_tables(render_spec(spec.tables, read_dep_metrics(stage), None), console, long=long)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
