"""The experiment spec: one Pydantic model (``lure.spec.model.Spec``) that declares every parameter, with its
description, type and range, and its loading, validation and rendering (``load``, ``dump``, ``view``).

This package sits at the bottom of lure: it imports pydantic, PyYAML and ruamel.yaml but no heavy library, and of
lure only the light helpers ``lure.layout``, ``lure.io`` and (to load plugins) ``lure.registry``
(contracts in pyproject.toml, ``[tool.importlinter]``). Import the modules explicitly
(``from lure.spec.model import Spec``).
"""
