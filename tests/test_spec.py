"""The spec model: defaults, validation messages with field paths, overrides, structural fields, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lure.cli import app
from lure.spec.dump import dump_spec
from lure.spec.load import (
    SpecError,
    apply_overrides,
    flatten,
    load_spec,
    parse_override,
    spec_hash,
    structural_paths,
    validate_spec,
)
from lure.spec.model import Spec, spec_to_dict

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

# (spec fragment, field path that must be named, text the message must contain)
MALFORMED = [
    ({"judge": {"temperature": 5.0}}, "judge.temperature", "must be <= 2.0"),
    ({"propensity": {"model": {"name": "logistic", "c": 0}}}, "propensity.model.c", "must be > 0"),
    ({"propensity": {"model": {"name": "ips"}}}, "propensity.model", "'logistic', 'popularity', 'true'"),
    ({"propensity": {"model": {"name": "true", "eta": 1}}}, "propensity.model.eta", "unknown key (allowed here: name)"),
    ({"bogus": 1}, "bogus", "unknown key"),
    ({"data": {"wrld": {}}}, "data.wrld", "unknown key"),
    ({"method": {"name": "gdrt", "tau": -1}}, "method.tau", "must be > 0.0"),
    ({"method": {"name": "gdrt", "tau": "hot"}}, "method.tau", "valid number"),
    ({"method": {"name": "sft", "tau": 0.3}}, "method.tau", "unknown key (allowed here: name)"),
    ({"method": {"name": "dpo"}}, "method", "'gdrt', 'sft'"),
    ({"data": {"source": {"name": "world", "n_users": "many"}}}, "data.source.n_users", "valid integer"),
    ({"data": {"source": {"name": "world", "n_users": 5}}}, "data.source.n_users", "must be >= 10"),
    (
        {"data": {"source": {"name": "lastfm", "min_rating": 4}}},
        "data.source.min_rating",
        "unknown key (allowed here: name, raw_dir)",
    ),
    (
        {"data": {"source": {"name": "world", "exposures_per_step": 900, "n_items": 800}}},
        "data.source",
        "exposures_per_step must be <",
    ),
    ({"data": {"splits": {"ratios": [0.5, 0.5, 0.5]}}}, "data.splits.ratios", "sum to 1"),
    ({"propensity": {"clip_min": 0.5, "clip_max": 0.4}}, "propensity", "clip_min must be < clip_max"),
    ({"eval": {"ks": [10, 10]}}, "eval", "distinct"),
    ({"seed": -3}, "seed", "must be >= 0"),
    ({"method": {"name": "sft"}, "baselines": ["sft"]}, "", "must not contain the method under study"),
    ({"baselines": ["gdrt"]}, "baselines.0", "'sft', 'sasrec'"),
    ({"method": None, "baselines": ["sft"]}, "", "baselines need a method under study"),
    ({"data": {"source": "netflix"}}, "data.source", "'world'"),
    ({"model": {"template": "chat"}}, "model.template", "no file prompts/chat.j2 (known templates: next_item"),
    (
        {"abpo": {"variants": {"g": {"method": "grpo", "snips": False}}}},
        "abpo.variants.g",
        "snips switch the anchor, which only method 'abpo' has",
    ),
    ({"abpo": {"variants": {"Bad-Name": {"method": "abpo"}}}}, "abpo", "lower-case letters"),
    ({"abpo": {"variants": {}}}, "abpo", "abpo.variants is empty"),
    ({"method": None, "baselines": [], "abpo": {}}, "", "abpo updates the SFT recommender"),
]


def test_defaults_validate_and_describe_every_field() -> None:
    spec = Spec()
    assert spec.method.name == "gdrt" and spec.method.tau == 0.5
    schema = Spec.model_json_schema()
    missing = []

    def walk(node: dict, path: str) -> None:
        for name, prop in node.get("properties", {}).items():
            if "description" not in prop:
                missing.append(f"{path}{name}")
            for ref in [prop.get("$ref")] + [s.get("$ref") for s in prop.get("anyOf", []) + prop.get("oneOf", [])]:
                if ref:
                    walk(schema["$defs"][ref.rsplit("/", 1)[-1]], f"{path}{name}.")

    walk(schema, "")
    assert not missing, f"fields without a description: {missing}"


@pytest.mark.parametrize(("fragment", "path", "text"), MALFORMED, ids=[m[1] or m[2][:20] for m in MALFORMED])
def test_malformed_spec_names_field_path(fragment: dict, path: str, text: str) -> None:
    with pytest.raises(SpecError) as info:
        validate_spec(fragment, "specs/bad.yaml")
    message = str(info.value)
    assert message.startswith("specs/bad.yaml: ")
    if path:
        assert f"specs/bad.yaml: {path}: " in message, message
    assert text in message, message


@pytest.mark.parametrize(("fragment", "path", "text"), MALFORMED[:12], ids=[m[1] for m in MALFORMED[:12]])
def test_spec_use_rejects_bad_file_with_exit_2_and_touches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fragment: dict, path: str, text: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    (tmp_path / "dvc.yaml").write_text("# previous\n")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(fragment))
    result = runner.invoke(app, ["spec", "use", "bad.yaml"])
    assert result.exit_code == 2
    assert f"bad.yaml: {path}: " in result.output and text in result.output
    assert (tmp_path / "params.yaml").read_text() == "seed: 1\n"
    assert (tmp_path / "dvc.yaml").read_text() == "# previous\n"
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_missing_file_and_broken_yaml(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="nope.yaml: file not found"):
        load_spec(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  world: [1, 2\n")
    with pytest.raises(SpecError, match=r"broken.yaml: invalid YAML at line \d+"):
        load_spec(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(listy)


def default_world() -> Spec:
    """The defaults, but one ABPO round (abpo.rounds defaults to 3): the default pipeline's time budget."""
    spec = Spec()
    assert spec.abpo is not None and spec.abpo.rounds == 3
    return spec.model_copy(update={"abpo": spec.abpo.model_copy(update={"rounds": 1})})


