"""Stage ``window-<name>``: zoo model ``name`` fitted once on the window protocol's training interactions; the LLM
evaluation (``llm-eval-<name>``) and RecLAIF's evaluation both score with it."""

import sys
import time
from pathlib import Path

from lure.layout import Prepared, window_model_dir
from lure.llm.data import fit_window_model, save_window_model
from lure.stage import run_stage

if __name__ == "__main__":
    name = sys.argv[1]
    with run_stage(f"window-{name}") as st:
        start = time.perf_counter()
        model = fit_window_model(name, st.spec.eval, Prepared(), st.spec.seed)
        save_window_model(model, Path(window_model_dir(name)))
        st.metrics.update(fit_seconds=round(time.perf_counter() - start, 3))
