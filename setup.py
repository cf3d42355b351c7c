"""Packaging shim: all metadata is in pyproject.toml; this only lists the packages, which pyproject cannot.

The prompt templates' source of truth is ``prompts/`` at the top of the project. A wheel ships them as the package
directory ``lure/_prompts`` (``package-dir`` and ``package-data`` in pyproject.toml), which ``lure.layout`` falls
back to when no project ``prompts/`` is around. pyproject's ``packages.find`` cannot add a package that lives
outside ``lure/``, hence the explicit ``lure._prompts`` here, next to every package found under ``lure/``.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["lure", "lure.*"]), "lure._prompts"])
