"""Shared fixtures: the repository root, scratch copies of the project that DVC can run in, and the worlds and
pipelines that several modules use, each built once per test run.

Built once, shared by every xdist worker (a file lock in the run's common temp directory; the first worker to need a
project builds it, the others wait and reuse it):

* ``offline_project``: :data:`SMALL_OFFLINE` (no LLM stage) plus the :data:`PROBE_PLUGIN` stage, for the DVC and
  MLflow mechanics (test_dvc_pipeline.py, test_mlflow.py);
* ``llm_project``: :data:`SMALL_LLM_WORLD`, every LLM stage with tiny models (test_llm_pipeline.py, and
  test_plugin_example.py, which switches a copy to the plugin method);
* ``world_project`` / ``coat_project``: the default world and Coat up to ``evaluate`` (test_ground_truth.py).

A shared project is never changed by a test: a test that runs DVC in it works on :func:`copy_project` (the DVC cache
is hard-linked, everything else copied), so one test's experiments never reach another test's expectations.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"  # datasets that cannot be downloaded in CI (Coat, MovieLens)
PROJECT_FILES = ("lure", "stages", "specs", "prompts", "pyproject.toml", ".dvcignore", ".gitignore")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "lure tests",
    "GIT_AUTHOR_EMAIL": "tests@lure.invalid",
    "GIT_COMMITTER_NAME": "lure tests",
    "GIT_COMMITTER_EMAIL": "tests@lure.invalid",
}

# A world small enough that a pipeline run takes seconds.
TINY_WORLD = {"n_users": 80, "n_items": 60, "activity_mean": 12, "mar_fraction": 0.2, "mar_exposures_per_user": 10}

# The DVC/MLflow mechanics need a pipeline, not a language model: no method under study, no baselines, so no LLM
# stage (validate → prepare → propensity → pairs → zoo-* → evaluate → tables → track).
SMALL_OFFLINE: dict = {
    "seed": 0,
    "data": {"source": {"name": "world", **TINY_WORLD}},
    "method": None,
    "baselines": [],
    "eval": {"models": ["random", "popularity"], "bootstrap": 50},
    "judge": None,  # the judge's DVC path has its own project (test_judge_pipeline.py)
    "calibrate": None,
    "exposynth": None,  # ExpoSynth's stages are tested in test_exposynth.py
    "reclaif": None,  # RecLAIF's stages are tested in test_reclaif_stages.py
    "abpo": None,  # ABPO's in test_abpo_stages.py
    "tracking": {"enabled": False},
}
OFFLINE_STAGES = frozenset(
    {"validate", "prepare", "propensity", "pairs", "zoo-random", "zoo-popularity", "evaluate", "tables", "track"}
)

# A plugin stage that declares eval.bootstrap (read by `evaluate` alone among the built-in stages): the plugin
# mechanism and `dvc exp run -S` re-running exactly the stages that declare a field.
PROBE_PLUGIN = """\
from lure.io import write_json
from lure.registry import ANALYSES, Definition, StageDef

ANALYSES.add(
    Definition(
        "probe",
        stages=lambda spec: [
            StageDef(name="probe", params=("eval.bootstrap",), outs=("probe/value.json",), module="probe_plugin")
        ],
    )
)


if __name__ == "__main__":
    from lure.stage import run_stage

    with run_stage("probe") as st:
        write_json("probe/value.json", {"bootstrap": st.spec.eval.bootstrap})
        st.metrics["probed_bootstrap"] = st.spec.eval.bootstrap
