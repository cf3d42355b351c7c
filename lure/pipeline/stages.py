"""Declarations of every DVC stage: what it reads from the spec, which files it depends on and what it writes.

This is the one place that assembles the pipeline's shape. ``lure.pipeline.generate`` turns it into ``dvc.yaml``;
``lure.stage`` uses it to restrict each stage to the spec fields declared here. The stages of a pluggable choice
(a zoo model's parameters, a training method's stages) come from its definition in its registry
(``lure.registry``); this module never branches on a method, model or source name. To add a stage of the core
pipeline, add a :class:`StageDef` here and a thin module ``stages/<name>.py``; to add a method or an analysis,
register a definition (docs/pipeline.md).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from lure.data.sources.base import dataset_label
from lure.layout import (
    ABPO_REPORT_DIR,
    AUGMENT_DIR,
    AUGMENT_REPORT_DIR,
    BANDITLOG_DIR,
    EVALUATE_DIR,
    EXPOSYNTH_DIR,
    ITEM_RELEVANCE,
    JUDGE_DIR,
    JUDGE_REPORT_DIR,
    JUDGE_VALIDITY_DIR,
    LLM_BASE,
    LLM_REPORT_DIR,
    MLFLOW_RUN,
    PAIRS_DIR,
    PREPARED,
    PROPENSITY_DIR,
    RECLAIF_DATA,
    RECLAIF_REPORT_DIR,
    SPEC_OK,
    TABLES_DIR,
    abpo_dir,
    llm_eval_dir,
    llm_model_dir,
    llm_pairs_dir,
    metrics_file,
    plots_dir,
    reclaif_model_dir,
    reclaif_model_names,
    template_file,
    window_model_dir,
    zoo_dir,
)
from lure.plots import charts
from lure.reclaif.instances import report_key
from lure.registry import (
    ANALYSES,
    EXPOSYNTH_PRESETS,
    METHODS,
    ZOO,
    Definition,
    Headline,
    StageDef,
    load_plugins,
)
from lure.spec.exposynth import augmented_models
from lure.spec.model import Spec, section_names
from lure.spec.reclaif import DISTILL_TRAIN_FIELDS, is_simulated


def llm_files(spec: Spec) -> tuple[str, ...]:
    """Non-Python files the LLM stages read (the Python modules each stage runs are derived from its imports): the
    recommender's prompt template."""
    return (template_file(spec.model.template),)


#: Headline metrics of a recommender's window evaluation (GDRT Table 2's metrics and the world's truth).
LLM_EVAL_HEADLINE = (
    Headline("ndcg_at_10", "ndcg@10", "higher"),
    Headline("hit_at_10", "hit@10", "higher"),
    Headline("mgu_at_5", "mgu@5", "lower"),
    Headline("dgu_at_5", "dgu@5", "lower"),
    Headline("true_relevance_at_10", "true_rel@10", "higher"),
    Headline("coverage_at_10", "coverage@10", "higher"),
)


def llm_evaluated(spec: Spec) -> list[str]:
    """Recommenders evaluated on the window test split: the method under study, then the baselines, in spec order."""
    return [] if spec.method is None else [spec.method.name, *spec.baselines]


def llm_trained(spec: Spec) -> list[str]:
    """Fine-tuned LLM methods the pipeline needs: those evaluated, those their stages read (GDRT may group tokens
    with the SFT model), and SFT when it scores Eq. 2 relevance; in registration order (SFT first)."""
    needed = {m for m in llm_evaluated(spec) if m in METHODS}
    for method in list(needed):
        needed.update(METHODS.get(method).needs(spec))
    if spec.eval.llm.fairness_scorer == "sft" or spec.abpo is not None:  # ABPO updates the SFT recommender
        needed.add("sft")
    return [m for m in METHODS.names() if m in needed]


def read_dep_metrics(stage: StageDef) -> dict[str, Any]:
    """The metrics files ``stage`` declares as deps, as {stage name: content}; never an undeclared file."""
    from lure.io import read_json

    return {Path(p).stem: read_json(p) for p in stage.deps if p.startswith("metrics/") and Path(p).is_file()}


