"""The Python code a stage runs, derived from its imports, so that a stage's ``code`` deps in ``dvc.yaml`` cannot
drift from what it actually executes.

:func:`code_deps` reads the stage module's source (static analysis: nothing is imported) and follows, transitively,
every import of a module of the project itself:

* module-level imports and imports inside functions, ``try`` blocks and ``if __name__ == "__main__":`` alike
  (a stage's heavy imports usually sit inside a function); imports under ``if TYPE_CHECKING:`` never run and are
  skipped;
* ``import a.b.c`` (which runs ``a/__init__.py`` and ``a/b/__init__.py`` too), ``from a.b import c`` where ``c`` is a
  submodule, and relative imports (``from . import x``, ``from ..y import z``);
* the built-in modules of a registry: a registry imports them by name on first use, so a module-level name bound to
  a call with ``builtins=("pkg.mod", ...)`` (``lure.registry.Registry``) carries those modules, and importing that
  name (``from lure.registry import ZOO``), or using it in the module that defines it, imports them.

Not seen: other imports by a computed name (``importlib.import_module(variable)``), such as ``spec.plugins``, which
the framework imports.

A *project module* is a ``.py`` file under the project root (the directory DVC runs the stages in), found the way
``python -m`` finds it with the root first on ``sys.path``: a plugin's local modules count, anything installed in
site-packages does not.

Not followed, and not listed: the *framework* (:data:`FRAMEWORK`), i.e. the spec package ``lure.spec``, the pipeline
generator ``lure.pipeline`` and the stage runner ``lure.stage``. Every stage runs through them, but what they change
about a stage's results reaches it through the spec values DVC already tracks as the stage's ``params``; listing
them would re-run the whole pipeline after any edit of a spec description or of the generator. (The ``validate``
stage, whose work *is* the spec, declares ``lure/spec`` and ``lure/pipeline`` explicitly in its ``code``.)

The result is a sorted list of paths relative to the root; a package directory all of whose ``.py`` files
(recursively) are in the set is listed as the directory, which keeps ``dvc.yaml`` readable.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path

#: Packages and modules that are not followed (see the module docstring). A name covers its submodules.
FRAMEWORK: tuple[str, ...] = ("lure.spec", "lure.pipeline", "lure.stage")

_SKIP_DIRS = frozenset({"__pycache__"})


def is_framework(module: str, framework: Iterable[str] = FRAMEWORK) -> bool:
    return any(module == f or module.startswith(f + ".") for f in framework)


def _is_module_name(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def module_file(module: str, root: Path) -> Path | None:
    """The source file of ``module`` under ``root`` (a package's ``__init__.py``), or None (not a project module,
    or a namespace package, which has no code of its own)."""
    if not _is_module_name(module):
        return None
    base = root.joinpath(*module.split("."))
    init = base / "__init__.py"
    if init.is_file():  # a regular package takes precedence over a module of the same name, as in Python
        return init
    source = base.with_name(base.name + ".py")
    return source if source.is_file() else None


def _is_package_dir(module: str, root: Path) -> bool:
    return _is_module_name(module) and root.joinpath(*module.split(".")).is_dir()


def _with_parents(module: str) -> Iterator[str]:
    """``a``, ``a.b``, ``a.b.c`` for ``a.b.c``: importing a module runs its parent packages first."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks (their ``else`` does run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


@lru_cache(maxsize=1024)
def _parse(path: str, mtime_ns: int, size: int) -> ast.Module:
    return ast.parse(Path(path).read_bytes(), filename=path)


def _builtin_names(value: ast.expr | None, module: str) -> list[str] | None:
    """The module names of a ``builtins=`` tuple or list (``__name__`` is the defining module), else None."""
    if not isinstance(value, ast.Tuple | ast.List):
        return None
    names = []
    for elt in value.elts:
        if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
            names.append(elt.value)
        elif isinstance(elt, ast.Name) and elt.id == "__name__":
            names.append(module)
        else:
            return None
    return names


def registries(module: str, path: Path) -> dict[str, list[str]]:
    """Module-level names of ``module`` bound to a call with ``builtins=(module names)``, and those modules."""
    return _registries(module, *_stat_key(path))