"""
PROBE_SPEC: dict = {**SMALL_OFFLINE, "plugins": ["probe_plugin"]}

# The LLM part as small as it goes: a tiny Llama pretrained for 10 steps, one epoch over 32 prompts.
SMALL_LLM: dict = {
    "model": {
        "tiny": {"hidden": 16, "layers": 1, "heads": 2, "vocab_size": 300},
        "pretrain": {"steps": 10, "batch_size": 16},
        "max_length": 256,
    },
    "train": {"epochs": 1, "max_samples": 32, "batch_size": 16, "course_points": 2, "course_samples": 2},
}
# Every LLM stage: base model, SFT, GDRT (token groups scored by the SFT model), Eq. 2 item groups, the window
# evaluation of GDRT and three baselines, the report.
SMALL_LLM_WORLD: dict = {
    "seed": 0,
    "data": {"source": {"name": "world", **TINY_WORLD}},
    "method": {"name": "gdrt", "tau": 0.5, "groups": 3, "relevance_model": "sft"},
    "baselines": ["sft", "sasrec", "popularity"],
    "eval": {
        "models": ["popularity"],
        "bootstrap": 20,
        "sasrec": {"epochs": 2, "hidden": 16},
        "llm": {"max_samples": 12, "attribution_samples": 3, "fairness_scorer": "sft", "bootstrap": 50},
    },
    "exposynth": None,  # ExpoSynth's stages have their own DVC test (test_exposynth.py)
    "reclaif": None,  # so have RecLAIF's (test_reclaif_stages.py)
    "abpo": None,  # and ABPO's (test_abpo_stages.py)
    "tracking": {"enabled": False},
    **SMALL_LLM,
}


def spec_text(spec: dict) -> str:
    return yaml.safe_dump(spec, sort_keys=False)


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: the venv first on PATH (stage commands say `python`), a git identity."""
    env = dict(os.environ)
    env.update(GIT_ENV)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True, timeout: float = 600):
    proc = subprocess.run(args, cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None, timeout: float = 600):
    return run([sys.executable, "-m", "dvc", *args], cwd, env=env, check=check, timeout=timeout)


def lure(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None):
    return run([sys.executable, "-m", "lure.cli", *args], cwd, env=env, check=check)


def ran(output: str) -> list[str]:
    """The stages DVC ran, in order, from the output of `dvc repro` / `dvc exp run`."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", message], root)


def make_project(dest: Path, spec: str | dict = SMALL_OFFLINE, extra_files: dict[str, str] | None = None) -> Path:
    """A fresh git+DVC repository holding a copy of the project, with ``spec`` as the active spec."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    for rel, text in (extra_files or {}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    (dest / "specs" / "test.yaml").write_text(spec if isinstance(spec, str) else spec_text(spec))
    run(["git", "init", "-q", "-b", "main"], dest)
    dvc("init", "-q", cwd=dest)
    dvc("config", "core.analytics", "false", cwd=dest)
    lure("spec", "use", "specs/test.yaml", cwd=dest)
    commit(dest, "init")
    return dest


def copy_project(src: Path, dest: Path) -> Path:
    """A private copy of a built project: git history, workspace and dvc.lock copied, the DVC cache hard-linked.

    Cache files are immutable (DVC writes new objects, never changes one), so linking them is safe and makes a copy
    of a project with trained models cost milliseconds. DVC's own scratch state (``.dvc/tmp``) is not copied.
    """

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {"tmp"} if Path(directory).name == ".dvc" else set()

    def copy(s: str, d: str) -> None:
        if f"{os.sep}.dvc{os.sep}cache{os.sep}" in s:
            try:
                os.link(s, d)
                return
            except OSError:
                pass
        shutil.copy2(s, d)

    shutil.copytree(src, dest, symlinks=True, ignore=ignore, copy_function=copy)
    return dest


# ---------------------------------------------------------------- scheduling


