"""First stage of every pipeline: reject a bad or mis-shaped spec, or missing raw data, before any other stage
deletes its outputs.

DVC removes a stage's outputs just before running it. Every stage depends on this one, so an invalid value set
with ``dvc exp run -S`` or a dataset whose files are missing (and cannot be fetched) fails here and no result is
lost. The marker's content is constant, so a valid change of one parameter re-runs only the stages that declare
it.

``dvc exp run -S key=value`` rewrites params.yaml with its own YAML writer: the values are right but the layout is
not ``lure.spec.dump.dump_spec``'s (flow lists become block lists; a mapping replaced as a whole loses its field
descriptions). This stage writes the file back in ``dump_spec``'s layout, but only when every value DVC reads from
it stays exactly the same, so that ``dvc status`` and the experiment's params are unaffected.
"""

from pathlib import Path

from lure.data.fetch import ChecksumError, ensure_raw
from lure.data.sources.base import RawDataMissingError
from lure.io import parse_yaml, write_json, write_text
from lure.layout import PARAMS as PARAMS_FILE
from lure.layout import SPEC_OK
from lure.registry import SOURCES
from lure.spec.dump import dump_spec
from lure.spec.load import canonical_json, load_spec
from lure.stage import err_console, fail, run_stage

PARAMS = Path(PARAMS_FILE)


def same_values(a: str, b: str) -> bool:
    """True when two YAML texts hold exactly the same values, types included (1 is not 1.0, 'yes' is not True).

    Compared as DVC reads params (ruamel, YAML 1.2) and as lure reads them (PyYAML, YAML 1.1), since the two
    disagree on a few spellings (``yes``, ``1e3``).
    """
    from ruamel.yaml import YAML

    dvc_reader = YAML(typ="safe", pure=True)
    return canonical_json(dvc_reader.load(a)) == canonical_json(dvc_reader.load(b)) and canonical_json(
        parse_yaml(a)
    ) == canonical_json(parse_yaml(b))


def restore_layout(path: Path = PARAMS) -> bool:
    """Rewrite ``path`` as ``dump_spec`` writes it (a description above every field) if that changes no value;
    return whether it was rewritten. A file with missing fields or other spellings of a value is left alone."""
    text = path.read_text(encoding="utf-8")
    dumped = dump_spec(load_spec(path))
    if dumped == text or not same_values(dumped, text):
        return False
    write_text(path, dumped)
    return True


if __name__ == "__main__":
    with run_stage("validate", write_metrics=False) as st:
        source = st.spec.data.source
        if SOURCES.get(source.name).raw_files:
            try:  # the files as found, else the official download (sha256-checked), else a clear error
                ensure_raw(source)
            except (RawDataMissingError, ChecksumError) as exc:
                fail(f"data.source {source.name!r}: {exc}")
        if restore_layout():
            err_console.print(f"{PARAMS}: rewrote its field descriptions and layout (values unchanged)")
        write_json(SPEC_OK, {"valid": True})
