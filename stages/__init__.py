"""Thin DVC stage scripts: each loads its view of the spec, calls the library, writes outputs atomically.

Python imports this package before any stage module, so it is where a stage process is set up:

* ``dvc.yaml`` says ``python -m stages.x``; run from a shell where the project's environment is not active (e.g.
  ``.venv/bin/dvc repro``), ``python`` is another interpreter, and the first import of pandas would fail with a bare
  ``ModuleNotFoundError``. A few core packages are looked up first (without importing them), and a missing one ends
  the stage with one line that says how to activate the environment.
* When stderr is not a terminal (a log file, CI), tqdm bars would write a line at every update (every training
  step); ``TQDM_MININTERVAL`` throttles every bar of the process (tqdm reads it when it is first
  imported), and the Hugging Face libraries' bars for steps that take a second (writing a checkpoint's shards,
  loading weights, mapping a dataset) are turned off. A variable the user set is kept.
"""

import importlib.util
import os
import sys

#: Imported by every stage (through lure.stage and the spec); one missing means the wrong interpreter.
CORE_PACKAGES = ("numpy", "pandas", "pydantic", "rich", "yaml")
#: Seconds between two updates of a progress bar when stderr is not a terminal (unless TQDM_MININTERVAL is set).
PIPED_PROGRESS_INTERVAL = "30"


def missing_packages(names: tuple[str, ...] = CORE_PACKAGES) -> list[str]:
    """The packages of ``names`` this interpreter cannot import (looked up on sys.path, not imported)."""
    return [name for name in names if importlib.util.find_spec(name) is None]


_missing = missing_packages()
if _missing:
    sys.stderr.write(
        f"error: lure's dependencies are not importable by {sys.executable} (missing: {', '.join(_missing)}): "
        "run `source .venv/bin/activate` (or `make repro`), then re-run\n"
    )
    raise SystemExit(2)

if not sys.stderr.isatty():
    os.environ.setdefault("TQDM_MININTERVAL", PIPED_PROGRESS_INTERVAL)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' own bars follow this one
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