# Modules that build or run pipelines, longest first. They are handed to the xdist workers before the unit-test
# modules (pyproject: --dist loadfile --no-loadscope-reorder), which then fill the gaps, so that a run does not end
# with one worker still building a pipeline while the other is idle.
SLOW_MODULES_FIRST = (
    "test_llm_pipeline.py",
    "test_ground_truth.py",
    "test_mlflow.py",
    "test_dvc_pipeline.py",
    "test_plugin_example.py",
)
# A test that uses one of these runs DVC end to end: it is `slow` whether or not its module says so.
PIPELINE_FIXTURES = frozenset(
    {"offline_build", "offline_project", "offline_copy", "llm_project", "world_project", "coat_project"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
    for item in items:
        if PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# ---------------------------------------------------------------- built once per test run, shared by the workers


def _run_dir(factory: pytest.TempPathFactory) -> Path:
    """The temp directory common to every worker of this run (the workers' own are ``<run dir>/popen-gwN``)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], str]) -> tuple[Path, str]:
    """``build(dest)`` once per test run across all xdist workers; returns (dest, the text ``build`` returned).

    A build that failed is not repeated by the next worker that needs it: that worker fails with the same error.
    """
    from filelock import FileLock

    shared = _run_dir(factory) / "built"
    shared.mkdir(exist_ok=True)
    dest, done, failed = shared / name, shared / f"{name}.done", shared / f"{name}.failed"
    with FileLock(str(shared / f"{name}.lock")):
        if failed.exists():
            pytest.fail(f"building the shared project {name!r} failed (in another worker):\n{failed.read_text()}")
        if not done.exists():
            try:
                log = build(dest)
            except Exception:
                failed.write_text(traceback.format_exc())
                raise
            done.write_text(log)
    return dest, done.read_text()


def _build_offline(dest: Path) -> str:
    root = make_project(dest, PROBE_SPEC, {"probe_plugin.py": PROBE_PLUGIN})
    out = dvc("repro", cwd=root, timeout=1200).stdout
    assert set(ran(out)) == OFFLINE_STAGES | {"probe"}, out
    commit(root, "baseline results")
    return out


def _build_llm(dest: Path) -> str:
    root = make_project(dest, SMALL_LLM_WORLD)
    out = dvc("repro", cwd=root, timeout=1200).stdout  # minutes; more on a loaded machine
    commit(root, "baseline results")
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module's tiny models, the count restored afterwards. Models this small gain nothing
    from threads, and on a loaded two-core machine OpenMP's spinning makes each small matmul take milliseconds
    (beam search in test_train_select: 3.5 s with two threads, 0.06 s with one). Use it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def offline_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """:data:`PROBE_SPEC` after a complete `dvc repro` (and its output), results committed."""
    return build_once(tmp_path_factory, "offline", _build_offline)


@pytest.fixture(scope="session")
def offline_project(offline_build: tuple[Path, str]) -> Path:
    """The built offline project. Read it; run DVC on a copy (``offline_copy``)."""
    return offline_build[0]


@pytest.fixture()
def offline_copy(offline_project: Path, tmp_path: Path) -> Path:
    return copy_project(offline_project, tmp_path / "proj")


@pytest.fixture(scope="session")
def llm_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """:data:`SMALL_LLM_WORLD` after a complete `dvc repro` (and its output). Read it; run DVC on a copy."""
    return build_once(tmp_path_factory, "llm", _build_llm)


def _evaluated(spec: dict) -> Callable[[Path], str]:
    def build(dest: Path) -> str:
        root = make_project(dest, spec)
        return dvc("repro", "evaluate", cwd=root, timeout=1200).stdout  # the offline-evaluation part only

    return build


@pytest.fixture(scope="session")
def world_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default world (exposure_bias 1.0 > 0, seed 0) and the default zoo, through `dvc repro evaluate`."""
    spec = {"tracking": {"enabled": False}, "eval": {"bootstrap": 100}}  # fewer bootstrap draws for speed
    return build_once(tmp_path_factory, "world", _evaluated(spec))[0]


@pytest.fixture(scope="session")
def coat_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Coat (MAR test = truth) through `dvc repro evaluate`; skipped when the shared data folder is absent."""
    if not (SHARED / "coat" / "train.ascii").is_file():
        pytest.skip(f"Coat files not found under {SHARED}/coat (the shared data folder is absent)")
    spec = yaml.safe_load((ROOT / "specs" / "coat.yaml").read_text())
    spec["data"]["source"]["raw_dir"] = str(SHARED)
    spec.update(tracking={"enabled": False}, eval={"bootstrap": 100})
    return build_once(tmp_path_factory, "coat", _evaluated(spec))[0]


# ---------------------------------------------------------------- small worlds shared by unit-test modules


@pytest.fixture(scope="session")
def world_150x120_seed7():
    """``generate_world`` on 150 users x 120 items, seed 7 (test_world.py, test_propensity.py). Do not mutate."""
    from lure.data.world import generate_world
    from lure.spec.source import WorldSpec

    return generate_world(WorldSpec(n_users=150, n_items=120), seed=7)


@pytest.fixture(scope="session")
def prepared_150x120_seed7(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``prepare`` of that world into parquet (test_propensity.py). Read only."""
    from lure.data.prepare import prepare
    from lure.spec.data import DataSpec

    out = tmp_path_factory.mktemp("prepared_150x120_seed7")
    prepare(DataSpec.model_validate({"source": {"name": "world", "n_users": 150, "n_items": 120}}), seed=7, out_dir=out)
    return out


@pytest.fixture(scope="session")
def logistic_150x120_seed7(prepared_150x120_seed7: Path):
    """The logistic propensity model fitted on that prepared world, seed 0. Do not mutate."""
    from lure.propensity import fit_propensity
    from lure.spec.propensity import PropensitySpec

    return fit_propensity(PropensitySpec(model={"name": "logistic"}), prepared_150x120_seed7, seed=0)
