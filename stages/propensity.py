"""Stage ``propensity``: fit P(observed | u, i) on the training interactions; calibration and truth metrics."""

from pathlib import Path

from lure.layout import PREPARED, PROPENSITY_MODEL, plots_dir
from lure.plots.calibration import write_calibration_plot
from lure.propensity.fitted import fit_propensity
from lure.propensity.metrics import propensity_report
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("propensity") as st:
        model = fit_propensity(st.spec.propensity, Path(PREPARED), st.spec.seed)
        model.save(PROPENSITY_MODEL)
        metrics, calibration = propensity_report(model, Path(PREPARED), st.spec.seed)
        st.metrics.update(metrics)
        write_calibration_plot(calibration, Path(plots_dir("propensity")))
