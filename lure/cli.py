"""The ``lure`` command: spec management, experiments that may change the pipeline's shape, summaries, tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lure.io import write_json, write_text
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

PARAMS = "params.yaml"


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
def spec_show(params: Annotated[Path, typer.Option(help="Spec to show")] = Path(PARAMS)) -> None:
    """Print the effective spec (defaults filled in) with each field's description."""
    try:
        spec = load_spec(params)
    except SpecError as exc:
        _die(exc)
    table = Table(title=f"effective spec: {params}", show_lines=False)
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("value", style="green")
    table.add_column("description")
    descriptions = field_descriptions()
    for path, value in flatten(spec_to_dict(spec)).items():
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
    set_param: Annotated[list[str], typer.Option("-S", "--set-param", help="KEY=VALUE override")] = [],
    queue: Annotated[
        bool, typer.Option("--queue", help="Queue instead of running now (dvc queue start runs it)")
    ] = False,
) -> None:
    """Validate overrides, regenerate dvc.yaml if they change the pipeline's shape, then `dvc exp run`."""
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
    if not reshaped:
        raise typer.Exit(_run(dvc_args))
    saved = {p: Path(p).read_text(encoding="utf-8") for p in (PARAMS, DVC_YAML) if Path(p).exists()}
    write_text(PARAMS, _set_preserving_comments(saved[PARAMS], set_param))
    write_text(DVC_YAML, render_dvc_yaml(new_spec))
    console.print("[yellow]pipeline shape changed:[/] regenerated dvc.yaml for this experiment")
    code = _run(dvc_args)
    if queue or code != 0:  # a queued experiment took its snapshot; leave the workspace as it was
        for path, text in saved.items():
            write_text(path, text)
    raise typer.Exit(code)


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
    full: Annotated[bool, typer.Option("--full", help="Every metric, nested ones included")] = False,
) -> None:
    """Print the pipeline's metrics (the end of `make repro`): each stage's headline numbers, then the
    offline evaluation as a model × estimator table. `--full` lists every metric."""
    from lure.io import read_json

    files = sorted(metrics_dir.glob("*.json"))
    if not files:
        console.print(f"no metrics in {metrics_dir}/ yet: run `make repro`")
        return
    table = Table(title="lure pipeline metrics")
    table.add_column("stage", style="cyan")
    table.add_column("metric")
    table.add_column("value", justify="right", style="green")
    evaluation = llm_report = None
    for f in files:
        data = read_json(f)
        if f.stem == "evaluate" and not full:
            evaluation = data
            data = {f"summary.{k}": v for k, v in data.get("summary", {}).items()}
        if f.stem == "llm-report" and not full:
            llm_report = data
            continue
        for key, value in flatten(data).items():
            if full or not isinstance(value, (dict, list)):
                table.add_row(f.stem, key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    if evaluation is not None:
        console.print(_evaluation_table(evaluation))
    if llm_report is not None:
        console.print(_llm_table(llm_report))


def _llm_table(report: dict[str, Any]) -> Table:
    """Recommender × metric on the window test split (the llm-report stage), one block per dataset."""
    table = Table(title="next-item recommendation (window test split)")
    table.add_column("dataset / recommender", style="cyan")
    columns = (
        "ndcg_at_5",
        "ndcg_at_10",
        "hit_at_5",
        "hit_at_10",
        "mgu_at_5",
        "dgu_at_5",
        "true_relevance_at_10",
        "coverage_at_10",
    )
    for c in columns:
        table.add_column(c, justify="right")
    for dataset, results in report.items():
        if dataset in ("comparison", "attribution") or not isinstance(results, dict):
            continue
        for name, values in results.items():
            table.add_row(f"{dataset} / {name}", *(f"{values[c]:.4f}" if c in values else "—" for c in columns))
    return table


@app.command("study")
def study(
    baseline: Annotated[str, typer.Option(help="Recommender the method under study is compared with")] = "sft",
    method: Annotated[str | None, typer.Option(help="Recommender under study (default: the spec's method)")] = None,
    dataset: Annotated[str, typer.Option(help="Dataset key of the report (data.source.name, e.g. world)")] = "world",
    metric: Annotated[list[str], typer.Option(help="Metrics to compare (repeat the option)")] = [
        "ndcg_at_10",
        "hit_at_10",
        "mgu_at_5",
        "dgu_at_5",
    ],
    confidence: Annotated[float, typer.Option(help="Confidence level of the t intervals")] = 0.95,
    out: Annotated[Path | None, typer.Option(help="Also write the table as CSV here")] = None,
) -> None:
    """Across-seed comparison from DVC experiments: run `dvc exp run --queue -S seed=1` (2, ...) and
    `dvc queue start` first; every experiment with an llm-report counts once per seed."""
    from lure.study import experiment_reports, same_spec, seed_study

    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", "--all-commits"],
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        console.print(f"[red]dvc exp show failed:[/] {shown.stderr.strip()}")
        raise typer.Exit(1)
    reports = experiment_reports(json.loads(shown.stdout))
    spec = load_spec(PARAMS)
    reports, skipped = same_spec(reports, read_yaml_mapping(PARAMS))
    if skipped:
        console.print(
            f"skipped {len(skipped)} experiment(s) run with another spec than {PARAMS} (seed aside): "
            + ", ".join(sorted({str(r["name"]) for r in skipped}))
        )
    try:
        frame = seed_study(reports, method or spec.method.name, baseline, dataset, metric, confidence)
    except (ValueError, KeyError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    table = Table(
        title=f"{method or spec.method.name} vs {baseline} over seeds {frame['seeds'].iloc[0]} "
        f"({confidence:.0%} t intervals)"
    )
    for c in ("metric", "what", "mean", "interval", "per seed"):
        table.add_column(c)
    for r in frame.itertuples():
        table.add_row(r.metric, r.what, f"{r.mean:.4f}", f"[{r.ci_low:.4f}, {r.ci_high:.4f}]", str(r.values))
    console.print(table)
    if out is not None:
        write_text(out, frame.to_csv(index=False))


def _evaluation_table(result: dict[str, Any], metric: str = "recall_at_10") -> Table:
    """Model × estimator means of one metric, with the 95% CI of each estimate."""
    reserved = {"users", "comparisons", "summary"}  # the non-model blocks of lure.evaluation.evaluate_zoo
    models = [m for m, v in result.items() if m not in reserved and isinstance(v, dict)]
    estimators = [e for e in ("naive", "ips", "snips", "truth", "mar") if any(e in result[m] for m in models)]
    table = Table(title=f"offline evaluation: {metric} (mean [CI]); target = {result.get('summary', {}).get('target')}")
    table.add_column("model", style="cyan")
    for est in estimators:
        table.add_column(est, justify="right")
    for m in models:
        cells = []
        for est in estimators:
            stats = result[m].get(est, {}).get(metric, {})
            mean, lo, hi = stats.get("mean"), stats.get("ci_low"), stats.get("ci_high")
            cells.append("—" if mean is None else f"{mean:.4f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""))
        table.add_row(m, *cells)
    return table


@app.command("tables")
def tables(params: Annotated[Path, typer.Option(help="Spec to take tables.* from")] = Path(PARAMS)) -> None:
    """Print every registered paper table (paper | ours | difference) from the current metrics.

    Files are written by the ``tables`` stage (`make paper-tables` runs it first); this command only shows them.
    """
    from lure.pipeline.stages import pipeline_stages, read_dep_metrics
    from lure.tables.render import print_tables, render_spec

    try:
        spec = load_spec(params)
    except SpecError as exc:
        _die(exc)
    stage = next(s for s in pipeline_stages(spec) if s.name == "tables")
    print_tables(render_spec(spec.tables, read_dep_metrics(stage), None), console)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
