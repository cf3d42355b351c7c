"""The experiment spec: one Pydantic model (``lure.spec.model.Spec``) that declares every parameter, with its
description, type and range, and its loading, validation and rendering (``load``, ``dump``, ``view``).

This package is the bottom layer of lure: it imports pydantic, PyYAML and ruamel.yaml but no heavy library and
nothing else of lure except the standard-library helper ``lure.paths`` (contracts in pyproject.toml,
``[tool.importlinter]``). Import the modules explicitly (``from lure.spec.model import Spec``).
"""
