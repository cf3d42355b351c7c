"""Where every file of the pipeline lives: the prepared dataset's canonical files and each stage's outputs.

This is the one module that spells a path of the pipeline. Writers (``lure.data.prepare``, the stages) and readers
(propensity, pairs, zoo, evaluation, the LLM stages) both go through it, so a file cannot be written under one name
and read under another.

Stage paths are strings relative to the repository root, exactly as ``dvc.yaml`` spells them (DVC runs every stage
there). The prepared dataset is a folder (``PREPARED`` in the pipeline, any folder in tests) described by
:class:`Prepared`::

    items.parquet                 item_id, title, genres ("|"-joined), year, popularity, pop_bin, age_bin
    interactions.parquet          user_id, item_id, timestamp (int64 unix s), rating, source ("real"/"synth")
    splits/loo_{train,valid,test}.parquet      leave-last-out, same columns as interactions
    splits/window_{train,valid,test}.parquet   user_id, history (list<int64>), item_id (target), timestamp
    splits/holdout_{train,test}.parquet        per-user last share (world: train log / evaluation round clicks)
    truth/relevance.npy           world only: float32 users x items, r(u, i)
    truth/exposure_prob.npy       world only: float32 users x items, P(exposed in the evaluation round)
    truth/exposures.parquet       world only: the logged exposures (training log)
    truth/evaluation.parquet      world only: the held-out evaluation round (exposures with propensities)
    truth/mar.parquet             the missing-at-random log (world; Coat's MAR test ratings)
    truth/users.parquet           world only: the simulated users
    truth/items.parquet           world only: item_id, popularity_prior, quality, title_prior, formulaic_title
    ids/users.parquet             real sources: user_id, raw_id (the dataset's own id)
    ids/items.parquet             real sources: item_id, raw_id

The prompt templates live here too (:func:`prompts_dir`): ``lure.spec`` validates ``model.template`` with it; the
judge's templates are the ones named ``judge_*`` (:func:`is_judge_template`).

Nothing heavy is imported here (pandas and numpy only inside the readers), so the spec, the CLI and the DVC
generator can use the paths cheaply.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# ---------------------------------------------------------------- stage outputs (relative to the repository root)

DATA_DIR = "data"
RAW_DIR = f"{DATA_DIR}/raw"
PREPARED = f"{DATA_DIR}/prepared"
PROPENSITY_DIR = f"{DATA_DIR}/propensity"
PROPENSITY_MODEL = f"{PROPENSITY_DIR}/model.joblib"
PAIRS_DIR = f"{DATA_DIR}/pairs"
PAIRS = f"{PAIRS_DIR}/pairs.parquet"
ZOO_DIR = f"{DATA_DIR}/zoo"
LLM_DIR = f"{DATA_DIR}/llm"
LLM_BASE = f"{LLM_DIR}/base"
GDRT_GROUPS = f"{LLM_DIR}/gdrt-groups"
ITEM_RELEVANCE = f"{LLM_DIR}/item-relevance"
JUDGE_DIR = f"{DATA_DIR}/judge"
EXPOSYNTH_DIR = f"{DATA_DIR}/exposynth"
AUGMENT_DIR = f"{DATA_DIR}/augment"
RECLAIF_DIR = f"{DATA_DIR}/reclaif"
#: RecLAIF's instances (parts sft / dpo / test) with their prompts and the teacher's answers.
RECLAIF_DATA = f"{RECLAIF_DIR}/data"
RECLAIF_INSTANCES = f"{RECLAIF_DATA}/instances.parquet"
#: The retrieval task's catalogue (item_id, product_id, title, text of every candidate); absent for a sequential one.
RECLAIF_CATALOGUE = f"{RECLAIF_DATA}/catalogue.parquet"
ABPO_DIR = f"{DATA_DIR}/abpo"
BANDITLOG_DIR = f"{ABPO_DIR}/banditlog"
BANDITLOG = f"{BANDITLOG_DIR}/log.parquet"  # round 1's log, served by the prior policy (lure.abpo.logs.LOG_COLUMNS)
BANDITLOG_EVAL = f"{BANDITLOG_DIR}/eval_log.parquet"  # the prior policy's log on the test windows (off-policy)
BANDITLOG_CONTEXTS = f"{BANDITLOG_DIR}/contexts.parquet"  # windows by round (0 = evaluation), with context_id
REPORTS_DIR = "reports"
EVALUATE_DIR = f"{REPORTS_DIR}/evaluate"
TABLES_DIR = f"{REPORTS_DIR}/tables"
LLM_REPORT_DIR = f"{REPORTS_DIR}/llm"
MLFLOW_RUN = f"{REPORTS_DIR}/mlflow_run.json"
JUDGE_REPORT_DIR = f"{REPORTS_DIR}/judge"
JUDGE_VALIDITY_DIR = f"{REPORTS_DIR}/judge-validity"
AUGMENT_REPORT_DIR = f"{REPORTS_DIR}/augment"
RECLAIF_REPORT_DIR = f"{REPORTS_DIR}/reclaif"
ABPO_REPORT_DIR = f"{REPORTS_DIR}/abpo"
METRICS_DIR = "metrics"
PLOTS_DIR = "plots"
#: The active spec (DVC's params file) and the folder of named specs.
PARAMS = "params.yaml"
SPECS_DIR = "specs"
#: Marker of the ``validate`` stage (every other stage depends on it).
SPEC_OK = ".lure/spec.ok"
#: Where a stage that ran leaves a record of that execution (``<stage>.json``: start, end, its metrics' hash). Not a
#: DVC output and git-ignored, so DVC never restores one from its cache: ``track`` reads these records to tell the
#: stages that ran since the last tracked run from those DVC restored, then removes them.
STAGE_RUNS_DIR = ".lure/stage-runs"
#: Training checkpoints: outside every DVC output, so DVC does not delete them before a resumed run.
CHECKPOINTS = ".lure/checkpoints"
#: The LLM request layer's answer store (``lure.requests.ResponseCache``): outside every DVC output, so answers
#: survive ``dvc repro``/``dvc exp run`` and a crashed stage; a re-run asks only what is not stored.
REQUEST_CACHE = ".lure/requests.sqlite"

# File names inside the stage folders.
RESULTS_CSV = "results.csv"  # evaluate and llm-report
TOPK = "topk.parquet"  # zoo-<model>
PAIR_SCORES = "pair_scores.parquet"  # zoo-<model>, llm-pairs-<method>
TOKEN_GROUPS = "token_groups.parquet"  # gdrt-groups
GROUP_CENTERS = "centers.json"  # gdrt-groups
RELEVANCE_ITEMS = "items.parquet"  # llm-relevance
COURSE = "course.parquet"  # train-<method> (and its checkpoints), llm-eval-<llm>
LOG_HISTORY = "log_history.json"  # train-<method>
PER_SAMPLE = "per_sample.parquet"  # llm-eval-<name>

EVALUATE_RESULTS = f"{EVALUATE_DIR}/{RESULTS_CSV}"
#: judge: one row per answer (lure.judge.run.ANSWER_COLUMNS).
JUDGE_ANSWERS = f"{JUDGE_DIR}/answers.parquet"
#: judge-metrics: LURE Table 1's layout for every recommender (model, bucket, PairAUC_IPS, RJS, CIs).
JUDGE_TABLE = f"{JUDGE_REPORT_DIR}/table1.csv"
LLM_REPORT_RESULTS = f"{LLM_REPORT_DIR}/{RESULTS_CSV}"
#: llm-report: the language-bias measures of the base model and of every recommender, side by side.
LLM_REPORT_LANGUAGE_BIAS = f"{LLM_REPORT_DIR}/language_bias.csv"
#: exposynth: the synthetic log (lure.exposynth.sampler.SYNTH_COLUMNS), never part of a split or a propensity fit.
EXPOSYNTH_ROWS = f"{EXPOSYNTH_DIR}/synthetic.parquet"
#: augment: before/after estimates of every re-trained zoo model (model, data, slice, estimator, metric, value).
AUGMENT_RESULTS = f"{AUGMENT_REPORT_DIR}/{RESULTS_CSV}"
ITEM_RELEVANCE_ITEMS = f"{ITEM_RELEVANCE}/{RELEVANCE_ITEMS}"
GDRT_TOKEN_GROUPS = f"{GDRT_GROUPS}/{TOKEN_GROUPS}"
GDRT_CENTERS = f"{GDRT_GROUPS}/{GROUP_CENTERS}"


def zoo_dir(model: str) -> str:
    """Output folder of ``zoo-<model>``."""
    return f"{ZOO_DIR}/{model}"


def zoo_topk(model: str) -> str:
    return f"{zoo_dir(model)}/{TOPK}"


def zoo_pair_scores(model: str) -> str:
    return f"{zoo_dir(model)}/{PAIR_SCORES}"


def reclaif_model_dir(name: str) -> str:
    """The RecLAIF recommender ``name`` ('sft', 'dpo-1', ...): model, tokenizer and (DPO) the judged pairs."""
    return f"{RECLAIF_DIR}/{name}"


def reclaif_model_names(iterations: int) -> list[str]:
    """The trained RecLAIF recommenders in order: SFT, then DPO-Iter1..N (Figure 3's x axis)."""
    return ["sft", *(f"dpo-{i}" for i in range(1, iterations + 1))]


def abpo_dir(variant: str) -> str:
    """Output folder of ``abpo-<variant>``: every round's log and metrics, and the last round's model."""
    return f"{ABPO_DIR}/{variant}"


def llm_model_dir(method: str) -> str:
    """Output folder of ``train-<method>``: the fine-tuned model, its course and its log history."""
    return f"{LLM_DIR}/{method}"


def window_model_dir(name: str) -> str:
    """Output folder of ``window-<name>``: a zoo model fitted once on the window training interactions
    (``model.pkl``), which ``llm-eval-<name>`` and RecLAIF's evaluation both score with."""
    return f"{LLM_DIR}/window-models/{name}"


def llm_eval_dir(name: str) -> str:
    """Output folder of ``llm-eval-<name>``."""
    return f"{LLM_DIR}/eval/{name}"


def llm_pairs_dir(name: str) -> str:
    """Output folder of ``llm-pairs-<name>``."""
    return f"{LLM_DIR}/pairs/{name}"


def llm_pair_scores(name: str) -> str:
    """The judged pairs scored by a fine-tuned LLM: user_id, item_i, item_j, score_i, score_j (as a zoo model's)."""
    return f"{llm_pairs_dir(name)}/{PAIR_SCORES}"


def llm_model_course(method: str) -> str:
    """Top-1 recommendations of a fixed validation sample over training (GDRT Figs. 4/9)."""
    return f"{llm_model_dir(method)}/{COURSE}"


def llm_model_log_history(method: str) -> str:
    return f"{llm_model_dir(method)}/{LOG_HISTORY}"


def llm_eval_per_sample(name: str) -> str:
    """Per test window: user, target, ranked list and the accuracy metrics."""
    return f"{llm_eval_dir(name)}/{PER_SAMPLE}"


def llm_eval_course(name: str) -> str:
    """The model's course with each item's relevance group (fine-tuned LLMs only)."""
    return f"{llm_eval_dir(name)}/{COURSE}"


def metrics_file(stage: str) -> str:
    """The metrics a stage writes (``metrics/<stage>.json``)."""
    return f"{METRICS_DIR}/{stage}.json"


def plots_dir(stage: str) -> str:
    """Folder of a stage's plots (``plots/<stage>``)."""
    return f"{PLOTS_DIR}/{stage}"


def is_data_output(path: str) -> bool:
    """Whether a stage output lies under ``data/`` (datasets and models: too large to log as run artifacts)."""
    return path.startswith(f"{DATA_DIR}/")


# ---------------------------------------------------------------- the prepared dataset

#: Split families and their parts: ``splits/<kind>_<part>.parquet``.
SPLITS: dict[str, tuple[str, ...]] = {
    "loo": ("train", "valid", "test"),
    "window": ("train", "valid", "test"),
    "holdout": ("train", "test"),
}


class Prepared:
    """The canonical files of a prepared dataset under ``root`` (``data/prepared`` in the pipeline)."""

    def __init__(self, root: str | os.PathLike[str] = PREPARED):
        self.root = Path(root)

    def __fspath__(self) -> str:  # a Prepared is also its folder: Path(prepared), fingerprint(prepared), ...
        return os.fspath(self.root)

    def __repr__(self) -> str:
        return f"Prepared({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prepared) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    # -------------------------------------------------------- paths

    @property
    def items(self) -> Path:
        return self.root / "items.parquet"

    @property
    def interactions(self) -> Path:
        return self.root / "interactions.parquet"

    @property
    def splits_dir(self) -> Path:
        return self.root / "splits"

    def split(self, kind: str, part: str) -> Path:
        """``splits/<kind>_<part>.parquet``; ``kind`` and ``part`` as in :data:`SPLITS`."""
        if part not in SPLITS.get(kind, ()):
            known = ", ".join(f"{k}_{p}" for k, parts in SPLITS.items() for p in parts)
            raise ValueError(f"no split {kind}_{part} (known: {known})")
        return self.splits_dir / f"{kind}_{part}.parquet"

    def split_files(self) -> list[Path]:
        """Every split file, in the order of :data:`SPLITS`."""
        return [self.split(kind, part) for kind, parts in SPLITS.items() for part in parts]

    @property
    def holdout_train(self) -> Path:
        return self.split("holdout", "train")

    @property
    def holdout_test(self) -> Path:
        return self.split("holdout", "test")

    def window(self, part: str) -> Path:
        return self.split("window", part)

    @property
    def truth_dir(self) -> Path:
        return self.root / "truth"

    @property
    def relevance(self) -> Path:
        return self.truth_dir / "relevance.npy"

    @property
    def exposure_prob(self) -> Path:
        return self.truth_dir / "exposure_prob.npy"

    @property
    def exposures(self) -> Path:
        return self.truth_dir / "exposures.parquet"

    @property
    def evaluation_round(self) -> Path:
        return self.truth_dir / "evaluation.parquet"

    @property
    def mar(self) -> Path:
        return self.truth_dir / "mar.parquet"

    @property
    def truth_users(self) -> Path:
        return self.truth_dir / "users.parquet"

    @property
    def truth_items(self) -> Path:
        return self.truth_dir / "items.parquet"

    @property
    def ids_dir(self) -> Path:
        return self.root / "ids"

    @property
    def user_ids(self) -> Path:
        return self.ids_dir / "users.parquet"

    @property
    def item_ids(self) -> Path:
        return self.ids_dir / "items.parquet"

    # -------------------------------------------------------- readers

    def read_items(self, columns: list[str] | None = None) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self.items, columns=columns)

    def read_interactions(self, columns: list[str] | None = None) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self.interactions, columns=columns)

    def read_split(self, kind: str, part: str, columns: list[str] | None = None) -> pd.DataFrame:
        """One split; a clear error when ``prepare`` did not write it."""
        import pandas as pd

        path = self.split(kind, part)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run the prepare stage first (it writes every split)")
        return pd.read_parquet(path, columns=columns)

    def read_mar(self, columns: list[str] | None = None) -> pd.DataFrame | None:
        """The missing-at-random log, or None for a dataset without one."""
        import pandas as pd

        return pd.read_parquet(self.mar, columns=columns) if self.mar.exists() else None

    def read_truth_items(self, columns: list[str] | None = None) -> pd.DataFrame | None:
        """The world's item truth (popularity prior, quality, title prior, formulaic flag; sorted by item_id), or
        None for a real dataset. The LLM stages read the title prior here: it weights the tiny model's pretraining
        corpus and is what the language-bias measures are scored against."""
        import pandas as pd

        return pd.read_parquet(self.truth_items, columns=columns) if self.truth_items.exists() else None

    def read_relevance(self, mmap: bool = True) -> np.ndarray | None:
        """The world's true relevance r(u, i) (memory-mapped by default), or None for a real dataset."""
        return _load_npy(self.relevance, mmap)

    def read_exposure_prob(self, mmap: bool = True) -> np.ndarray | None:
        """The world's true exposure probabilities of the evaluation round (memory-mapped by default), or None for a
        real dataset."""
        return _load_npy(self.exposure_prob, mmap)