@lru_cache(maxsize=1024)
def _registries(module: str, path: str, mtime_ns: int, size: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for stmt in _parse(path, mtime_ns, size).body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        if not isinstance(value, ast.Call):
            continue
        for kw in value.keywords:
            names = _builtin_names(kw.value, module) if kw.arg == "builtins" else None
            if names is not None:
                found.update({t.id: names for t in targets if isinstance(t, ast.Name)})
    return found


@lru_cache(maxsize=1024)
def _import_statements(
    module: str, path: str, mtime_ns: int, size: int
) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...]]:
    """What the source says, before any lookup under the root: the names of ``import`` statements, each
    ``from`` import as (absolute base, imported names), and the modules its own registries bring in by use."""
    is_package = Path(path).name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    own = _registries(module, path, mtime_ns, size)
    plain: list[str] = []
    froms: list[tuple[str, tuple[str, ...]]] = []
    used: list[str] = []
    for node in _nodes(_parse(path, mtime_ns, size)):
        if isinstance(node, ast.Import):
            plain.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package):
                    continue  # beyond the top-level package: Python raises ImportError
                parts = package[: len(package) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base:
                froms.append((base, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in own:
            used.extend(own[node.id])  # a registry used in the module that defines it
    return tuple(plain), tuple(froms), tuple(dict.fromkeys(used))


def imported_names(module: str, path: Path, root: Path, find: Callable[[str], Path | None] | None = None) -> set[str]:
    """Dotted names of the project modules ``module`` (source ``path``) may import; parents included.
    ``find``: :func:`module_file` under ``root`` (memoised by the caller)."""
    find = find or (lambda name: module_file(name, root))
    plain, froms, used = _import_statements(module, *_stat_key(path))
    found: set[str] = set()

    def add(name: str) -> None:
        if _is_module_name(name):
            found.update(_with_parents(name))

    for name in (*plain, *used):
        add(name)
    for base, names in froms:
        add(base)
        source = find(base)
        held = registries(base, source) if source is not None else {}
        for alias in names:
            sub = f"{base}.{alias}"
            if alias != "*" and (find(sub) or _is_package_dir(sub, root)):
                add(sub)  # ``from pkg import submodule``
            for name in held.get(alias, ()):
                add(name)  # ``from lure.registry import ZOO``: the registry's built-in modules
    return found


def module_closure(module: str, root: str | Path = ".", framework: Iterable[str] = FRAMEWORK) -> set[Path]:
    """Source files (absolute) of ``module``, its parent packages and every project module they import,
    transitively; the framework is neither followed nor included."""
    root = Path(root).resolve()
    framework = tuple(framework)
    find = lru_cache(maxsize=None)(lambda name: module_file(name, root))
    files: set[Path] = set()
    seen: set[str] = set()
    todo = list(_with_parents(module))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if is_framework(name, framework):
            continue
        path = find(name)
        if path is None:
            continue
        files.add(path)
        todo.extend(imported_names(name, path, root, find) - seen)
    return files


def _py_files(directory: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for f in filenames:
            if f.endswith(".py"):
                yield Path(dirpath) / f


def collapse(files: Iterable[Path], root: Path) -> list[str]:
    """Paths relative to ``root``; the files of a directory below ``root`` whose ``.py`` files (recursively) are
    all in ``files`` become that directory (the topmost such one)."""
    root = root.resolve()
    chosen = set(files)
    complete: dict[Path, bool] = {}

    def is_complete(directory: Path) -> bool:
        if directory not in complete:
            complete[directory] = all(p in chosen for p in _py_files(directory))
        return complete[directory]

    out: set[str] = set()
    for f in chosen:
        top = f
        for directory in f.parents:
            if directory == root or root not in directory.parents:
                break
            if is_complete(directory):
                top = directory
        out.add(top.relative_to(root).as_posix())
    return sorted(out)


def code_deps(module: str, root: str | Path = ".", framework: Iterable[str] = FRAMEWORK) -> list[str]:
    """The project's Python code ``module`` (e.g. ``stages.zoo``) runs, as sorted paths relative to ``root``
    (whole directories where every ``.py`` file of one is in the set). See the module docstring."""
    root = Path(root).resolve()
    return collapse(module_closure(module, root, framework), root)
