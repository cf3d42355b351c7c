"""Stage ``track``: one MLflow run for this pipeline execution (it re-runs whenever any stage re-ran)."""

import os
from pathlib import Path

from lure.io import read_json, write_json
from lure.layout import MLFLOW_RUN, is_data_output
from lure.pipeline.stages import pipeline_stages
from lure.spec.load import flatten, load_spec, spec_hash
from lure.spec.model import spec_to_dict
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("track", write_metrics=False) as st:
        spec = load_spec()  # every section is declared by this stage, so the whole spec is its view
        stages = pipeline_stages(spec)
        record: dict[str, object] = {"logged": False}
        if st.spec.tracking.enabled:
            from lure.tracking import git_rev, log_pipeline_run, repo_root

            stage_metrics = {s.name: read_json(s.metrics) for s in stages if s.metrics and Path(s.metrics).is_file()}
            artifacts = [Path(p) for s in stages for p in (*s.outs, *s.plots) if not is_data_output(p)]
            exp_name = os.environ.get("DVC_EXP_NAME", "workspace")
            tags = {
                "git_rev": git_rev(repo_root()),
                "dvc_exp_name": exp_name,
                "spec_hash": spec_hash(spec),
                "data_fingerprint": str(stage_metrics.get("prepare", {}).get("data_fingerprint", "unknown")),
            }
            run_id = log_pipeline_run(
                experiment=st.spec.tracking.experiment,
                params=flatten(spec_to_dict(spec)),
                stage_metrics=stage_metrics,
                artifacts=[a for a in artifacts if a.exists()],
                tags=tags,
                run_name=exp_name,
            )
            record = {"logged": True, "run_id": run_id, "experiment": st.spec.tracking.experiment, "run_name": exp_name}
        write_json(MLFLOW_RUN, record)
