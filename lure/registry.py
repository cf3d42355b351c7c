"""The one way to make a pluggable choice: a named :class:`Definition` in a :class:`Registry`.

Every choice a spec makes by name — a data source, a zoo model, a propensity model, a training method, an LLM
request backend (and, as their issues arrive, ExpoSynth presets, bandit policies) — is a definition that lives
next to its implementation and says four things:

* ``spec``: its spec class, the member of the spec's discriminated union that configures it (None when it has no
  parameters of its own);
* ``reads``: the spec fields its stages read (dotted paths from the root), so the pipeline declares them to DVC;
* ``build``: how to build it (heavy libraries are imported inside ``build``, never at module level);
* ``stages``: the DVC stages it contributes, if any (a function of the spec returning :class:`StageDef` s).

Built-in choices are registered exactly as a researcher's plugin is: a module that calls ``REGISTRY.add(...)`` at
import time. A registry imports its built-in modules by name on first use; ``spec.plugins`` names more modules,
imported by :func:`load_plugins` before the spec is validated. See docs/pipeline.md ("Adding a method as a plugin").
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from lure.layout import metrics_file


@dataclass(frozen=True)
class Headline:
    """A metric a person reads first, declared by the stage that writes it (``lure exp show``, ``lure summary``,
    MLflow's runs table): a dotted ``path`` into the stage's metrics file, where ``*`` stands for any one key (each
    recommender, each dataset), a short stable ``label`` (``{0}``, ``{1}``: the keys ``*`` matched) and whether
    ``higher`` or ``lower`` is better (None: a descriptive number, neither).
    """

    path: str
    label: str
    better: Literal["higher", "lower"] | None = None

    def values(self, metrics: Any) -> dict[str, float]:
        """``{label: value}`` for every numeric leaf of ``metrics`` the path matches (absent ones are skipped)."""
        found: dict[str, float] = {}

        def walk(node: Any, parts: list[str], matched: tuple[str, ...]) -> None:
            if not parts:
                if isinstance(node, int | float) and not isinstance(node, bool):
                    found[self.label.format(*matched)] = float(node)
                return
            if not isinstance(node, dict):
                return
            head, rest = parts[0], parts[1:]
            if head == "*":
                for key in sorted(node):
                    walk(node[key], rest, (*matched, str(key)))
            elif head in node:
                walk(node[head], rest, matched)

        walk(metrics, self.path.split("."), ())
        return found


class HeadlineValue(NamedTuple):
    """One headline metric of one run: its label, value and which direction is better."""

    label: str
    value: float
    better: Literal["higher", "lower"] | None


@dataclass(frozen=True)
class PlotDef:
    """How ``dvc plots`` draws one data-series file (CSV) of a stage: the columns on each axis, a title, the axis
    labels and a Vega-Lite template, either one of DVC's (``linear``, ``scatter``, ``bar_horizontal``, …, see
    ``dvc plots templates``) or a ``.json`` file under the project root. Without one DVC plots the row index against
    the last column, which is rarely a chart. The generator writes it to the top-level ``plots:`` of ``dvc.yaml``.
    """

    path: str
    x: str
    y: tuple[str, ...]
    title: str
    template: str = "linear"
    x_label: str = ""
    y_label: str = ""

    def __post_init__(self) -> None:
        for name in ("path", "x", "title", "template"):
            if not getattr(self, name):
                raise ValueError(f"plot {self.path or '?'}: {name} must not be empty")
        if isinstance(self.y, str) or not self.y or not all(self.y):
            raise ValueError(f"plot {self.path}: y must be a non-empty tuple of column names, got {self.y!r}")


@dataclass(frozen=True)
class StageDef:
    """One DVC stage. ``params`` are dotted spec paths (a section name declares the whole section).

    ``code`` lists non-Python files the stage reads (templates, configs); the Python modules it runs are derived
    from its imports when ``dvc.yaml`` is generated (``lure.pipeline.code_deps``), so they cannot drift.
    """

    name: str
    params: tuple[str, ...]
    code: tuple[str, ...] = ()
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    uncached_outs: tuple[str, ...] = ()
    has_metrics: bool = True
    #: Every plot file the stage writes (CSV data series and PNG images), outputs a person looks at.
    plots: tuple[str, ...] = ()
    #: How ``dvc plots`` draws the data-series files among ``plots`` (one ``PlotDef`` each; images need none).
    charts: tuple[PlotDef, ...] = ()
    module: str = ""
    args: tuple[str, ...] = ()
    launcher: tuple[str, ...] = ("python",)
    #: The few metrics of this stage's metrics file that a person compares runs on (``Headline``).
    headline: tuple[Headline, ...] = ()

    def __post_init__(self) -> None:
        stray = [c.path for c in self.charts if c.path not in self.plots]
        if stray:
            raise ValueError(f"stage {self.name!r}: charts {stray} are not among its plots {list(self.plots)}")

    def headline_values(self, metrics: Any) -> list[HeadlineValue]:
        """The declared headline metrics found in ``metrics`` (this stage's metrics file), in declaration order."""
        return [
            HeadlineValue(label, value, headline.better)
            for headline in self.headline
            for label, value in headline.values(metrics).items()
        ]

    @property
    def module_name(self) -> str:
        return self.module or f"stages.{self.name}"

    @property
    def script(self) -> str:
        """The stage's own source file (a code dependency of the stage)."""
        return self.module_name.replace(".", "/") + ".py"

    @property
    def cmd(self) -> str:
        return " ".join([*self.launcher, "-m", self.module_name, *self.args])

    @property
    def metrics(self) -> str | None:
        return metrics_file(self.name) if self.has_metrics else None


@dataclass(frozen=True)
class Definition:
    """A named choice: its spec class, the fields it reads, how to build it, the stages it contributes."""

    name: str
    build: Callable[..., Any] | None = None
    spec: type | None = None
    reads: tuple[str, ...] = ()
    stages: Callable[[Any], list[StageDef]] | None = None
    description: str = ""
    #: Set by :meth:`Registry.add`: the module that registered it (built-in or a plugin).
    module: str = field(default="", compare=False)


D = TypeVar("D", bound=Definition)


class UnknownChoiceError(KeyError):
    """A spec named a choice no registry knows."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class Registry(Generic[D]):
    """Definitions of one kind by name. ``builtins`` are the modules that register the built-in definitions."""

    def __init__(self, kind: str, builtins: Sequence[str] = ()) -> None:
        self.kind = kind
        self.builtins = tuple(builtins)
        self._definitions: dict[str, D] = {}
        self._loaded = False

    def add(self, definition: D) -> D:
        """Register ``definition`` (at import time of its module). A name can be defined once."""
        caller = sys._getframe(1).f_globals
        module = caller.get("__name__", "")  # the registering module: built-in or plugin
        if module == "__main__" and caller.get("__spec__") is not None:
            module = caller["__spec__"].name  # `python -m plugin` (its stage) registers as `plugin`, then imports it
        existing = self._definitions.get(definition.name)
        if existing is not None and existing.module != module:  # the same module re-imported may re-register
            raise ValueError(
                f"{self.kind} {definition.name!r} is already defined (by {existing.module or 'another module'})"
            )
        object.__setattr__(definition, "module", module)
        self._definitions[definition.name] = definition
        return definition

    def load_builtins(self) -> None:
        """Import the built-in modules (each registers its definitions), the way plugins are imported."""
        if not self._loaded:
            self._loaded = True
            load_plugins(self.builtins)

    def get(self, name: str) -> D:
        self.load_builtins()
        try:
            return self._definitions[name]
        except KeyError:
            raise UnknownChoiceError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        self.load_builtins()
        return list(self._definitions)

    def builtin_names(self) -> list[str]:
        """Names registered by the built-in modules (not by plugins)."""
        self.load_builtins()
        return [n for n, d in self._definitions.items() if d.module in self.builtins]

    def registered_by(self, modules: Iterable[str]) -> list[D]:
        """Definitions added by the given modules (e.g. ``spec.plugins``), without importing the built-ins."""
        wanted = set(modules)
        return [d for d in self._definitions.values() if d.module in wanted]

    def __contains__(self, name: object) -> bool:
        self.load_builtins()
        return name in self._definitions

    def __iter__(self) -> Iterator[D]:
        self.load_builtins()
        return iter(list(self._definitions.values()))


def load_plugins(modules: Iterable[str]) -> list[ModuleType]:
    """Import each named module (built-in registrations and ``spec.plugins`` alike), with a clear error.

    The working directory (the project root, where DVC runs every stage) is importable, so a plugin module kept in
    the project is found from the ``lure`` command as well as from the stages.
    """
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as exc:
            raise ValueError(f"cannot import plugin module {name!r}: {exc}") from None
    return loaded


# ---------------------------------------------------------------- the registries
# Each lists the modules that register its built-in definitions; they are imported on first use, like plugins.

#: Data sources by ``data.source.name``: ``lure.data.sources.base.SourceDefinition``. A real dataset's
#: ``build(folder, source_spec)`` reads ``<raw_dir>/<name>/`` into a ``RawDataset``; the simulated world, registered
#: by ``lure.data.prepare``, has no files and prepares itself.
SOURCES: Registry[Any] = Registry(
    "data source",
    builtins=(
        "lure.data.sources.movielens",
        "lure.data.sources.coat",
        "lure.data.sources.amazon",
        "lure.data.sources.lastfm",
        "lure.data.prepare",
    ),
)
#: Zoo models by ``eval.models`` name: ``build(eval_section)`` -> an unfitted ``Recommender``.
ZOO: Registry[Definition] = Registry("zoo model", builtins=("lure.models.zoo",))
#: Propensity models by ``propensity.model.name``: ``build(model_spec, seed)`` -> an unfitted model.
PROPENSITY_MODELS: Registry[Definition] = Registry(
    "propensity model",
    builtins=("lure.propensity.logistic", "lure.propensity.popularity", "lure.propensity.true"),
)
#: Training methods of the generative recommenders by ``method.name`` (and LLM ``baselines``); definitions are
#: ``lure.train.methods.MethodDefinition``.
METHODS: Registry[Any] = Registry("training method", builtins=("lure.train.methods",))
#: LLM request backends by ``name`` of their config (``lure.spec.requests``): ``build(config)`` -> a
#: ``lure.requests.backends.Backend``; nothing is loaded or sent until its first request.
BACKENDS: Registry[Definition] = Registry(
    "request backend",
    builtins=(
        "lure.requests.backends.openai_compatible",
        "lure.requests.backends.transformers_local",
        "lure.requests.backends.simulated",
    ),
)
#: ExpoSynth presets by ``exposynth.preset``: ``build(exposynth_spec, pop_bin, n_bins, membership)`` -> a
#: ``lure.exposynth.sampler.Procedure``; ``reads`` = the ``exposynth`` fields the preset reads.
EXPOSYNTH_PRESETS: Registry[Definition] = Registry("ExpoSynth preset", builtins=("lure.exposynth.presets",))
#: Analyses that add stages to the pipeline (between the evaluations and ``tables``). None are built in: a plugin
#: named in ``spec.plugins`` registers one with ``stages(spec) -> list[StageDef]``.
ANALYSES: Registry[Definition] = Registry("analysis")
