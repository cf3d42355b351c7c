"""First stage of every pipeline: reject a bad or mis-shaped spec before any other stage deletes its outputs.

DVC removes a stage's outputs just before running it. Every stage depends on this one, so an invalid value set
with ``dvc exp run -S`` fails here and no result is lost. The marker's content is constant, so a valid change
of one parameter re-runs only the stages that declare it.
"""

from lure.io import write_json
from lure.pipeline.stages import SPEC_OK
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("validate", write_metrics=False):
        write_json(SPEC_OK, {"valid": True})
