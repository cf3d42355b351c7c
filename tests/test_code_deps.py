"""Code deps derived from imports (lure.pipeline.code_deps): complete for every stage, and the analysis itself."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lure.pipeline.code_deps import FRAMEWORK, code_deps, module_closure, module_file
from lure.pipeline.stages import pipeline_stages
from lure.spec.model import Spec

ROOT = Path(__file__).resolve().parents[1]

# Imports ``argv[1]`` and records every import edge (importer -> module, also for modules already loaded and for
# ``importlib.import_module``), then prints the modules reachable from it without passing through the framework:
# what the stage's own imports execute, as the analysis defines it (the framework is not followed).
_PROBE = textwrap.dedent(
    """
    import builtins, importlib, importlib.util, json, os, sys

    modules, framework = json.loads(sys.argv[1]), tuple(json.loads(sys.argv[2]))
    root = os.path.realpath(os.getcwd()) + os.sep
    edges = {}

    def in_project(file):
        return bool(file) and os.path.realpath(file).startswith(root)

    def is_framework(name):
        return any(name == f or name.startswith(f + ".") for f in framework)

    def record(importer, target):
        parts = target.split(".")
        edges.setdefault(importer, set()).update(".".join(parts[:i]) for i in range(1, len(parts) + 1))

    real_import, real_import_module = builtins.__import__, importlib.import_module

    def traced_import(name, globals=None, locals=None, fromlist=(), level=0):
        result = real_import(name, globals, locals, fromlist, level)
        importer = (globals or {}).get("__name__")
        if importer:
            target = importlib.util.resolve_name("." * level + name, globals.get("__package__")) if level else name
            record(importer, target)
            for item in fromlist or ():
                if f"{target}.{item}" in sys.modules:
                    record(importer, f"{target}.{item}")
        return result

    def traced_import_module(name, package=None):
        # a registry imports its built-ins by name for whoever uses it: the edge is the user's, i.e. the first
        # module up the stack outside the one that called import_module (as the analysis models it)
        result = real_import_module(name, package)
        frame = sys._getframe(1)
        caller = user = frame.f_globals.get("__name__")
        while frame.f_back is not None:
            frame = frame.f_back
            if frame.f_globals.get("__name__") != caller and in_project(frame.f_globals.get("__file__")):
                user = frame.f_globals.get("__name__")
                break
        record(user, result.__name__)
        return result

    builtins.__import__, importlib.import_module = traced_import, traced_import_module
    for module in modules:  # a module's body runs once, but its edges count for every module that imports it
        importlib.import_module(module)
    reached = {}
    for module in modules:
        parts = module.split(".")
        seen, todo = set(), [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        while todo:
            name = todo.pop()
            if name in seen or is_framework(name) or not in_project(getattr(sys.modules.get(name), "__file__", "")):
                continue  # namespace packages (no __file__) hold no code
            seen.add(name)
            todo.extend(edges.get(name, ()))
        reached[module] = sorted(seen)
    print(json.dumps(reached))
    """
)


def loaded_files(modules: list[str], root: Path, framework: tuple[str, ...] = FRAMEWORK) -> dict[str, set[Path]]:
    """For each module: the source files of the project modules that importing it (in ``root``) executes, apart
    from what only the framework imports. One interpreter imports them all (see ``_PROBE``)."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(modules), json.dumps(framework)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    reached = json.loads(out.stdout.splitlines()[-1])
    root = root.resolve()
    return {m: {f for f in (module_file(n, root) for n in names) if f is not None} for m, names in reached.items()}


def missing(loaded: set[Path], module: str, root: Path, framework: tuple[str, ...] = FRAMEWORK) -> list[str]:
    """Files of ``loaded`` that the derived code deps of ``module`` lack (relative to ``root``)."""
    derived = module_closure(module, root, framework)
    return sorted(p.relative_to(root.resolve()).as_posix() for p in loaded - derived)


STAGE_MODULES = sorted({s.module_name for s in pipeline_stages(Spec())})


@pytest.fixture(scope="module")
def stage_imports() -> dict[str, set[Path]]:
    return loaded_files(STAGE_MODULES, ROOT)


@pytest.mark.slow  # one interpreter imports every stage module (torch, transformers): ~15 s
@pytest.mark.parametrize("module", STAGE_MODULES)
def test_derived_deps_cover_every_module_the_stage_loads(module, stage_imports):
    """What ``import stages.x`` executes of the project (apart from the framework) is in the stage's derived code
    deps; the analysis also sees function-level imports, so it may list more, never less."""
    assert stage_imports[module], "the probe saw nothing"
    assert missing(stage_imports[module], module, ROOT) == []


def test_the_completeness_check_catches_a_module_the_analysis_misses(tmp_path):
    """The check above is not vacuous: an import the analysis cannot see (a computed name) is reported."""
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "hidden_stage.py").write_text("import importlib\nimportlib.import_module('hid' + 'den')\n")
    (tmp_path / "hidden.py").write_text("X = 1\n")
    loaded = loaded_files(["stages.hidden_stage"], tmp_path)["stages.hidden_stage"]
    assert missing(loaded, "stages.hidden_stage", tmp_path) == ["hidden.py"]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


