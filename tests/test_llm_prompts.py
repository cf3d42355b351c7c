"""Prompt segments, masking, segment-wise tokenisation and the BPE tokenizer (lure.llm.prompts / tokenizer)."""

from __future__ import annotations

import itertools

import pytest

from lure.layout import recommender_template_names
from lure.llm.prompts import (
    PromptTemplate,
    encode_completion,
    encode_prompt,
    load_template,
    render_completion,
    render_masked,
    render_prompt,
)
from lure.llm.tokenizer import train_tokenizer

TITLES = ["Toy Story (1995)", "Heat (1995)", "Amélie", "The Matrix", "Alien", "Aliens", "Up"]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TITLES, histories=[TITLES[:3], TITLES[2:6]], vocab_size=400)


def test_segments_partition_the_text_in_order():
    p = render_prompt(TITLES[:3])
    spans = [p.segments[s] for s in ("task", "history", "response")]
    assert spans[0][0] == 0 and spans[-1][1] == len(p.text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    hist = p.segment_text("history")
    assert [hist.index(t) for t in TITLES[:3]] == sorted(hist.index(t) for t in TITLES[:3])  # oldest first
    assert not any(t in p.segment_text("task") + p.segment_text("response") for t in TITLES)
    assert p.segment_text("response").endswith('"')  # the response prefix opens the quoted title


def test_masking_replaces_only_that_segment():
    full, masked = render_prompt(TITLES[:3]), render_masked(TITLES[:3], "history")
    assert masked.segment_text("history") == "N/A" == load_template().mask_text
    assert masked.segment_text("task") == full.segment_text("task")
    assert masked.segment_text("response") == full.segment_text("response")
    assert masked.masked == {"history"} and not any(t in masked.text for t in TITLES)
    with pytest.raises(ValueError):
        render_prompt(TITLES, mask=("nope",))


@pytest.mark.parametrize("name", recommender_template_names())
def test_every_shipped_template_keeps_the_segment_contract(name):
    """Each template in prompts/ (the paper's and the compact CPU one) partitions its text into the three segments,
    masks only the asked segment, and closes the title with a terminator that is not part of any title."""
    p = render_prompt(TITLES[:3], name)
    spans = [p.segments[s] for s in ("task", "history", "response")]
    assert spans[0][0] == 0 and spans[-1][1] == len(p.text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(t in p.segment_text("history") for t in TITLES[:3])
    masked = render_masked(TITLES[:3], "history", name)
    assert masked.segment_text("history") == load_template(name).mask_text
    assert masked.segment_text("task") == p.segment_text("task")
    completion = render_completion("Alien", name)
    assert completion.startswith("Alien") and len(completion) > len("Alien")


def test_template_contract_is_checked(tmp_path):
    (tmp_path / "bad.j2").write_text(
        "stray text{% block task %}a{% endblock %}{% block history %}b{% endblock %}"
        "{% block response %}c{% endblock %}{% block completion %}{{ target }}"
        "{% endblock %}{% block masked %}N/A{% endblock %}"
    )
    with pytest.raises(ValueError, match="outside"):
        PromptTemplate("bad", tmp_path)
    (tmp_path / "short.j2").write_text("{% block task %}a{% endblock %}")
    with pytest.raises(ValueError, match="lacks"):
        PromptTemplate("short", tmp_path)


def test_token_spans_decode_to_segments(tok):
    p = render_prompt(TITLES[1:5])
    enc = encode_prompt(tok, p)
    assert enc.input_ids[0] == tok.bos_token_id
    for name in ("task", "history", "response"):
        a, b = enc.segments[name]
        assert tok.decode(enc.input_ids[a:b]) == p.segment_text(name)
    assert enc.segments["response"][1] == len(enc.input_ids)


def test_completion_has_template_terminator_and_eos(tok):
    comp = render_completion("Amélie")
    assert comp.startswith("Amélie") and comp != "Amélie"
    ids = encode_completion(tok, "Amélie")
    assert ids[-1] == tok.eos_token_id and tok.eos_token_id not in ids[:-1]
    assert tok.decode(ids[:-1]) == comp  # byte-level BPE round-trips non-ASCII


def test_tokenizer_is_deterministic_and_sized(tok):
    again = train_tokenizer(TITLES, histories=[TITLES[:3], TITLES[2:6]], vocab_size=400)
    assert again.get_vocab() == tok.get_vocab()
    assert len(tok) <= 400
    assert {tok.pad_token, tok.bos_token, tok.eos_token} == {"<pad>", "<s>", "</s>"}
    assert len(tok.encode("The user")) < len("The user")  # merges were learned


def test_sft_examples_mask_the_prompt(tok):
    import pandas as pd

    from lure.llm.data import IGNORE_INDEX, sft_dataset, sft_examples, sft_text_examples, title_lookup

    items = pd.DataFrame({"item_id": range(len(TITLES)), "title": TITLES})
    windows = pd.DataFrame(
        {"user_id": [0, 1], "history": [[0, 1, 2], [3, 4, 5, 6]], "item_id": [3, 2], "timestamp": [10, 20]}
    )
    titles = title_lookup(items)
    rows = sft_examples(windows, titles, tok)
    for row, target in zip(rows, windows["item_id"], strict=True):
        comp = encode_completion(tok, TITLES[target])
        n = len(row["input_ids"]) - len(comp)
        assert row["input_ids"][n:] == comp and row["labels"][n:] == comp
        assert row["labels"][:n] == [IGNORE_INDEX] * n and row["completion_mask"] == [0] * n + [1] * len(comp)
        assert (
            row["input_ids"][:n]
            == encode_prompt(tok, render_prompt([TITLES[i] for i in windows["history"][row["user_id"]]])).input_ids
        )
    short = sft_examples(windows, titles, tok, max_length=len(rows[1]["input_ids"]) - 1)
    assert len(short[1]["input_ids"]) < len(rows[1]["input_ids"]) and short[1]["labels"][-1] == tok.eos_token_id
    masked = sft_examples(windows, titles, tok, mask=("history",))
    assert masked[0]["input_ids"][:-1] != rows[0]["input_ids"][:-1]
    text = sft_text_examples(windows, titles)
    assert text[0]["prompt"].endswith('"') and text[0]["completion"] == render_completion(TITLES[3])
    ds = sft_dataset(windows, titles, tok)
    assert {"input_ids", "completion_mask", "labels"} <= set(ds.column_names) and len(ds) == 2


def test_prompts_are_found_in_the_project_root_first(tmp_path, monkeypatch):
    """``./prompts`` (where DVC runs the stages) wins; elsewhere the repository's prompts/ is found without any
    install; the folder is resolved before the template cache is consulted."""
    import shutil
    from pathlib import Path

    import lure
    from lure.layout import prompts_dir

    repo_prompts = Path(lure.__file__).resolve().parents[1] / "prompts"
    monkeypatch.chdir(tmp_path)
    assert prompts_dir() == repo_prompts  # no prompts/ here
    shutil.copytree(repo_prompts, tmp_path / "project" / "prompts")
    own = tmp_path / "project" / "prompts" / "next_item.j2"
    own.write_text(own.read_text().replace("N/A", "(hidden)"))
    monkeypatch.chdir(tmp_path / "project")
    assert prompts_dir() == tmp_path / "project" / "prompts"
    assert load_template("next_item").mask_text == "(hidden)"
    monkeypatch.chdir(tmp_path)
    assert load_template("next_item").mask_text == "N/A"


@pytest.mark.slow  # builds a wheel (~6 s)
def test_the_wheel_ships_the_templates(tmp_path):
    """An installed wheel, run outside any checkout, finds the templates it ships (lure/_prompts)."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    from lure.layout import TEMPLATE_SUFFIX, template_names

    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    for name in ("lure", "prompts"):
        shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(root / name, src / name)
    # an isolated build, as for a release (pip fetches the build backend pyproject.toml names from the index)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(Path(n).stem for n in names if n.startswith("lure/_prompts/") and n.endswith(TEMPLATE_SUFFIX))
    assert shipped == template_names() and "lure/spec/__init__.py" in names
    packages = {str(p.parent.relative_to(root)) for p in (root / "lure").rglob("__init__.py")}
    assert packages <= {str(Path(n).parent) for n in names}
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    probe = "import sys; sys.path.insert(0, sys.argv[1]); from lure.layout import prompts_dir; print(prompts_dir())"
    found = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(tmp_path / "site")],
        cwd=outside,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(found) == tmp_path / "site" / "lure" / "_prompts"