def test_default_spec_is_params_yaml_and_complete() -> None:
    world = (ROOT / "specs" / "world.yaml").read_text()
    assert world == (ROOT / "params.yaml").read_text()
    assert load_spec(ROOT / "params.yaml") == default_world()
    # written out in full (DVC tracks only keys present in the file); regenerate with `lure spec use`
    assert dump_spec(default_world()) == world


def test_spec_use_writes_every_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("method: {name: gdrt, tau: 0.3}\n")
    result = runner.invoke(app, ["spec", "use", "mine.yaml"])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert written["method"] == {
        "name": "gdrt",
        "tau": 0.3,
        "groups": 5,
        "relevance_model": "sft",
        "grouping": "kmeans",
    }
    assert set(written) == set(Spec.model_fields)
    assert "# Group-DRO temperature" in (tmp_path / "params.yaml").read_text()


def test_every_named_spec_validates() -> None:
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        load_spec(path)


def test_overrides_parse_like_dvc() -> None:
    assert parse_override("method.tau=0.3") == ("method.tau", 0.3)
    assert parse_override("baselines=[sft]") == ("baselines", ["sft"])
    assert parse_override("judge.model=gpt-4o") == ("judge.model", "gpt-4o")
    data = apply_overrides({"method": {"name": "gdrt"}}, ["method.tau=0.3", "eval.ks=[1,2]"])
    assert data == {"method": {"name": "gdrt", "tau": 0.3}, "eval": {"ks": [1, 2]}}
    with pytest.raises(SpecError, match="KEY=VALUE"):
        parse_override("method.tau")
    with pytest.raises(SpecError, match="is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=1"])


def test_structural_fields_and_hash() -> None:
    assert set(structural_paths()) >= {"data.source.name", "method.name", "baselines", "eval.models", "plugins"}
    a = Spec()
    b = validate_spec({"method": {"name": "gdrt", "tau": 0.3}})
    assert spec_hash(a) != spec_hash(b)
    assert spec_hash(a) == spec_hash(validate_spec(spec_to_dict(a)))
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": 1, "a.c": [1, 2], "d": {}}


def test_a_keys_only_structural_mapping_reshapes_on_names_not_contents() -> None:
    from lure.spec.load import structural_values

    base = structural_values(Spec())["abpo.variants"]
    assert base == ["abpo", "grpo", "sft_positive"]
    switched = validate_spec(
        {"abpo": {"variants": {"grpo": {"method": "grpo"}, "abpo": {"method": "abpo", "snips": False}}}}
    )
    assert structural_values(switched)["abpo.variants"] == ["abpo", "grpo"]  # a method fewer: a new shape
    same_names = validate_spec(
        {"abpo": {"variants": {n: {"method": n, **({"tempering": "direct"} if n == "abpo" else {})} for n in base}}}
    )
    assert structural_values(same_names) == structural_values(Spec())  # a switch: the same stages


def test_schema_and_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    result = runner.invoke(app, ["spec", "schema", "--out", "schema.json"])
    assert result.exit_code == 0
    schema = json.loads((tmp_path / "schema.json").read_text())
    method_union = next(x for x in schema["properties"]["method"]["anyOf"] if "discriminator" in x)
    assert method_union["discriminator"]["propertyName"] == "name"
    propensity = schema["$defs"]["PropensitySpec"]["properties"]["model"]
    assert propensity["discriminator"]["propertyName"] == "name"
    assert set(propensity["discriminator"]["mapping"]) == {"logistic", "popularity", "true"}
    result = runner.invoke(app, ["spec", "show"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "method.tau" in result.output and "Group-DRO temperature" in result.output
    assert "data.source.exposure_bias" in result.output