SYNTHETIC = {
    "stages/__init__.py": "",
    "stages/other.py": "",
    "stages/mine.py": """
        import json
        from typing import TYPE_CHECKING

        import pytest

        from mypkg.reg import REG
        from mypkg.frame import runner

        if TYPE_CHECKING:
            from mypkg import typing_only

        def main():
            from mypkg import helper  # a function-level import of a submodule
            import mypkg.deep.leaf as leaf
            return helper, leaf

        if __name__ == "__main__":
            main()
    """,
    "mypkg/__init__.py": "",
    "mypkg/helper.py": "from .sub import thing\nfrom . import sibling\n",
    "mypkg/sibling.py": "from ..outside import nothing  # beyond the top package: never valid\n",
    "mypkg/sub/__init__.py": "",
    "mypkg/sub/thing.py": "from mypkg.sub.inner import more\n",
    "mypkg/sub/inner/__init__.py": "",
    "mypkg/sub/inner/more.py": "",
    "mypkg/deep/leaf.py": "",  # a namespace package (no __init__.py) holding a module
    "mypkg/deep/unused.py": "",
    "mypkg/typing_only.py": "",
    "mypkg/unused.py": "",
    "mypkg/reg.py": """
        class Registry:
            def __init__(self, kind, builtins=()):
                self.builtins = builtins

        REG = Registry("plugin", builtins=("mypkg.plugins.a", __name__))
        OTHER = Registry("other", builtins=("mypkg.plugins.b",))
    """,
    "mypkg/plugins/__init__.py": "",
    "mypkg/plugins/a.py": "",
    "mypkg/plugins/b.py": "",
    "mypkg/frame/__init__.py": "import mypkg.unused\n",
    "mypkg/frame/runner.py": "import mypkg.unused\n",
}


def test_function_level_relative_and_submodule_imports_are_found(tmp_path):
    _write(tmp_path, SYNTHETIC)
    deps = code_deps("stages.mine", tmp_path, framework=("mypkg.frame",))
    assert deps == [
        "mypkg/__init__.py",
        "mypkg/deep/leaf.py",  # `import mypkg.deep.leaf as leaf` inside a function
        "mypkg/helper.py",  # `from mypkg import helper` inside a function
        "mypkg/plugins/__init__.py",
        "mypkg/plugins/a.py",  # a built-in of REG, imported with it; not OTHER's mypkg/plugins/b.py
        "mypkg/reg.py",
        "mypkg/sibling.py",  # `from . import sibling`
        "mypkg/sub",  # every .py file below it is used: listed as the directory
        "stages/__init__.py",
        "stages/mine.py",
    ]
    # json/pytest are not project files; mypkg.frame is framework (its import of mypkg.unused is not followed);
    # the TYPE_CHECKING import never runs
    loaded = loaded_files(["stages.mine"], tmp_path, ("mypkg.frame",))["stages.mine"]
    assert {p.name for p in loaded} == {"__init__.py", "mine.py", "reg.py"}  # the rest runs in main() only
    assert missing(loaded, "stages.mine", tmp_path, ("mypkg.frame",)) == []


def test_a_plugin_module_at_the_root_and_a_renamed_import(tmp_path):
    _write(tmp_path, {"my_plugin.py": "import helpers as h\n", "helpers.py": "from lure.io import write_json\n"})
    assert code_deps("my_plugin", tmp_path) == ["helpers.py", "my_plugin.py"]  # lure is not under tmp_path


def test_framework_is_neither_followed_nor_listed():
    deps = code_deps("stages.validate", ROOT)
    assert "stages/validate.py" in deps
    assert not any(d.startswith(("lure/spec", "lure/pipeline")) or d == "lure/stage.py" for d in deps)
    assert any(d.startswith("lure/data") for d in deps)


def test_generated_dvc_yaml_lists_the_derived_deps():
    """dvc.yaml's code deps of a stage: its script, then its derived deps, then its declared non-Python files."""
    import yaml

    from lure.pipeline.generate import render_dvc_yaml

    spec = Spec()
    doc = yaml.safe_load(render_dvc_yaml(spec, ROOT))["stages"]
    for stage in pipeline_stages(spec):
        deps = doc[stage.name]["deps"]
        derived = code_deps(stage.module_name, ROOT)
        assert set(derived) <= set(deps)
        assert set(stage.code) <= set(deps)
        assert deps.index(stage.script) < min(deps.index(d) for d in derived if d != stage.script)
        assert all((ROOT / d).exists() for d in derived)
    assert "lure/models" in doc["evaluate"]["deps"] or "lure/models/zoo.py" in doc["evaluate"]["deps"]
