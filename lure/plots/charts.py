"""How ``dvc plots`` draws each CSV the plot modules write: axes, title, labels and Vega-Lite template.

Declared here, next to the writers that fix the CSVs' columns, and attached to the stages in
``lure.pipeline.stages`` (``StageDef.charts``); ``lure.pipeline.generate`` writes them to the top-level ``plots:`` of
``dvc.yaml``. No stage imports this module, so changing a chart never re-runs a stage.

The long-format CSVs (one row per model × group, model × estimator, …) need a category on colour or facet, which
DVC's built-in templates cannot express; their templates are Vega-Lite files in ``lure/plots/templates/`` (paths
relative to the project root, where ``dvc plots`` runs). Each template encodes the revision (``rev``) too, so
``dvc plots diff`` overlays experiments on the same chart.
"""

from __future__ import annotations

from lure.layout import plots_dir
from lure.registry import PlotDef

#: Where the Vega-Lite templates of the charts live, relative to the project root.
TEMPLATES = "lure/plots/templates"


def template(name: str) -> str:
    """The path of the template ``name`` (a file ``lure/plots/templates/<name>.json``)."""
    return f"{TEMPLATES}/{name}.json"


POPULARITY = PlotDef(
    f"{plots_dir('prepare')}/popularity.csv",
    x="rank",
    y=("interactions",),
    title="Popularity long tail",
    template=template("loglog"),
    x_label="item rank (log)",
    y_label="interactions (log)",
)

CALIBRATION = PlotDef(
    f"{plots_dir('propensity')}/calibration.csv",
    x="pred_mean",
    y=("obs_rate",),
    title="Propensity calibration (one point per bin)",
    template=template("reliability"),
    x_label="mean predicted propensity (log)",
    y_label="observed rate (log)",
)

ESTIMATES = PlotDef(
    f"{plots_dir('evaluate')}/estimates.csv",
    x="target",
    y=("value",),
    title="Offline estimates vs target (truth on the simulated world, MAR on a real one)",
    template=template("estimates"),
    x_label="target",
    y_label="estimate",
)

CALIB_LINK = PlotDef(
    f"{plots_dir('calibrate')}/calib_link.csv",
    x="rjs",
    y=("delta_recall",),
    title="Calib-Link: isotonic g from RJS to the recall lift (one point per model)",
    template=template("calib_link"),
    x_label="RJS (tau_w)",
    y_label="Delta Recall vs the reference",
)

JUDGE_RJS = PlotDef(
    f"{plots_dir('judge')}/rjs.csv",
    x="bucket",
    y=("RJS",),
    title="Agreement with the judge (RJS, LURE Table 1) per popularity bucket",
    template=template("judge_rjs"),
    x_label="popularity bucket",
    y_label="RJS (tau_w)",
)

ATTRIBUTION = PlotDef(
    f"{plots_dir('llm')}/attribution.csv",
    x="value",
    y=("model",),
    title="Feature-ablation attribution (GDRT Figs. 2/7)",
    template=template("attribution"),
    x_label="attribution ratio",
    y_label="model",
)

TOP1_GROUPS = PlotDef(
    f"{plots_dir('llm')}/top1_groups.csv",
    x="share",
    y=("model",),
    title="Top-1 recommendations per item group (GDRT Figs. 3/8)",
    template=template("group_shares"),
    x_label="share of top-1 recommendations",
    y_label="recommender",
)

COURSE = PlotDef(
    f"{plots_dir('llm')}/course.csv",
    x="step",
    y=("share",),
    title="Top-1 share per item group during training (GDRT Figs. 4/9)",
    template=template("group_course"),
    x_label="training step",
    y_label="share of top-1",
)

EXPOSURE = PlotDef(
    f"{plots_dir('exposynth')}/exposure.csv",
    x="pop_bin",
    y=("share",),
    title="ExpoSynth exposure per popularity bin: target vs achieved vs real",
    template=template("exposure"),
    x_label="popularity bin (0 = most popular)",
    y_label="share of interactions",
)

RECLAIF_ITERATIONS = PlotDef(
    f"{plots_dir('reclaif-eval')}/iterations.csv",
    x="step",
    y=("mean",),
    title="RecLAIF Figure 3: SFT (step 0) and each DPO iteration, mean and bootstrap interval",
    template=template("reclaif_iterations"),
    x_label="DPO iteration (0 = SFT)",
    y_label="value",
)

ABPO_ROUNDS = PlotDef(
    f"{plots_dir('abpo-report')}/rounds.csv",
    x="round",
    y=("value",),
    title="ABPO: each method's true CTR, accuracy and exposure bias per round (round 0 = the SFT recommender)",
    template=template("abpo_rounds"),
    x_label="round",
    y_label="value",
)
