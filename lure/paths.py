"""Where the prompt templates are. Standard library only: ``lure.spec`` validates ``model.template`` with it, and the
spec must load without jinja, torch or any other heavy library (an import-linter contract in pyproject.toml).

``prompts/`` at the top of the project is the one source of truth. :func:`prompts_dir` looks, in order, in

1. ``./prompts``: the current directory is the project root when DVC runs a stage (and when ``lure`` is called
   there), so a project's own templates win;
2. ``prompts/`` in the repository root above this package (a checkout, installed editable or not installed at all);
3. ``lure/_prompts/``: the copy a wheel ships (``setup.py`` maps ``prompts/`` to that package directory).

The first of these that holds a ``*.j2`` file is the answer.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

TEMPLATE_SUFFIX = ".j2"
_PACKAGE = Path(__file__).resolve().parent


def prompts_dir_candidates(cwd: str | Path | None = None) -> tuple[Path, ...]:
    """The folders :func:`prompts_dir` tries, in order."""
    here = Path.cwd() if cwd is None else Path(cwd)
    return (here / "prompts", _PACKAGE.parent / "prompts", _PACKAGE / "_prompts")


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