def plugin_stages(spec: Spec) -> list[StageDef]:
    """Stages of the analyses registered by the modules named in ``spec.plugins`` (``lure.registry.ANALYSES``).

    This is how a researcher adds an analysis without touching this file: a module on the Python path, named in
    the spec, whose stages come after the evaluations (before ``tables``) and are validated, generated and tracked
    like ours.
    """
    load_plugins(spec.plugins)
    found: list[StageDef] = []
    for analysis in ANALYSES:
        if analysis.module in spec.plugins:
            found.extend(contributed_stages(analysis, spec))
    return found


def contributed_stages(definition: Definition, spec: Spec) -> list[StageDef]:
    """The stages a definition contributes. A definition registered outside ``lure`` (a plugin) adds its own
    module's file to their code dependencies: the stage modules reach it through the registry, not an import."""
    if definition.stages is None:
        return []
    stages = definition.stages(spec)
    module = sys.modules.get(definition.module)
    source = Path(getattr(module, "__file__", "") or "")
    if definition.module.split(".")[0] == "lure" or not source.is_file():
        return stages
    try:
        relative = source.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:  # installed elsewhere: not the project's code
        return stages
    return [replace(s, code=tuple(dict.fromkeys((*s.code, relative)))) for s in stages]


def llm_base_stage(spec: Spec) -> StageDef:
    """The base model every generative method starts from (the GDRT recommenders and RecLAIF's)."""
    return StageDef(
        name="llm-base",
        module="stages.llm_base",
        params=(
            "seed",
            "model",
            "eval.llm.attribution_samples",
            "eval.llm.attribution_include_terminator",
            "eval.llm.rank_batch",
            "eval.llm.relevance_include_terminator",
        ),
        code=llm_files(spec),
        deps=(PREPARED,),
        outs=(LLM_BASE,),
    )


def window_models(spec: Spec) -> list[str]:
    """The zoo models fitted on the window training interactions: the LLM evaluation's classic baselines and
    RecLAIF's, each once."""
    names = [m for m in llm_evaluated(spec) if m not in METHODS]
    if spec.reclaif is not None:
        names += [b for b in spec.reclaif.baselines if b in ZOO.names()]
    if spec.abpo is not None and spec.abpo.prior in ZOO.names():
        names.append(spec.abpo.prior)
    return list(dict.fromkeys(names))


def window_stages(spec: Spec) -> list[StageDef]:
    """``window-<name>``: each classic baseline of the window protocol fitted once (lure.llm.data.fit_window_model)."""
    return [
        StageDef(
            name=f"window-{name}",
            module="stages.window_fit",
            args=(name,),
            params=("seed", *dict.fromkeys(("eval.threads", *ZOO.get(name).reads))),
            deps=(PREPARED,),
            outs=(window_model_dir(name),),
            headline=(Headline("fit_seconds", "fit_seconds", "lower"),),
        )
        for name in window_models(spec)
    ]


