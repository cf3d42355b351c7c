"""Write a spec as complete, self-documenting YAML: every field with its value and its description above it.

``params.yaml`` is always written this way. DVC can only track parameters that are present in the file, and a
run is reproducible only if every value it used is written down, defaults included.
"""

from __future__ import annotations

import io
import textwrap
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from lure.spec.model import Spec

HEADER = (
    "# yaml-language-server: $schema=spec.schema.json\n"
    "# A lure experiment spec with every field written out (defaults included), so DVC tracks them all.\n"
    "# Make a spec active with `lure spec use FILE`; `lure spec show` prints this as a table.\n"
)


def _node(model: BaseModel, data: dict[str, Any], indent: int) -> CommentedMap:
    out = CommentedMap()
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out[name] = _node(value, data[name], indent + 2)
        elif isinstance(data[name], list):
            seq = CommentedSeq(data[name])
            seq.fa.set_flow_style()
            out[name] = seq
        else:
            out[name] = data[name]
        if field.description:
            text = "\n".join(textwrap.wrap(field.description, width=110 - indent))
            out.yaml_set_comment_before_after_key(name, before=text, indent=indent)
    return out


def dump_spec(spec: Spec) -> str:
    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    buf = io.StringIO()
    yaml.dump(_node(spec, spec.model_dump(mode="json"), 0), buf)
    return HEADER + buf.getvalue()
