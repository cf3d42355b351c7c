"""Stage ``calibrate``: Calib-Link (LURE §2.3), the isotonic map from each recommender's RJS to its IPS recall lift
over a reference model, with Spearman rho, Kendall tau, R^2 and the leave-one-model-out error; on the world the same
against the true recall, which is what the judge is meant to stand in for."""

from pathlib import Path

from lure.calibrate import calibration_report
from lure.io import read_json
from lure.layout import metrics_file, plots_dir
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("calibrate") as st:
        report = calibration_report(
            read_json(metrics_file("judge-metrics")),
            read_json(metrics_file("evaluate")),
            st.spec.calibrate,
            st.spec.eval.models,
            Path(plots_dir("calibrate")),
        )
        st.metrics.update(report)
