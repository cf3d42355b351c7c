"""First stage of every pipeline: reject a bad or mis-shaped spec, or missing raw data, before any other stage
deletes its outputs.

DVC removes a stage's outputs just before running it. Every stage depends on this one, so an invalid value set
with ``dvc exp run -S`` or a dataset whose files are missing (and cannot be fetched) fails here and no result is
lost. The marker's content is constant, so a valid change of one parameter re-runs only the stages that declare
it.
"""

from lure.data.fetch import ChecksumError, ensure_raw
from lure.data.sources.base import RawDataMissingError
from lure.io import write_json
from lure.layout import SPEC_OK
from lure.registry import SOURCES
from lure.stage import fail, run_stage

if __name__ == "__main__":
    with run_stage("validate", write_metrics=False) as st:
        source = st.spec.data.source
        if SOURCES.get(source.name).raw_files:
            try:  # the files as found, else the official download (sha256-checked), else a clear error
                ensure_raw(source)
            except (RawDataMissingError, ChecksumError) as exc:
                fail(f"data.source {source.name!r}: {exc}")
        write_json(SPEC_OK, {"valid": True})
