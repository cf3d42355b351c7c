"""Stage ``prepare``: dataset (the simulated world by default) → canonical parquet tables and statistics."""

from pathlib import Path

from lure.data.prepare import prepare
from lure.io import fingerprint
from lure.layout import PREPARED, Prepared, plots_dir
from lure.plots.popularity import write_popularity_plot
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("prepare") as st:
        out = Path(PREPARED)
        st.metrics.update(prepare(st.spec.data, st.spec.seed, out))
        st.metrics["data_fingerprint"] = fingerprint(out)
        write_popularity_plot(Prepared(out).items, Path(plots_dir("prepare")))
