"""Stage ``track``: one MLflow run for this pipeline execution (it re-runs whenever any stage re-ran).

The run is named after the DVC experiment, or the spec and its changes against the committed ``params.yaml``; it
spans the stages that ran; its metrics are the stages' headline metrics (the full tree is ``metrics.json``); each
stage has a child run saying whether it ran or came from DVC's cache (``lure.tracking``).
"""

import os
import time
from pathlib import Path

from lure.io import read_json, write_json
from lure.layout import MLFLOW_RUN, SPECS_DIR, is_data_output
from lure.pipeline.stages import pipeline_stages
from lure.spec.load import flatten, load_spec, spec_hash
from lure.spec.model import spec_to_dict
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("track", write_metrics=False, record_run=False) as st:
        started = time.time()
        spec = load_spec()  # every section is declared by this stage, so the whole spec is its view
        stages = pipeline_stages(spec)
        record: dict[str, object] = {"logged": False}
        from lure import tracking

        executions = tracking.stage_executions(stages)  # read before anything else: the records are cleared below
        if st.spec.tracking.enabled:
            root = tracking.repo_root()
            stage_metrics = {s.name: read_json(s.metrics) for s in stages if s.metrics and Path(s.metrics).is_file()}
            records = tracking.stage_records(stages, stage_metrics, executions)
            params = flatten(spec_to_dict(spec))
            rev = tracking.git_rev(root)
            base = tracking.committed_spec(root, rev)
            changed = tracking.changed_params(params, flatten(spec_to_dict(base)) if base else params)
            spec_name = tracking.spec_file_name(base or spec, root / SPECS_DIR) or spec.data.source.name
            exp_name = os.environ.get("DVC_EXP_NAME")
            name = tracking.run_name(exp_name=exp_name, spec_name=spec_name, changed=changed, rev=rev)
            # the compare view plots the first metric logged: the evaluation of the method under study
            lead = f"llm-eval-{spec.method.name}" if spec.method is not None else "evaluate"
            artifacts = [Path(p) for s in stages for p in (*s.outs, *s.plots) if not is_data_output(p)]
            tags = {
                "git_rev": rev,
                "dvc_exp_name": exp_name or "workspace",
                "spec_hash": spec_hash(spec),
                "lure.spec": spec_name,
                "lure.changed_params": " ".join(f"{k}={tracking.short_value(v)}" for k, v in changed.items())[:5000],
                "data_fingerprint": str(stage_metrics.get("prepare", {}).get("data_fingerprint", "unknown")),
            }
            run_id = tracking.log_pipeline_run(
                experiment=st.spec.tracking.experiment,
                run_name=name,
                params=params,
                headline=tracking.headline_metrics(stages, stage_metrics, lead=lead),
                metric_tree=stage_metrics,
                records=records,
                artifacts=[a for a in artifacts if a.exists()],
                tags=tags,
                started_at=tracking.pipeline_start(records, default=started),
            )
            record = {
                "logged": True,
                "run_id": run_id,
                "experiment": st.spec.tracking.experiment,
                "run_name": name,
                "stages": {r.name: r.status for r in records},
            }
        tracking.clear_executions()
        write_json(MLFLOW_RUN, record)