def llm_stages(spec: Spec) -> list[StageDef]:
    """Base model, each method's stages, Eq. 2 item relevance, window evaluation of every recommender, the judged
    pairs scored by every fine-tuned one, report."""
    evaluated = llm_evaluated(spec)
    if not evaluated:
        return []
    scorer = llm_model_dir("sft") if spec.eval.llm.fairness_scorer == "sft" else LLM_BASE
    stages = [llm_base_stage(spec)]
    for method in llm_trained(spec):
        stages.extend(contributed_stages(METHODS.get(method), spec))
    stages.append(
        StageDef(
            name="llm-relevance",
            module="stages.llm_relevance",
            params=(
                "model",
                "eval.llm.fairness_scorer",
                "eval.llm.fairness_groups",
                "eval.llm.rank_batch",
                "eval.llm.relevance_include_terminator",
            ),
            code=llm_files(spec),
            deps=(PREPARED, LLM_BASE, scorer),
            outs=(ITEM_RELEVANCE,),
        )
    )
    for name in evaluated:
        if name in METHODS:
            extra, model_deps = ("model",), (LLM_BASE, llm_model_dir(name))
        else:  # a zoo model, fitted by window-<name>
            extra, model_deps = (), (window_model_dir(name),)
        stages.append(
            StageDef(
                name=f"llm-eval-{name}",
                module="stages.llm_eval",
                args=(name,),
                params=("seed", "eval.llm", *extra),
                code=llm_files(spec),
                deps=(PREPARED, ITEM_RELEVANCE, *model_deps),
                outs=(llm_eval_dir(name),),
                headline=LLM_EVAL_HEADLINE,
            )
        )
    # the judged pairs scored by every fine-tuned recommender, as a zoo model scores them (PairAUC_IPS reads both)
    stages.extend(
        StageDef(
            name=f"llm-pairs-{name}",
            module="stages.llm_pairs",
            args=(name,),
            params=("seed", "model", "data.splits.history_max", "eval.llm.rank_batch"),
            code=llm_files(spec),
            deps=(PREPARED, PAIRS_DIR, LLM_BASE, llm_model_dir(name)),
            outs=(llm_pairs_dir(name),),
        )
        for name in evaluated
        if name in METHODS
    )
    stages.append(
        StageDef(
            name="llm-report",
            module="stages.llm_report",
            params=(
                "seed",
                "data.source",
                "method.name",
                "baselines",
                "eval.confidence",
                "eval.llm",
            ),
            deps=(
                metrics_file("llm-base"),
                *(llm_eval_dir(n) for n in evaluated),
                *(metrics_file(f"llm-eval-{n}") for n in evaluated),
            ),
            outs=(LLM_REPORT_DIR,),
            plots=tuple(
                f"plots/llm/{name}.{ext}" for name in ("attribution", "top1_groups", "course") for ext in ("csv", "png")
            ),
            charts=(charts.ATTRIBUTION, charts.TOP1_GROUPS, charts.COURSE),
            headline=(
                Headline("comparison.*.ndcg_at_10.diff", "{0}.ndcg@10_diff", "higher"),
                Headline("comparison.*.true_relevance_at_10.diff", "{0}.true_rel@10_diff", "higher"),
            ),
        )
    )
    return stages


#: What the judge stage reads of ``judge`` (what is asked, and of whom); ``judge-metrics`` reads the rest.
JUDGE_ASKS = (
    "judge.backend",
    "judge.mode",
    "judge.template",
    "judge.history_items",
    "judge.order",
    "judge.samples",
    "judge.temperature",
    "judge.max_tokens",
    "judge.response_format",
    "judge.top_logprobs",
    "judge.max_pairs",
    "judge.concurrency",
)


#: The judge fields that turn answers into labels and metrics (judge-metrics and augment read them).
JUDGE_LABELS = ("judge.evidence_check", "judge.aggregate", "judge.invalid_policy", "judge.metrics")


