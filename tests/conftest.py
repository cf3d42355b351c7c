"""Shared fixtures: the repository root, and a scratch copy of the project that DVC can run in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("lure", "stages", "specs", "prompts", "pyproject.toml", ".dvcignore", ".gitignore")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "lure tests",
    "GIT_AUTHOR_EMAIL": "tests@lure.invalid",
    "GIT_COMMITTER_NAME": "lure tests",
    "GIT_COMMITTER_EMAIL": "tests@lure.invalid",
}

# A world small enough that a full pipeline run takes seconds; its LLM part is as small as the stages allow (GDRT
# scored by the base model against popularity only: no SFT stage), since these tests are about the pipeline itself.
SMALL_LLM = """\
model: {tiny: {hidden: 16, layers: 1, heads: 2, vocab_size: 300}, max_length: 256}
train: {epochs: 1, max_samples: 32, batch_size: 16, course_points: 1, course_samples: 2}
"""
SMALL_WORLD = """\
seed: 0
data:
  world: {n_users: 80, n_items: 60, activity_mean: 12, mar_fraction: 0.2, mar_exposures_per_user: 10}
method: {name: gdrt, tau: 0.5, relevance_model: base, groups: 2}
baselines: [popularity]
eval:
  models: [random, popularity]
  bootstrap: 50
  llm: {max_samples: 8, attribution_samples: 2, fairness_scorer: base, bootstrap: 20}
tracking: {enabled: false}
""" + SMALL_LLM


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


def make_project(dest: Path, spec_text: str = SMALL_WORLD, extra_files: dict[str, str] | None = None) -> Path:
    """A fresh git+DVC repository holding a copy of the project, with ``spec_text`` as the active spec."""
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
    (dest / "specs" / "test.yaml").write_text(spec_text)
    run(["git", "init", "-q", "-b", "main"], dest)
    dvc("init", "-q", cwd=dest)
    dvc("config", "core.analytics", "false", cwd=dest)
    lure("spec", "use", "specs/test.yaml", cwd=dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "init"], dest)
    return dest


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")
