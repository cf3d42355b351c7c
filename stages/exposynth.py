"""Stage ``exposynth``: ExpoSynth (LURE §2.2) writes exposure-controlled synthetic interactions for the training
users, under the collaborative constraints, and reports what they are (lure.exposynth; docs/exposynth.md)."""

from pathlib import Path

from lure.data.sources.base import dataset_label
from lure.exposynth.run import run_exposynth
from lure.io import write_parquet
from lure.layout import EXPOSYNTH_ROWS, Prepared, plots_dir
from lure.plots.exposynth import exposure_frame, write_exposure_plot
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("exposynth") as st:
        prepared = Prepared()
        # the holdout's training part: synthetic rows continue the log the recommenders learn from, never a split
        train = prepared.read_split("holdout", "train", columns=["user_id", "item_id", "timestamp"])
        items = prepared.read_items(columns=["item_id", "genres", "popularity", "pop_bin"])
        synth = run_exposynth(train, items, st.spec.exposynth, st.spec.data.bins.n_pop_bins, st.spec.seed)
        write_parquet(EXPOSYNTH_ROWS, synth.rows)
        write_exposure_plot(exposure_frame(**synth.exposure), Path(plots_dir("exposynth")))
        st.metrics.update(synth.report)
        # LURE §4.3's three numbers under the dataset's key, so a paper table tells one dataset's run from another's
        r = synth.report
        st.metrics[dataset_label(st.spec.data.source)] = {
            "preset": r["preset"],
            "accepted": r["accepted"],
            "accept_ratio": r["accept_ratio"],
            "tail_ratio_paper": r["tail_ratio_paper"],
            "tail_ratio": r["tail_ratio"],
        }