def judge_stages(spec: Spec) -> list[StageDef]:
    """RecJudge-X (judge, judge-metrics) and Calib-Link (calibrate), when the spec has them."""
    if spec.judge is None:
        return []
    llms = [m for m in llm_evaluated(spec) if m in METHODS]  # fine-tuned LLM recommenders (llm-pairs-<method>)
    stages = [
        StageDef(
            name="judge",
            params=("seed", *JUDGE_ASKS),
            code=(template_file(spec.judge.template),),
            deps=(PREPARED, PAIRS_DIR),
            outs=(JUDGE_DIR,),
            headline=(
                Headline("valid_rate", "valid_rate", "higher"),
                Headline("evidence_pass_rate", "evidence_pass_rate", "higher"),
                Headline("first_shown_share", "first_shown_share"),
            ),
        ),
        StageDef(
            name="judge-metrics",
            module="stages.judge_metrics",
            args=tuple(llms),
            params=(
                "seed",
                *JUDGE_LABELS,
                "eval.models",
                "eval.bootstrap",
                "eval.confidence",
            ),
            deps=(PAIRS_DIR, JUDGE_DIR, *(zoo_dir(m) for m in spec.eval.models), *(llm_pairs_dir(m) for m in llms)),
            outs=(JUDGE_REPORT_DIR,),
            plots=(charts.JUDGE_RJS.path, f"{plots_dir('judge')}/rjs.png"),
            charts=(charts.JUDGE_RJS,),
            headline=(
                Headline("judge.vs_truth.accuracy", "judge_accuracy", "higher"),
                Headline("models.*.all.rjs.mean", "{0}.rjs", "higher"),
            ),
        ),
    ]
    if spec.judge.validity is not None:
        stages.append(
            StageDef(
                name="judge-validity",
                module="stages.judge_validity",
                params=(
                    "seed",
                    "data",
                    *JUDGE_ASKS,
                    "judge.validity",
                    "judge.evidence_check",
                    "judge.aggregate",
                    "judge.invalid_policy",
                    "eval.bootstrap",
                    "eval.confidence",
                ),
                code=(template_file(spec.judge.template),),
                deps=(PREPARED,),
                outs=(JUDGE_VALIDITY_DIR,),
                headline=(
                    Headline("mar.accuracy", "agreement_mar", "higher"),
                    Headline("self_selected.accuracy", "agreement_self_selected", "higher"),
                ),
            )
        )
    if spec.calibrate is not None:
        stages.append(
            StageDef(
                name="calibrate",
                params=("calibrate", "eval.models"),
                deps=(metrics_file("judge-metrics"), metrics_file("evaluate")),
                plots=(charts.CALIB_LINK.path, f"{plots_dir('calibrate')}/calib_link.png"),
                charts=(charts.CALIB_LINK,),
                headline=(
                    Headline("spearman", "spearman", "higher"),
                    Headline("loo_abs_error", "loo_abs_error", "lower"),
                    Headline("vs_truth.kendall_rjs_true_recall", "kendall_rjs_true_recall", "higher"),
                ),
            )
        )
    return stages


def exposynth_stages(spec: Spec) -> list[StageDef]:
    """ExpoSynth (exposynth) and the augment loop (augment), when the spec has them. The synthetic log is a dependency
    of ``augment`` alone: no split, propensity fit or evaluation input is ever built from it."""
    if spec.exposynth is None:
        return []
    reads = EXPOSYNTH_PRESETS.get(spec.exposynth.preset).reads
    augmented = augmented_models(spec.exposynth, spec.eval.models)
    augment_reads = (
        "seed",
        "data.bins",
        "eval.topk",
        "eval.ks",
        "eval.bootstrap",
        "eval.confidence",
        "exposynth.models",
        "eval.models",
        "propensity",
        *(r for m in augmented for r in ZOO.get(m).reads),
    )
    judged = spec.judge is not None
    return [
        StageDef(
            name="exposynth",
            params=("seed", "data.bins", "data.source", *reads),  # data.source: the dataset's label in the metrics
            deps=(PREPARED,),
            outs=(EXPOSYNTH_DIR,),
            plots=(charts.EXPOSURE.path, f"{plots_dir('exposynth')}/exposure.png"),
            charts=(charts.EXPOSURE,),
            headline=(
                Headline("accepted", "accepted"),
                Headline("accept_ratio", "accept_ratio", "higher"),
                Headline("tail_ratio", "tail_ratio"),
                Headline("tail_ratio_paper", "tail_ratio_paper"),
                Headline("kl_achieved_target", "kl_achieved_target", "lower"),
                Headline("implausible_share", "implausible_share", "lower"),
            ),
        ),
        StageDef(
            name="augment",
            args=("--judged",) if judged else (),  # the stage cannot ask spec.judge: it does not exist without a judge
            params=(
                *augment_reads,
                *(JUDGE_LABELS if judged else ()),
            ),
            deps=(
                PREPARED,
                PROPENSITY_DIR,
                PAIRS_DIR,
                EXPOSYNTH_DIR,
                *(zoo_dir(m) for m in augmented),
                *((JUDGE_DIR,) if judged else ()),
            ),
            outs=(AUGMENT_DIR, AUGMENT_REPORT_DIR),
            headline=(
                Headline("models.*.change.truth.recall_at_10.mean", "{0}.change_true_recall@10", "higher"),
                Headline("models.*.tail_change.truth.recall_at_10.mean", "{0}.tail_change_true_recall@10", "higher"),
                Headline("models.*.change.snips.recall_at_10.mean", "{0}.change_snips_recall@10", "higher"),
            ),
        ),
    ]