def _load_npy(path: Path, mmap: bool) -> Any:
    import numpy as np

    if not path.exists():
        return None
    return np.load(path, mmap_mode="r") if mmap else np.load(path)


# ---------------------------------------------------------------- prompt templates
# Where the prompt templates are. Standard library only: ``lure.spec`` validates ``model.template`` with it, and the
# spec must load without jinja, torch or any other heavy library (an import-linter contract in pyproject.toml).
#
# ``prompts/`` at the top of the project is the one source of truth. :func:`prompts_dir` looks, in order, in
#
# 1. ``./prompts``: the current directory is the project root when DVC runs a stage (and when ``lure`` is called
#    there), so a project's own templates win;
# 2. ``prompts/`` in the repository root above this package (a checkout, installed editable or not installed at all);
# 3. ``lure/_prompts/``: the copy a wheel ships (``setup.py`` maps ``prompts/`` to that package directory).
#
# The first of these that holds a ``*.j2`` file is the answer.

TEMPLATE_SUFFIX = ".j2"
_PACKAGE = Path(__file__).resolve().parent  # lure/


def prompts_dir_candidates(cwd: str | Path | None = None) -> tuple[Path, ...]:
    """The folders :func:`prompts_dir` tries, in order."""
    here = Path.cwd() if cwd is None else Path(cwd)
    return (here / "prompts", _PACKAGE.parent / "prompts", _PACKAGE / "_prompts")


