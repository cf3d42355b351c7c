"""Reading YAML and writing files: the one place that parses YAML and the one place that renames into place.

Writers: each writes to a temporary file (or folder) in the destination's directory (same filesystem, so the final
``os.replace`` is atomic) and renames it into place only after the content is complete and flushed, so a crash never
leaves half a file (or half a folder) behind.

Reader: :func:`read_yaml` / :func:`parse_yaml` are PyYAML's safe loader, except that a duplicate mapping key is an
error (PyYAML silently keeps the last value) that names the file, the key and its line.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

# ---------------------------------------------------------------- reading YAML


class YamlError(ValueError):
    """YAML that cannot be read. ``source`` names the file (or where the text came from), ``problem`` says what is
    wrong and where; ``line`` is 1-based (None when unknown)."""

    def __init__(self, source: str, problem: str, line: int | None = None):
        self.source = source
        self.problem = problem
        self.line = line
        super().__init__(f"{source}: {problem}")


class DuplicateKeyError(YamlError):
    """A mapping that sets the same key twice."""

    def __init__(self, source: str, key: Any, line: int, first_line: int):
        self.key = key
        self.first_line = first_line
        first = f" (first set at line {first_line})" if first_line != line else ""
        super().__init__(source, f"duplicate key {key!r} at line {line}{first}", line)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (what ``yaml.safe_load`` uses) that rejects a key set twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor`` may be overridden by design
                    continue
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(key, line, seen[key])
                    seen[key] = line
                except TypeError:  # an unhashable key: the base constructor reports it
                    continue
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text (``None`` for an empty document); :class:`YamlError` names ``source`` and the line."""
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    except _DuplicateKey as exc:
        raise DuplicateKeyError(source, exc.key, exc.line, exc.first_line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = f"invalid YAML{where}: {getattr(exc, 'problem', exc)}"
        raise YamlError(source, problem, mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a UTF-8 YAML file; errors (:class:`YamlError`) name the file. A missing file: FileNotFoundError."""
    return parse_yaml(Path(path).read_text(encoding="utf-8"), str(path))


def set_yaml_values(text: str, values: Iterable[tuple[str, Any]], source: str = "<string>") -> str:
    """``text`` with each dotted ``key`` set to its value, comments, order and quoting kept (ruamel round trip).

    The text is first read with :func:`parse_yaml`, so it is held to the same rules (duplicate keys) as everywhere.
    Intermediate mappings are created as needed.
    """
    import io

    from ruamel.yaml import YAML

    parse_yaml(text, source)
    editor = YAML()
    editor.preserve_quotes = True
    doc = editor.load(text) or {}
    for key, value in values:
        node = doc
        parts = key.split(".")
        for part in parts[:-1]:
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    buf = io.StringIO()
    editor.dump(doc, buf)
    return buf.getvalue()


# ---------------------------------------------------------------- atomic writers


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the mode open() would (an existing file keeps its own)
        tmp.chmod(target.stat().st_mode & 0o7777 if target.exists() else _new_file_mode())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _new_file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, "w")`` gives a new file."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new empty folder next to ``path``; when the block succeeds it takes the place of ``path`` as a whole.

    Nothing is ever half-written: if the block raises, the temporary folder is deleted and ``path`` (when it
    existed) is left exactly as it was. An existing ``path`` is moved aside only once the new folder is complete,
    then deleted.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _unused_sibling(target, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        _swap_in(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _unused_sibling(target: Path, kind: str) -> Path:
    """A hidden name next to ``target`` that nothing uses yet (``.<name>.<random>.<kind>``)."""
    while True:
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(4)}.{kind}")
        if not candidate.exists() and not candidate.is_symlink():
            return candidate


def _swap_in(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``; an existing ``target`` is renamed aside first and deleted after the swap."""
    if not target.exists() and not target.is_symlink():
        os.replace(new, target)
        return
    old = _unused_sibling(target, "old")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    else:
        old.unlink()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Sorted keys and a trailing newline, so identical content gives identical bytes."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_parquet(path: str | os.PathLike[str], frame: Any) -> Path:
    """Write a pandas DataFrame as parquet without the index; deterministic for identical frames."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
    return Path(path)


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Atomic wrapper for third-party writers that take a path (matplotlib's savefig, numpy.save, ...)."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays appear in metrics; convert rather than fail.
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def fingerprint(root: str | os.PathLike[str]) -> str:
    """Content hash of every file under ``root`` (relative paths and bytes), to tag runs with their data."""
    import hashlib

    base = Path(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def write_npy(path: str | os.PathLike[str], array: Any) -> Path:
    """``np.save`` through a file handle: on a path it would append ".npy" to the temporary name."""
    import numpy as np

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    return write_with(path, save)
