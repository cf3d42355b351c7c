"""Reading, overriding and validating specs, with errors that name the file and the field path.

Every entry point (``lure spec ...``, ``lure exp run``, every stage) goes through :func:`load_spec`, so a bad
value is rejected with the same message everywhere and before any work is done.
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from lure.io import DuplicateKeyError, YamlError, parse_yaml, read_yaml
from lure.spec.base import STRUCTURAL_KEY, STRUCTURAL_KEYS
from lure.spec.model import Spec, spec_model, spec_to_dict


class SpecError(Exception):
    """A spec that cannot be used; ``problems`` are (field path, message) pairs."""

    exit_code = 2

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(
            f"{self.source}: {path}: {msg}" if path else f"{self.source}: {msg}" for path, msg in self.problems
        )


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Parse a YAML file that must hold a mapping; errors name the file (and the line for syntax errors)."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(str(path), [("", "file not found (expected a YAML spec)")])
    try:
        data = read_yaml(p)
    except YamlError as exc:  # a syntax error or a duplicate key, with its line
        raise SpecError(str(path), [("", exc.problem)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            str(path), [("", f"expected a mapping of sections at the top level, got {type(data).__name__}")]
        )
    return data


def validate_spec(data: Mapping[str, Any], source: str = "params.yaml") -> Spec:
    plugins = data.get("plugins")
    named = plugins if isinstance(plugins, list) and all(isinstance(p, str) for p in plugins) else []
    try:
        model = spec_model(named)  # imports the plugins: their methods join the spec's unions
    except ValueError as exc:
        raise SpecError(source, [("plugins", str(exc))]) from None
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise SpecError(source, [_describe(err, model) for err in exc.errors()]) from None


def load_spec(path: str | Path = "params.yaml") -> Spec:
    return validate_spec(read_yaml_mapping(path), str(path))


# ---------------------------------------------------------------- overrides (the `-S key=value` grammar)


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=value`` → (``a.b``, YAML-parsed value), as ``dvc exp run -S`` interprets it."""
    if "=" not in text:
        raise SpecError("-S", [(text, "expected KEY=VALUE, e.g. method.tau=0.3")])
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise SpecError("-S", [(text, "empty key or empty path segment")])
    try:
        value = parse_yaml(raw, "-S") if raw.strip() else ""
    except DuplicateKeyError as exc:
        raise SpecError("-S", [(text, exc.problem)]) from None
    except YamlError:  # not YAML: the text itself, as dvc exp run -S takes it
        value = raw
    return key, value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a deep copy of ``data`` with each override set (intermediate mappings created as needed)."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        key, value = parse_override(text)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise SpecError("-S", [(key, f"{part!r} is a value, not a section")])
            node = nxt
        node[parts[-1]] = value
    return out


# ---------------------------------------------------------------- structure, hashing, flattening


def structural_paths(model: type[BaseModel] = Spec, prefix: str = "") -> list[str]:
    """Dotted paths of every field marked structural (they decide which stages exist)."""
    return list(structural_kinds(model, prefix))


def structural_kinds(model: type[BaseModel] = Spec, prefix: str = "") -> dict[str, Any]:
    """Every structural field's path and marker: True (its value decides the stages) or ``STRUCTURAL_KEYS`` (only
    the keys of the mapping do)."""
    kinds: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get(STRUCTURAL_KEY):
            kinds[path] = extra[STRUCTURAL_KEY]
        for sub in _submodels(field.annotation):
            for p, kind in structural_kinds(sub, path + ".").items():
                kinds.setdefault(p, kind)
    return kinds


def get_path(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def structural_values(spec: Spec) -> dict[str, Any]:
    data = spec_to_dict(spec)
    out = {}
    for path, kind in structural_kinds().items():
        value = get_path(data, path)
        out[path] = sorted(value) if kind == STRUCTURAL_KEYS and isinstance(value, Mapping) else value
    return out


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: Spec) -> str:
    """Content hash of the effective spec (defaults included), stable across key order and comments."""
    return hashlib.sha256(canonical_json(spec_to_dict(spec)).encode()).hexdigest()[:16]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → {"a.b.c": leaf}; lists stay leaves (they are one parameter)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def leaf_paths(model: type[BaseModel] = Spec, prefix: str = "") -> list[str]:
    """Every declarable field path of a model, sections and leaves alike."""
    out: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        out.append(path)
        for sub in _submodels(field.annotation):
            out.extend(p for p in leaf_paths(sub, path + ".") if p not in out)
    return out


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _submodels(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _submodels(arg)]
    return []


# ---------------------------------------------------------------- error messages


def _describe(err: Mapping[str, Any], root: type[BaseModel] = Spec) -> tuple[str, str]:
    raw_loc = tuple(err.get("loc", ()))
    loc = _strip_union_tags(raw_loc, root)
    path = ".".join(str(p) for p in loc)
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    given = err.get("input")
    bounds = {
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
    }
    if kind in bounds:
        op, key = bounds[kind]
        return path, f"must be {op} {ctx.get(key)}, got {given!r}"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(raw_loc[:-1], root)
        hint = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return path, f"unknown key{hint}"
    if kind == "missing":
        return path, "required field is missing"
    msg = str(err.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        return path, msg[len("Value error, ") :]
    if kind in ("too_short", "too_long"):
        return path, f"{msg}"
    return path, f"{msg[0].lower() + msg[1:]}, got {given!r}"


def _strip_union_tags(loc: Iterable[Any], root: type[BaseModel] = Spec) -> list[Any]:
    """Pydantic inserts the discriminator tag into the location of union members; users never write it."""
    out: list[Any] = []
    model: Any = root
    for part in loc:
        if isinstance(model, list):  # several union members: this part is the tag
            chosen = [m for m in model if _tag_of(m) == part]
            if chosen:
                model = chosen[0]
                continue
            model = None
        out.append(part)
        if (
            isinstance(model, type)
            and issubclass(model, BaseModel)
            and isinstance(part, str)
            and part in model.model_fields
        ):
            subs = _submodels(model.model_fields[part].annotation)
            model = subs[0] if len(subs) == 1 else (subs or None)
        else:
            model = None
    return out


def _tag_of(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("name")
    return field.default if field is not None else None


def _allowed_keys(raw_loc: Iterable[Any], root: type[BaseModel] = Spec) -> list[str]:
    """Keys allowed at a location that still carries pydantic's union tags (they pick the member)."""
    model: Any = root
    for part in raw_loc:
        if isinstance(model, list):
            chosen = [m for m in model if _tag_of(m) == part]
            if len(chosen) != 1:
                return []
            model = chosen[0]
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        subs = _submodels(model.model_fields[part].annotation)
        model = subs[0] if len(subs) == 1 else (subs or None)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