def template_file(name: str) -> str:
    """The prompt template ``name`` as a stage dependency (``prompts/<name>.j2``, relative to the project root): a
    stage depends on the one template it renders, so adding or editing another template re-runs nothing else."""
    return f"prompts/{name}.j2"


def prompts_dir() -> Path:
    """The folder of the prompt templates (``<name>.j2``); see the module docstring for the search order.

    Resolved once per working directory (prompts are rendered per user; the answer does not change meanwhile).
    """
    return _prompts_dir(os.getcwd())


@lru_cache(maxsize=8)
def _prompts_dir(cwd: str) -> Path:
    candidates = prompts_dir_candidates(cwd)
    for folder in candidates:
        if folder.is_dir() and any(folder.glob(f"*{TEMPLATE_SUFFIX}")):
            return folder
    raise FileNotFoundError(
        "no prompt templates (*.j2) in "
        + ", ".join(str(c) for c in candidates)
        + "; run from the project root, which holds prompts/"
    )


def template_names(directory: Path | None = None) -> list[str]:
    """Names of the templates in ``directory`` (default :func:`prompts_dir`), sorted."""
    folder = prompts_dir() if directory is None else directory
    return sorted(p.stem for p in folder.glob(f"*{TEMPLATE_SUFFIX}"))


#: A template whose name starts with this is an LLM judge's prompt (``lure.judge``: blocks task, history, candidate,
#: answer), not a next-item prompt of the recommenders (blocks task, history, response, completion, masked).
JUDGE_TEMPLATE_PREFIX = "judge_"


def is_judge_template(name: str) -> bool:
    """Whether ``name`` is a judge prompt (``prompts/judge_*.j2``) rather than a next-item prompt."""
    return name.startswith(JUDGE_TEMPLATE_PREFIX)


#: A template whose name starts with this is a RecLAIF prompt (``lure.reclaif.prompts``: the recommender's candidate
#: prompt, its judge, the explainability rater), rendered whole rather than block by block.
RECLAIF_TEMPLATE_PREFIX = "reclaif_"


def is_reclaif_template(name: str) -> bool:
    """Whether ``name`` is a RecLAIF prompt (``prompts/reclaif_*.j2``)."""
    return name.startswith(RECLAIF_TEMPLATE_PREFIX)


def recommender_template_names(directory: Path | None = None) -> list[str]:
    """Names of the next-item templates (``model.template`` may name one of these), sorted."""
    return [n for n in template_names(directory) if not is_judge_template(n) and not is_reclaif_template(n)]


def stage_run_file(stage: str) -> str:
    """The execution record of ``stage`` (see :data:`STAGE_RUNS_DIR`)."""
    return f"{STAGE_RUNS_DIR}/{stage}.json"
