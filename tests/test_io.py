"""lure.io: the one YAML reader (duplicate keys are errors everywhere), the atomic writers (files and folders), and
lure.layout: the one module that spells the pipeline's paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lure import layout
from lure.cli import app
from lure.io import (
    DuplicateKeyError,
    YamlError,
    atomic_dir,
    parse_yaml,
    read_yaml,
    set_yaml_values,
    write_text,
)
from lure.layout import Prepared
from lure.spec.load import SpecError, apply_overrides, load_spec, parse_override
from lure.tables.registry import DEFAULT_PATH, PaperTablesError, load_tables

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

# ---------------------------------------------------------------- one YAML reader


def test_parse_yaml_is_safe_load_with_unique_keys() -> None:
    text = "a: 1\nb: [x, 2.5, null]\nc: {d: true}\n"
    assert parse_yaml(text) == {"a": 1, "b": ["x", 2.5, None], "c": {"d": True}}
    assert parse_yaml("") is None and parse_yaml("0.3") == 0.3 and parse_yaml("gpt-4o") == "gpt-4o"
    # merge keys may override what they merge (that is their point), and keys may repeat in different mappings
    assert parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n") == {
        "base": {"x": 1, "y": 2},
        "other": {"x": 3, "y": 2},
    }
    assert parse_yaml("a: {k: 1}\nb: {k: 2}\n") == {"a": {"k": 1}, "b": {"k": 2}}
    with pytest.raises(YamlError, match=r"^<string>: invalid YAML at line 3, column 1: expected ','"):
        parse_yaml("a: [1,\nb: 2\n")


def test_duplicate_key_names_source_key_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\ndata:\n  source: world\n  source: coat\n", encoding="utf-8")
    with pytest.raises(DuplicateKeyError) as err:
        read_yaml(path)
    assert str(err.value) == f"{path}: duplicate key 'source' at line 4 (first set at line 3)"
    assert (err.value.key, err.value.line, err.value.first_line) == ("source", 4, 3)
    with pytest.raises(DuplicateKeyError, match=r"^-S: duplicate key 'a' at line 1$"):
        parse_yaml("{a: 1, a: 2}", "-S")


def test_duplicate_key_in_a_spec_is_a_spec_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "mine.yaml"
    spec.write_text("seed: 1\nmethod: {name: gdrt, tau: 0.3}\nseed: 2\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"mine\.yaml: duplicate key 'seed' at line 3 \(first set at line 1\)"):
        load_spec(spec)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["spec", "use", "mine.yaml"])
    assert result.exit_code == 2
    assert "mine.yaml: duplicate key 'seed' at line 3" in result.output
    assert not (tmp_path / "params.yaml").exists()


def test_duplicate_key_in_an_override_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SpecError, match=r"^-S: method=\{a: 1, a: 2\}: duplicate key 'a' at line 1$"):
        parse_override("method={a: 1, a: 2}")
    with pytest.raises(SpecError, match="duplicate key 'a'"):
        apply_overrides({}, ["seed=3", "method={a: 1, a: 2}"])
    # text that is not YAML still passes as the string itself, as dvc exp run -S takes it
    assert parse_override("judge.model=[unclosed") == ("judge.model", "[unclosed")
    # the CLI refuses before running anything (exit code 2, the override named)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 1\n", encoding="utf-8")
    result = runner.invoke(app, ["exp", "run", "-S", "method={name: gdrt, name: sft}"])
    assert result.exit_code == 2
    assert "duplicate key 'name'" in result.output and "method={name: gdrt, name: sft}" in result.output


def test_duplicate_key_in_the_paper_numbers(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    assert text.startswith("schema_version: ") or "\nschema_version: " in text
    path = tmp_path / "paper_numbers.yaml"
    path.write_text(text + "schema_version: 1\n", encoding="utf-8")
    last = len(text.splitlines()) + 1
    with pytest.raises(PaperTablesError, match=rf"paper_numbers\.yaml: duplicate key 'schema_version' at line {last}"):
        load_tables(path)
    path.write_text(text + "tables: [\n", encoding="utf-8")
    with pytest.raises(PaperTablesError, match=r"paper_numbers\.yaml: invalid YAML at line \d+"):
        load_tables(path)


def test_set_yaml_values_keeps_comments_and_rejects_duplicates() -> None:
    text = "# header\nseed: 1  # the seed\nmethod:\n  name: 'gdrt'\n"
    out = set_yaml_values(text, [("seed", 4), ("method.tau", 0.3), ("eval.ks", [5, 10])], "params.yaml")
    assert out.startswith("# header\nseed: 4  # the seed\n") and "name: 'gdrt'" in out
    assert parse_yaml(out) == {"seed": 4, "method": {"name": "gdrt", "tau": 0.3}, "eval": {"ks": [5, 10]}}
    with pytest.raises(DuplicateKeyError, match=r"^params\.yaml: duplicate key 'seed' at line 5 \(first set at line 2"):
        set_yaml_values(text + "seed: 2\n", [("seed", 4)], "params.yaml")


# ---------------------------------------------------------------- atomic folders


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_atomic_dir_creates_and_replaces_whole_folders(tmp_path: Path) -> None:
    target = tmp_path / "out" / "model"
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp.is_dir() and not any(tmp.iterdir())
        assert not target.exists()  # nothing appears before the block is done
        write_text(tmp / "a.txt", "one")
        write_text(tmp / "sub" / "b.txt", "two")
    assert _tree(target) == {"a.txt": b"one", "sub/b.txt": b"two"}
    with atomic_dir(target) as tmp:
        write_text(tmp / "c.txt", "three")
        assert _tree(target) == {"a.txt": b"one", "sub/b.txt": b"two"}  # the old folder stays until the swap
    assert _tree(target) == {"c.txt": b"three"}  # replaced as a whole: nothing of the old folder is left
    assert sorted(p.name for p in target.parent.iterdir()) == ["model"]  # no temporary or old folder behind


def test_atomic_dir_leaves_the_old_folder_intact_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        write_text(tmp / "weights.bin", "old")
    with pytest.raises(RuntimeError, match="crash"), atomic_dir(target) as tmp:
        write_text(tmp / "weights.bin", "new, half written")
        raise RuntimeError("crash")
    assert _tree(target) == {"weights.bin": b"old"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    # a failed first write leaves nothing at all
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "fresh") as tmp:
        write_text(tmp / "x", "y")
        raise RuntimeError("crash")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_dir_restores_the_old_folder_when_the_swap_fails(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        write_text(tmp / "weights.bin", "old")
    real_replace = os.replace
    moves = []

    def replace(src, dst):
        if Path(src).is_dir():
            moves.append((Path(src).name, Path(dst).name))
            if len(moves) == 2:  # the new folder onto the target, after the old one was moved aside
                raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full"), atomic_dir(target) as tmp:
        write_text(tmp / "weights.bin", "new")
    monkeypatch.undo()
    aside = moves[0][1]
    assert moves[0][0] == "model" and moves[1] == (moves[1][0], "model") and moves[2] == (aside, "model")
    assert _tree(target) == {"weights.bin": b"old"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_fine_tuned_model_folders_are_saved_atomically(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from lure.train.finetune import save_atomically

    out = tmp_path / "sft"
    save_atomically(out, lambda p: write_text(Path(p) / "config.json", "{}"))

    def crash(p: str) -> None:
        write_text(Path(p) / "config.json", "{broken")
        raise RuntimeError("killed while saving")

    with pytest.raises(RuntimeError):
        save_atomically(out, crash)
    assert _tree(out) == {"config.json": b"{}"} and [p.name for p in tmp_path.iterdir()] == ["sft"]


# ---------------------------------------------------------------- the layout


def test_prepared_paths() -> None:
    p = Prepared("data/prepared")
    assert p == Prepared() and os.fspath(p) == "data/prepared" and Prepared(p) == p
    assert p.items == Path("data/prepared/items.parquet")
    assert p.interactions == Path("data/prepared/interactions.parquet")
    assert p.holdout_train == Path("data/prepared/splits/holdout_train.parquet")
    assert p.holdout_test == Path("data/prepared/splits/holdout_test.parquet")
    assert p.window("valid") == Path("data/prepared/splits/window_valid.parquet")
    assert p.split("loo", "test") == Path("data/prepared/splits/loo_test.parquet")
    assert len(p.split_files()) == 8
    assert p.relevance == Path("data/prepared/truth/relevance.npy")
    assert p.exposure_prob == Path("data/prepared/truth/exposure_prob.npy")
    assert p.mar == Path("data/prepared/truth/mar.parquet")
    assert p.truth_items == Path("data/prepared/truth/items.parquet")
    assert p.user_ids == Path("data/prepared/ids/users.parquet")
    with pytest.raises(ValueError, match="no split holdout_valid"):
        p.split("holdout", "valid")


def test_prepared_readers(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    from lure.io import write_npy, write_parquet

    p = Prepared(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"holdout_train\.parquet is missing: run the prepare stage"):
        p.read_split("holdout", "train")
    assert p.read_mar() is None and p.read_relevance() is None and p.read_exposure_prob() is None
    frame = pd.DataFrame({"user_id": [0, 1], "item_id": [2, 3]})
    write_parquet(p.holdout_train, frame)
    write_parquet(p.mar, frame)
    write_npy(p.relevance, np.eye(2, dtype=np.float32))
    assert p.read_split("holdout", "train", columns=["item_id"])["item_id"].tolist() == [2, 3]
    assert p.read_mar().equals(frame)
    assert np.array_equal(p.read_relevance(), np.eye(2)) and isinstance(p.read_relevance(), np.memmap)


def test_stage_paths_are_the_ones_dvc_yaml_spells() -> None:
    from lure.pipeline import stages

    assert (layout.PREPARED, layout.PROPENSITY_MODEL, layout.PAIRS) == (
        "data/prepared",
        "data/propensity/model.joblib",
        "data/pairs/pairs.parquet",
    )
    assert layout.zoo_topk("als") == "data/zoo/als/topk.parquet"
    assert layout.llm_eval_per_sample("sft") == "data/llm/eval/sft/per_sample.parquet"
    assert layout.llm_model_course("gdrt") == "data/llm/gdrt/course.parquet"
    assert layout.metrics_file("prepare") == "metrics/prepare.json" and layout.plots_dir("llm") == "plots/llm"
    assert layout.is_data_output("data/zoo/als") and not layout.is_data_output("reports/tables")
    for name in ("PREPARED", "PROPENSITY_DIR", "PAIRS_DIR", "ZOO_DIR", "EVALUATE_DIR", "TABLES_DIR", "MLFLOW_RUN",
                 "LLM_DIR", "LLM_BASE", "GDRT_GROUPS", "ITEM_RELEVANCE", "LLM_REPORT_DIR", "SPEC_OK", "zoo_dir",
                 "llm_model_dir", "llm_eval_dir", "metrics_file"):  # fmt: skip
        assert getattr(stages, name, getattr(layout, name)) is getattr(layout, name), name  # no second definition
    dvc_yaml = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    paths = (layout.PREPARED, layout.PROPENSITY_DIR, layout.PAIRS_DIR, layout.zoo_dir("random"), layout.EVALUATE_DIR,
             layout.TABLES_DIR, layout.MLFLOW_RUN, layout.metrics_file("evaluate"))  # fmt: skip
    for path in paths:
        assert f"- {path}\n" in dvc_yaml or f"- {path}:" in dvc_yaml, path


def test_layout_imports_nothing_heavy() -> None:
    code = (
        "import sys, lure.layout\n"
        "heavy = [m for m in ('pandas', 'numpy', 'torch', 'transformers', 'lure.spec', 'lure.pipeline') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_written_files_get_the_mode_open_would_give(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fresh = write_text(tmp_path / "a.txt", "x")
        assert fresh.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600: others may read reports and schemas
        os.umask(0o077)
        assert write_text(tmp_path / "b.txt", "x").stat().st_mode & 0o777 == 0o600
        (tmp_path / "c.txt").write_text("old")
        (tmp_path / "c.txt").chmod(0o640)
        assert write_text(tmp_path / "c.txt", "new").stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode
    finally:
        os.umask(old)


def test_progress_prints_throttled_lines_when_piped(capsys, monkeypatch) -> None:
    """Piped (stderr not a terminal): every item is yielded, one line per interval, none for quick work."""
    from lure import display

    ticks = iter(float(t) for t in (0, 10, 31, 40, 65, 70))  # start, then one reading per item
    monkeypatch.setattr(display.time, "monotonic", lambda: next(ticks))
    assert list(display.progress([1, 2, 3, 4, 5], "ranking", interval=30)) == [1, 2, 3, 4, 5]
    err = capsys.readouterr().err.splitlines()
    # items 2 (31 s) and 4 (65 s) cross the 30-s marks: "2/5 (40 %), 31 s" and "4/5 (80 %), 65 s"
    assert err == ["ranking: 2/5 (40 %), 31 s", "ranking: 4/5 (80 %), 65 s"]
    quick = iter((0.0, 5.0))
    monkeypatch.setattr(display.time, "monotonic", lambda: next(quick))
    assert list(display.progress(iter([7]), "quick")) == [7] and capsys.readouterr().err == ""