#: The ``train`` fields RecLAIF's stages read: distillation's optimiser (``lure.reclaif.run.DISTILL_TRAIN_FIELDS``)
#: and everyone's torch threads.
RECLAIF_TRAIN = tuple(f"train.{f}" for f in DISTILL_TRAIN_FIELDS)
RECLAIF_SAMPLING = tuple(
    f"reclaif.{f}" for f in ("k", "template", "decoding", "max_new_tokens", "generation_batch", "items_noun")
)
#: How the teacher and the judge are asked (``lure.reclaif.loop.ask``).
RECLAIF_REQUESTS = ("reclaif.concurrency", "reclaif.request_max_tokens")


def reclaif_rater(spec: Spec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The params and template files behind the evaluation's explainability score: a model judge's backend and
    prompt; for the simulated judge (which rates from the truth) only that it is the simulated one."""
    assert spec.reclaif is not None
    if is_simulated(spec.reclaif.judge):
        return ("reclaif.judge.name",), ()
    return ("reclaif.judge", "reclaif.explain_template", *RECLAIF_REQUESTS), (
        template_file(spec.reclaif.explain_template),
    )


def reclaif_stages(spec: Spec) -> list[StageDef]:
    """RecLAIF (docs/reclaif.md): the data and the teacher's answers, distillation, one stage per DPO iteration
    (Algorithm 1), and the evaluation of every recommender on the same test prompts (Table 3, Figure 3)."""
    if spec.reclaif is None:
        return []
    models = reclaif_model_names(spec.reclaif.iterations)
    base_deps = (LLM_BASE, RECLAIF_DATA)
    rater_params, rater_code = reclaif_rater(spec)
    # reclaif-eval's metrics are keyed by the dataset, as the paper tables read them
    label = report_key(dataset_label(spec.data.source), spec.reclaif.task)
    relevance = f"prec_at_{spec.reclaif.k}" if spec.reclaif.task == "retrieval" else "hit_at_1"
    stages = [] if llm_evaluated(spec) else [llm_base_stage(spec)]  # the base, unless the LLM stages made it
    stages += [
        StageDef(
            name="reclaif-data",
            module="stages.reclaif_data",
            params=(
                "seed",
                *(f"reclaif.{f}" for f in ("template", "history", "candidates", "k", "teacher")),
                *(f"reclaif.{f}" for f in ("teacher_template", "answer_style", "task", "esci_dir")),
                *(f"reclaif.{f}" for f in ("train_prompts", "dpo_prompts", "eval_prompts")),
                *RECLAIF_REQUESTS,
            ),
            code=tuple(
                template_file(t) for t in (spec.reclaif.template, spec.reclaif.teacher_template) if t is not None
            ),
            deps=(PREPARED,),
            outs=(RECLAIF_DATA,),
            headline=(Headline(f"teacher_{relevance}", f"teacher_{relevance}", "higher"),),
        ),
        StageDef(
            name="reclaif-sft",
            module="stages.reclaif_sft",
            params=("seed", "model", "train.threads", *RECLAIF_TRAIN, "reclaif.sft_epochs", "reclaif.k"),
            deps=base_deps,
            outs=(reclaif_model_dir("sft"),),
            headline=(Headline("train_loss", "train_loss", "lower"),),
        ),
    ]
    for i in range(1, spec.reclaif.iterations + 1):
        needs_sft = spec.reclaif.reference == "sft" and i > 1
        stages.append(
            StageDef(
                name=f"reclaif-dpo-{i}",
                module="stages.reclaif_dpo",
                args=(str(i),),
                params=(
                    "seed",
                    "model",
                    "train.threads",
                    *RECLAIF_SAMPLING,
                    *(f"reclaif.{f}" for f in ("temperature", "top_p", "judge", "dpo", "reference", "judge_template")),
                    "reclaif.task",
                    *RECLAIF_REQUESTS,
                ),
                code=(template_file(spec.reclaif.judge_template),),
                deps=(
                    *base_deps,
                    reclaif_model_dir(models[i - 1]),
                    *((reclaif_model_dir("sft"),) if needs_sft else ()),
                ),
                outs=(reclaif_model_dir(f"dpo-{i}"),),
                headline=(
                    Headline("pairs.ok", "pairs_kept", "higher"),
                    Headline("dpo.reward_accuracy", "reward_accuracy", "higher"),
                ),
            )
        )
    stages.append(
        StageDef(
            name="reclaif-eval",
            module="stages.reclaif_eval",
            params=(
                "seed",
                "model",
                "train.threads",
                "eval.bootstrap",
                "eval.confidence",
                "data.source",  # the dataset's label in the metrics
                "reclaif.task",
                "reclaif.iterations",
                "reclaif.answer_style",
                "reclaif.baselines",
                *RECLAIF_SAMPLING,
                *rater_params,
            ),
            code=rater_code,
            deps=(
                PREPARED,
                *base_deps,
                *(reclaif_model_dir(m) for m in models),
                *(window_model_dir(b) for b in spec.reclaif.baselines if b in ZOO.names()),
            ),
            outs=(RECLAIF_REPORT_DIR,),
            plots=(charts.RECLAIF_ITERATIONS.path, f"{plots_dir('reclaif-eval')}/iterations.png"),
            charts=(charts.RECLAIF_ITERATIONS,),
            headline=tuple(
                Headline(f"{label}.models.{m}.{metric}.mean", f"{m}.{metric}", "higher")
                for m in models
                for metric in ("valid_ratio", relevance, "ndcg_at_" + str(spec.reclaif.k))
            ),
        )
    )
    return stages


#: The ``abpo`` fields every ABPO stage reads: the serving policy, the rounds' contexts, the evaluation.
ABPO_SERVING = tuple(
    f"abpo.{f}"
    for f in ("prior", "serving_temperature", "rounds", "contexts", "eval_contexts", "ks", "ctr_samples", "horizon")
)
#: The ``abpo`` fields of the update (``lure.abpo.update.method_settings``).
ABPO_UPDATE = tuple(
    f"abpo.{f}"
    for f in (
        "group_size",
        "batch_size",
        "epochs",
        "learning_rate",
        "rollout_temperature",
        "r_positive",
        "penalty",
        "w_max",
        "clip",
        "kl_beta",
    )
)
ABPO_HEADLINE_METRICS = ("true_ctr", "ndcg_at_10", "prior_exposed_share_at_10", "snips_ctr")


def abpo_stages(spec: Spec) -> list[StageDef]:
    """ABPO (docs/abpo.md): the prior policy's bandit log, one stage per compared method (all rounds), the report."""
    if spec.abpo is None:
        return []
    model_deps = (PREPARED, LLM_BASE, llm_model_dir("sft"))
    reads = ("seed", "model", "train.threads", "eval.llm.rank_batch", *ABPO_SERVING)
    prior = spec.abpo.prior
    stages = [
        StageDef(
            name="banditlog",
            params=reads,
            deps=(*model_deps, *((window_model_dir(prior),) if prior != "sft" else ())),
            outs=(BANDITLOG_DIR,),
            headline=(
                Headline("log.positive_rate", "log_positive_rate"),
                Headline("round_0.true_ctr", "sft_true_ctr", "higher"),
            ),
        )
    ]
    names = list(spec.abpo.variants)
    stages.extend(
        StageDef(
            name=f"abpo-{name}",
            module="stages.abpo",
            args=(name,),
            params=(*reads, *ABPO_UPDATE, f"abpo.variants.{name}"),
            deps=(*model_deps, BANDITLOG_DIR),
            outs=(abpo_dir(name),),
            headline=tuple(Headline(f"final.{m}", m, "higher") for m in ABPO_HEADLINE_METRICS[:2])
            + (Headline("final.prior_exposed_share_at_10", "prior_exposed_share@10", "lower"),),
        )
        for name in names
    )
    stages.append(
        StageDef(
            name="abpo-report",
            module="stages.abpo_report",
            params=("data.source", "abpo.ks", "abpo.rounds", *(f"abpo.variants.{n}" for n in names)),
            deps=(metrics_file("banditlog"), *(metrics_file(f"abpo-{n}") for n in names)),
            outs=(ABPO_REPORT_DIR,),
            plots=(charts.ABPO_ROUNDS.path, f"{plots_dir('abpo-report')}/rounds.png"),
            charts=(charts.ABPO_ROUNDS,),
            headline=(Headline("ope.*.kendall_tau", "{0}.kendall_tau_vs_truth", "higher"),),
        )
    )
    return stages


def pipeline_stages(spec: Spec) -> list[StageDef]:
    """The stages this spec needs, in execution order; ``validate`` first, ``track`` last."""
    every_section = tuple(section_names())
    science: list[StageDef] = [
        StageDef(
            name="prepare",
            params=("seed", "data"),
            outs=(PREPARED,),
            plots=(charts.POPULARITY.path, "plots/prepare/popularity.png"),
            charts=(charts.POPULARITY,),
            headline=(
                Headline("users", "users"),
                Headline("items", "items"),
                Headline("interactions", "interactions"),
                Headline("head_share", "head_share"),
            ),
        ),
        StageDef(
            name="propensity",
            params=("seed", "propensity"),
            deps=(PREPARED,),
            outs=(PROPENSITY_DIR,),
            plots=(charts.CALIBRATION.path, "plots/propensity/calibration.png"),
            charts=(charts.CALIBRATION,),
            headline=(Headline("ece", "ece", "lower"),),
        ),
        StageDef(
            name="pairs",
            params=("seed", "pairs"),
            deps=(PREPARED, PROPENSITY_DIR),
            outs=(PAIRS_DIR,),
            headline=(Headline("pairs", "pairs"), Headline("smd_log_pop_after", "smd_log_pop_after", "lower")),
        ),
    ]
    science.extend(
        StageDef(
            name=f"zoo-{model}",
            module="stages.zoo",
            args=(model,),
            params=("seed", "eval.topk", *ZOO.get(model).reads),
            deps=(PREPARED, PAIRS_DIR),
            outs=(zoo_dir(model),),
        )
        for model in spec.eval.models
    )
    science.append(
        StageDef(
            name="evaluate",
            params=(
                "seed",
                "eval.models",
                "eval.ks",
                "eval.bootstrap",
                "eval.confidence",
                "eval.compare_propensities",
                "propensity",
            ),
            deps=(PREPARED, PROPENSITY_DIR, *(zoo_dir(m) for m in spec.eval.models)),
            outs=(EVALUATE_DIR,),
            plots=(charts.ESTIMATES.path, "plots/evaluate/estimates.png"),
            charts=(charts.ESTIMATES,),
            headline=(
                Headline("summary.snips_error_ratio", "snips_error_ratio", "lower"),
                Headline("summary.by_propensity.*.ips_error_ratio", "ips_error_ratio.{0}", "lower"),
                Headline("summary.kendall_tau_naive_recall_at_10", "kendall_naive_recall@10", "higher"),
                Headline("summary.kendall_tau_snips_recall_at_10", "kendall_snips_recall@10", "higher"),
            ),
        )
    )
    science.extend(window_stages(spec))
    science.extend(llm_stages(spec))
    science.extend(judge_stages(spec))
    science.extend(exposynth_stages(spec))
    science.extend(reclaif_stages(spec))
    science.extend(abpo_stages(spec))
    science.extend(plugin_stages(spec))
    result_metrics = tuple(s.metrics for s in science if s.metrics)
    tables = StageDef(
        name="tables",
        params=("tables",),
        deps=result_metrics,
        outs=(TABLES_DIR,),
        headline=(
            Headline("cells_filled", "cells_filled", "higher"),
            Headline("world.filled", "world_cells_filled", "higher"),
        ),
    )
    track = StageDef(
        name="track",
        params=every_section,
        deps=(*result_metrics, tables.metrics or "", TABLES_DIR, *(p for s in science for p in s.plots)),
        uncached_outs=(MLFLOW_RUN,),
        has_metrics=False,
    )
    validate = StageDef(
        name="validate",
        params=every_section,
        code=("lure/spec", "lure/pipeline"),  # the validation itself; its own imports are derived like any stage's
        uncached_outs=(SPEC_OK,),
        has_metrics=False,
    )
    return [validate, *science, tables, track]
