"""One registry style for every pluggable choice, and a spec with no field that nothing reads."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import BaseModel, Field, create_model

from lure.pipeline.stages import pipeline_stages
from lure.registry import (
    METHODS,
    PROPENSITY_MODELS,
    SOURCES,
    ZOO,
    Definition,
    Registry,
    StageDef,
    UnknownChoiceError,
)
from lure.spec.base import Section
from lure.spec.eval import EvalSpec, ZooModel
from lure.spec.load import leaf_paths, structural_paths, validate_spec
from lure.spec.method import BaselineName, Method
from lure.spec.model import Spec
from lure.spec.propensity import PropensityModelSpec

# Specs that together choose every built-in member of every union (each member's fields must be read by a stage).
VARIANTS = [
    {},
    {"method": {"name": "sft"}, "baselines": []},
    {"propensity": {"model": {"name": "popularity"}}},
    {"propensity": {"model": {"name": "true"}}},
    {"eval": {"models": list(get_args(ZooModel))}},
    {  # the validity check reads judge.validity (Coat only)
        "data": {"source": {"name": "coat"}},
        "judge": {"backend": {"name": "openai", "model": "m"}, "validity": {}},
        "calibrate": {"estimator": "snips"},
        "reclaif": None,  # RecLAIF's simulated roles need the world
    },
    {  # RecLAIF's model roles: the judge model rates explainability (reclaif.explain_template); the retrieval task
        "reclaif": {
            "task": "retrieval",
            "esci_dir": "esci",
            "baselines": ["bm25"],
            "teacher": {"name": "transformers", "model": "m"},
            "judge": {"name": "openai", "model": "m"},
        }
    },
]
# Stages that declare whole sections because they validate or log the spec: declaring is not reading for them.
NOT_READERS = {"validate", "track"}


def unread_fields(model: type[BaseModel], specs: list[Spec]) -> list[str]:
    """Leaf fields of ``model`` that no stage of any of ``specs`` declares (structural fields are read by the
    generator; ``track`` reads its own ``tracking`` section)."""
    declared = set(structural_paths(model)) | {"tracking"}
    for spec in specs:
        declared |= {p for s in pipeline_stages(spec) if s.name not in NOT_READERS for p in s.params}
    paths = leaf_paths(model)
    leaves = [p for p in paths if not any(q.startswith(p + ".") for q in paths)]
    return [leaf for leaf in leaves if not any(leaf == d or leaf.startswith(d + ".") for d in declared)]


def test_every_leaf_field_of_the_spec_is_read_by_a_stage() -> None:
    assert unread_fields(Spec, [validate_spec(v) for v in VARIANTS]) == []


def test_a_field_that_nothing_reads_is_found() -> None:
    class Extra(Section):
        temperature: float = Field(0.0, description="read by nobody yet")

    extended = create_model("Spec", __base__=Spec, extra=(Extra, Field(default_factory=Extra)))
    specs = [extended.model_validate(v) for v in VARIANTS]
    assert unread_fields(extended, specs) == ["extra.temperature"]


def test_definitions_are_the_members_of_the_spec_unions() -> None:
    union = {m.model_fields["name"].default: m for m in get_args(get_args(PropensityModelSpec)[0])}
    assert PROPENSITY_MODELS.builtin_names() == list(union)
    assert all(PROPENSITY_MODELS.get(n).spec is union[n] for n in union)
    methods = {m.model_fields["name"].default: m for m in get_args(get_args(Method)[0])}
    assert set(METHODS.builtin_names()) == set(methods)
    assert all(METHODS.get(n).spec is methods[n] for n in methods)
    assert ZOO.builtin_names() == list(get_args(ZooModel))
    parameter_free = {n for n, m in methods.items() if set(m.model_fields) == {"name"}}
    assert set(get_args(BaselineName)) == parameter_free | set(ZOO.builtin_names())
    for definition in ZOO:  # a zoo model's parameters: the eval section of its name
        assert definition.spec is None or EvalSpec.model_fields[definition.name].annotation is definition.spec


def test_every_definition_reads_fields_that_exist() -> None:
    paths = set(leaf_paths(Spec))  # every section and field of every union member
    for registry in (SOURCES, ZOO, PROPENSITY_MODELS, METHODS):
        for name in registry.builtin_names():
            missing = set(registry.get(name).reads) - paths
            assert not missing, f"{registry.kind} {name!r} reads {sorted(missing)}, which the spec does not have"


def test_unknown_names_and_duplicates_are_refused_clearly() -> None:
    with pytest.raises(UnknownChoiceError, match="unknown zoo model 'svd'; known: random, popularity, itemknn"):
        ZOO.get("svd")
    registry: Registry[Definition] = Registry("thing")
    registry.add(Definition("a", build=lambda: 1))
    assert registry.get("a").module == __name__ and registry.names() == ["a"]
    other = {"__name__": "somewhere_else"}
    exec("def add(r, d):\n    r.add(d)\n", other)  # a definition of the same name from another module
    with pytest.raises(ValueError, match="thing 'a' is already defined"):
        other["add"](registry, Definition("a", build=lambda: 2))


def test_every_data_source_is_a_definition_that_says_how_to_get_its_files() -> None:
    from lure.spec.source import Source

    members = {m.model_fields["name"].default: m for m in get_args(get_args(Source)[0])}
    assert set(SOURCES.builtin_names()) == set(members)
    assert all(SOURCES.get(n).spec is members[n] for n in members)
    for source in SOURCES:
        if source.raw_files:  # a real dataset: an official archive, a download of its own, or instructions
            assert source.build is not None and "{folder}" in source.manual, source.name
            assert source.archive is not None or source.download is not None or "no official" in source.manual
        else:  # the world prepares itself
            assert source.prepare is not None and not source.required


def test_headline_paths_match_numeric_leaves_with_wildcards() -> None:
    from lure.registry import Headline, HeadlineValue

    metrics = {
        "world": {"gdrt": {"ndcg_at_10": 0.02, "name": "x"}, "sft": {"ndcg_at_10": 0.04}, "pop": {}},
        "comparison": {"a_vs_b": {"ndcg_at_10": {"diff": -0.5}}},
        "flag": True,
        "ece": 3,
    }
    assert Headline("world.*.ndcg_at_10", "{0}.ndcg@10", "higher").values(metrics) == {
        "gdrt.ndcg@10": 0.02,
        "sft.ndcg@10": 0.04,
    }
    assert Headline("*.*.ndcg_at_10.diff", "{0}/{1}").values(metrics) == {"comparison/a_vs_b": -0.5}
    assert Headline("world.gdrt.name", "n").values(metrics) == {}  # strings are not metrics
    assert Headline("flag", "f").values(metrics) == {}  # nor booleans
    assert Headline("missing.path", "m").values(metrics) == {}
    stage = StageDef(name="s", params=(), headline=(Headline("ece", "ece", "lower"), Headline("flag", "f")))
    assert stage.headline_values(metrics) == [HeadlineValue("ece", 3.0, "lower")]
