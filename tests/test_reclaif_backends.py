"""RecLAIF's teacher, judge and explainability rater as models behind the request layer: an OpenAI-compatible
server on loopback stands in for the model (its answers written by the test), so what is checked is what lure does
with a model's text -- the prompts it sends, the rewrite of the teacher's answers, the verdicts it reads, what it
caches and what it asks again."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from lure.reclaif.answer import read_answer, rewrite_answer, write_answer
from lure.reclaif.loop import explainability, judge_samples, prompts_of, teacher_texts
from lure.requests import ResponseCache
from lure.requests.loopback import LoopbackServer
from lure.spec.model import Spec
from lure.spec.reclaif import ReclaifSpec

CANDIDATES = [["Heat", "Heat 2", "Alien", "Brazil"], ["Up", "Jaws", "Big", "Fargo"]]
INSTANCES = pd.DataFrame(
    {
        "instance_id": [0, 1],
        "user_id": [3, 4],
        "context": [["Ran", "Kes"], ["Jaws 2", "Ran"]],
        "history": [[10, 11], [12, 10]],
        "candidates": [[0, 1, 2, 3], [4, 5, 6, 7]],
        "candidate_texts": CANDIDATES,
        "relevant": [[2], [7]],
        "target": [2, 7],
    }
)


def user_text(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"]


def candidate_names(text: str) -> list[str]:
    """The candidates of a music prompt (one comma-separated line) or a products prompt (one '- ' line each)."""
    if "Available Artists/Bands:\n" in text:
        return text.split("Available Artists/Bands:\n")[1].split("\n")[0].split(", ")
    block = text.split("Available Products:\n")[1].split("\nTask:")[0]
    return [line[2:] for line in block.splitlines() if line.startswith("- ")]


def paper_teacher(body: dict[str, Any]) -> str:
    """A teacher that answers the paper's music or products prompt in its markdown: the last k candidates, last
    first."""
    text = user_text(body)
    names = candidate_names(text)
    k = {"two": 2, "three": 3}[re.search(r"Select the top (\w+)", text).group(1)]
    return "**Key Preferences:**\n- Preference 1: dark films\n\n**Recommended:**\n" + "\n".join(
        f"{n}. **{name}** - because {name.lower()}" for n, name in enumerate(reversed(names[-k:]), start=1)
    )


def spec_with(**fields: Any) -> ReclaifSpec:
    return ReclaifSpec(**{"k": 2, "concurrency": 2, **fields})


def openai(server: LoopbackServer, model: str) -> dict[str, Any]:
    return {"name": "openai", "base_url": server.url, "model": model, "api_key_env": None, "max_retries": 0}


def test_rewrite_keeps_the_picks_reasons_and_exact_names() -> None:
    m = read_answer("Key preferences: x; y\n1. heat 2 - tense\n2. ALIEN: scary", CANDIDATES[0], 2)
    assert m.valid and m.ranked() == [1, 2]
    assert (
        rewrite_answer(m, CANDIDATES[0], "compact") == 'Key preferences: x; y\n1. "Heat 2" - tense\n2. "Alien" - scary'
    )
    assert rewrite_answer(m, CANDIDATES[0], "paper") == write_answer(
        ("x", "y"), ["Heat 2", "Alien"], ["tense", "scary"], "paper"
    )
    with pytest.raises(ValueError, match="only a valid answer"):
        rewrite_answer(read_answer("1. Heat", CANDIDATES[0], 2), CANDIDATES[0], "compact")


def test_model_teacher_answers_its_own_prompt_and_its_answers_become_compact_targets(tmp_path: Path) -> None:
    with LoopbackServer(answer=paper_teacher) as server, ResponseCache(tmp_path / "c.sqlite") as cache:
        spec = spec_with(teacher=openai(server, "teacher-1"), teacher_template="reclaif_music")
        prompts = prompts_of(INSTANCES, spec)
        targets, raw, ledger = teacher_texts(INSTANCES, prompts, None, spec, 0, cache)
        sent = server.stats.received
        again, _, second = teacher_texts(INSTANCES, prompts, None, spec, 0, cache)
        assert server.stats.received == sent == 2  # the second run is served from the cache
    assert ledger.as_dict()["requests"] == 2 and second.as_dict()["cache_hits"] == 2
    assert raw[0].startswith("**Key Preferences:**") and "Brazil" in raw[0]
    assert targets[0] == 'Key preferences: dark films\n1. "Brazil" - because brazil\n2. "Alien" - because alien'
    assert targets == again
    assert prompts[0].startswith("Recommend 2.")  # the student's prompt x stays the compact one


def test_model_teacher_without_its_own_template_answers_x_and_is_kept_as_written(tmp_path: Path) -> None:
    def compact(body: dict[str, Any]) -> str:
        names = re.findall(r'"([^"]+)"', user_text(body).split("Candidates:")[1])
        return f'Key preferences: a\n1. "{names[0]}" - r\n2. "{names[0]}" - r'  # a duplicate: invalid, kept as is

    with LoopbackServer(answer=compact) as server:
        spec = spec_with(teacher=openai(server, "t"))
        prompts = prompts_of(INSTANCES, spec)
        targets, raw, _ = teacher_texts(INSTANCES, prompts, None, spec, 0, None)
    assert targets == raw and read_answer(targets[0], CANDIDATES[0], 2).invalid == "duplicate"


def verdict(option: str) -> str:
    scores = "- Relevance Score: 4 ok\n- Diversity Score: 3 ok\n- Explainability Score: 5 ok"
    return f"Option A Evaluation:\n{scores}\nOption B Evaluation:\n{scores}\nDecision:\n- Chosen Option: {option}"


def test_model_judge_reads_options_maps_the_choice_back_and_caches_only_decisions(tmp_path: Path) -> None:
    """The judge prefers the option naming 'Alien' or 'Fargo' first; the second prompt's reply is cut (invalid)."""

    seen: list[str] = []

    def judge(body: dict[str, Any]) -> str:
        text = user_text(body)
        seen.append(text)
        a = text.split("Option A:\n")[1].split("\nOption B:")[0]
        if "Jaws 2" in text:
            return "Option A Evaluation:\n- Relevance Score: 4"
        return verdict("A" if '1. "Alien"' in a else "B")

    samples = [('K: x\n1. "Alien" - a\n2. "Heat" - b', 'K: x\n1. "Heat" - b\n2. "Alien" - a'), ("s", "t")]
    with LoopbackServer(answer=judge) as server, ResponseCache(tmp_path / "c.sqlite") as cache:
        spec = spec_with(judge=openai(server, "judge-1"), items_noun="films")
        prompts = prompts_of(INSTANCES, spec)
        judged, ledger = judge_samples(INSTANCES, prompts, samples, None, spec, 0, 1, cache)
        judge_samples(INSTANCES, prompts, samples, None, spec, 0, 1, cache)
        assert server.stats.received == 3  # the decided reply was cached, the cut one asked again
    assert list(judged["status"]) == ["ok", "invalid"]
    shown_first = int(judged["first"].iloc[0])  # which sample was shown as A
    assert (judged["chosen"].iloc[0] == "A") == (shown_first == 0)  # the choice always names sample 0 ('Alien' first)
    first_prompt = next(t for t in seen if "Heat 2" in t)
    assert "Next Preferred: Alien" in first_prompt and "two sets of films recommendations" in first_prompt
    assert judged["reply"].iloc[0].endswith("Chosen Option: " + str(judged["chosen"].iloc[0]))
    assert ledger.as_dict()["requests"] == 2


def test_model_rater_scores_valid_answers_and_gives_invalid_ones_the_minimum(tmp_path: Path) -> None:
    def rater(body: dict[str, Any]) -> str:
        return "Score: 73" if "Kes" in user_text(body) else "I cannot rate this."

    answers = ['K: x\n1. "Alien" - a\n2. "Heat" - b', 'K: y\n1. "Up" - a\n2. "Big" - b']
    matched = [read_answer(a, c, 2) for a, c in zip(answers, CANDIDATES, strict=True)]
    with LoopbackServer(answer=rater) as server, ResponseCache(tmp_path / "c.sqlite") as cache:
        spec = spec_with(judge=openai(server, "judge-1"))
        scores = explainability(INSTANCES, answers, matched, None, spec, cache)
        assert scores[0] == 73.0 and np.isnan(scores[1])  # no score in the reply: NaN, not a number made up
        invalid = [read_answer("nothing", c, 2) for c in CANDIDATES]
        assert explainability(INSTANCES, ["nothing", "nothing"], invalid, None, spec, cache) == [1.0, 1.0]
        sent = server.stats.received
    assert sent == 2  # invalid answers are not sent


def test_simulated_roles_on_real_data_are_refused_naming_the_role() -> None:
    lastfm = {"data": {"source": {"name": "lastfm"}}, "judge": None, "calibrate": None, "exposynth": None}
    model = {"name": "openai", "base_url": "http://127.0.0.1:8080/v1", "model": "m", "api_key_env": None}
    with pytest.raises(ValidationError, match=r"reclaif.teacher and reclaif.judge: the simulated roles"):
        Spec(**lastfm, reclaif={})
    with pytest.raises(ValidationError, match=r"reclaif.judge: the simulated roles"):
        Spec(**lastfm, reclaif={"teacher": model})
    spec = Spec(**lastfm, reclaif={"teacher": model, "judge": model})
    assert spec.reclaif is not None and spec.reclaif.teacher.name == "openai"
    with pytest.raises(ValidationError, match="no RecLAIF prompt prompts/judge_pairwise.j2"):
        ReclaifSpec(teacher_template="judge_pairwise")
    with pytest.raises(ValidationError, match="decoding 'candidates' constrains quoted names"):
        ReclaifSpec(answer_style="paper")
    assert json.loads(ReclaifSpec(decoding="free", answer_style="paper").model_dump_json())["answer_style"] == "paper"


def loopback_roles(body: dict[str, Any]) -> str:
    """Teacher, judge and rater in one server, told apart by their prompts (the templates' first lines)."""
    text = user_text(body)
    if text.startswith(("You are a music recommendation engine", "You are a product recommendation engine")):
        return paper_teacher(body)
    if text.startswith("You are an expert evaluator tasked"):
        a = text.split("Option A:\n")[1].split("\nOption B:")[0]
        return verdict("A" if len(a) % 2 else "B")
    if text.startswith("You are an expert evaluator of recommendation explanations"):
        return "Score: 61"
    return "unexpected prompt"


# (spec, source, folder under ../shared/data, a file it must hold, history and candidates, the metrics' key)
REAL_SPECS = [
    ("reclaif-lastfm", "lastfm", "lastfm-hetrec2011", "user_artists.dat", 20, 20, "lastfm"),
    ("reclaif-beauty", "amazon-beauty", "amazon-beauty-2014-5core", "sequential_data.txt", 10, 10, "amazon-beauty"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("spec_name", "source", "folder_name", "needed", "history", "candidates", "key"), REAL_SPECS)
def test_reclaif_real_data_spec_runs_on_the_shared_data_with_model_roles(
    tmp_path: Path,
    spec_name: str,
    source: str,
    folder_name: str,
    needed: str,
    history: int,
    candidates: int,
    key: str,
) -> None:
    """specs/reclaif-{lastfm,beauty}.yaml as committed, scaled down, their teacher and judge pointed at a loopback
    server: the dataset from ../shared/data through the whole chain, the OpenAI code path for every request."""
    import yaml

    from tests.conftest import ROOT, SHARED, SMALL_LLM, dvc, make_project, ran

    folder = SHARED / folder_name
    if not (folder / needed).is_file():
        pytest.skip(f"{source} files not found under {folder} (the shared data folder is absent)")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / source).symlink_to(folder)
    spec = yaml.safe_load((ROOT / "specs" / f"{spec_name}.yaml").read_text())
    with LoopbackServer(answer=loopback_roles) as server:
        role = {**spec["reclaif"]["teacher"], "base_url": server.url, "api_key_env": None, "max_retries": 0}
        spec["data"]["source"]["raw_dir"] = str(raw)
        spec["reclaif"].update(
            teacher=role,
            judge=role,
            train_prompts=24,
            dpo_prompts=8,
            eval_prompts=6,
            sft_epochs=1,
            iterations=1,
            max_new_tokens=60,
            dpo={**spec["reclaif"].get("dpo", {}), "batch_size": 4},
        )
        spec.update(SMALL_LLM, tracking={"enabled": False})
        spec["model"] = {**SMALL_LLM["model"], "max_length": 1024}  # up to 40 titles in a prompt
        spec["eval"] = {"models": ["popularity"], "bootstrap": 20, "sasrec": {"epochs": 1, "hidden": 16}}
        root = make_project(tmp_path / "p", spec)
        stages = ran(dvc("repro", "reclaif-eval", cwd=root, timeout=1200).stdout)
        received = server.stats.received
    assert [s for s in stages if s.startswith("reclaif")] == [
        "reclaif-data",
        "reclaif-sft",
        "reclaif-dpo-1",
        "reclaif-eval",
    ]
    data = json.loads((root / "metrics" / "reclaif-data.json").read_text())
    assert data["instances"] == {"sft": 24, "dpo": 8, "test": 6}
    assert data["requests"]["requests"] == 38 and data["requests"]["failed"] == 0
    assert "teacher_true_relevance" not in data  # no truth on real data
    instances = pd.read_parquet(root / "data" / "reclaif" / "data" / "instances.parquet")
    assert instances["context"].map(len).max() == history
    assert instances["candidate_texts"].map(len).eq(candidates).all()
    assert instances["teacher_raw"].str.startswith("**Key Preferences:**").all()
    valid = instances["teacher"].str.startswith('Key preferences: dark films\n1. "')
    assert valid.mean() > 0.8  # rewritten in the compact format (an artist with ', ' in its name breaks the fake)
    dpo = json.loads((root / "metrics" / "reclaif-dpo-1.json").read_text())
    assert dpo["pairs"]["judged"] == 8 and dpo["requests"]["requests"] == 8
    report = json.loads((root / "metrics" / "reclaif-eval.json").read_text())[key]["models"]
    assert set(report) == {"teacher", "base", "sft", "dpo-1", "sasrec", "popularity"}
    assert report["sasrec"]["valid_ratio"]["mean"] == 1.0 and report["sasrec"]["explainability"]["mean"] is None
    assert report["teacher"]["explainability"]["mean"] == pytest.approx(
        61.0 * report["teacher"]["valid_ratio"]["mean"] + 1.0 * (1 - report["teacher"]["valid_ratio"]["mean"])
    )
    assert "true_relevance" not in report["sft"]
    lines = (root / "plots" / "reclaif-eval" / "iterations.csv").read_text().splitlines()
    assert len(lines) == 1 + 5 * 2  # the paper's five panels, no true relevance on real data
    assert received >= 38 + 8  # teacher, judge and the rater of every valid test answer


def test_training_interactions_of_a_timeless_split_are_each_users_prefix() -> None:
    """The window split of a dataset without time: users 0 and 1 (3 and 4 interactions, all at time 0) give 2 + 3
    windows; the first 4 (by user, then position) train. User 0's 2 windows and user 1's first 2 train, so the
    training windows see user 0's 3 interactions and user 1's first 3."""
    from lure.data.splits import window_samples, window_split
    from lure.llm.data import seen_by_training_windows

    interactions = pd.DataFrame(
        {"user_id": [0, 0, 0, 1, 1, 1, 1], "item_id": [5, 6, 7, 8, 9, 10, 11], "timestamp": [0] * 7}
    )
    train, valid, _ = window_split(window_samples(interactions, 10), [0.8, 0.2, 0.0])
    assert list(zip(train["user_id"], train["item_id"], strict=True)) == [(0, 6), (0, 7), (1, 9), (1, 10)]
    seen = seen_by_training_windows(interactions, train, int(valid["timestamp"].min()))
    assert list(seen["item_id"]) == [5, 6, 7, 8, 9, 10]
    timed = interactions.assign(timestamp=[1, 2, 3, 1, 2, 5, 6])  # a time cut at 5 separates the parts
    t_train, t_valid, _ = window_split(window_samples(timed, 10), [0.6, 0.4, 0.0])
    assert int(t_valid["timestamp"].min()) == 5 and int(t_train["timestamp"].max()) < 5
    assert list(seen_by_training_windows(timed, t_train, 5)["item_id"]) == [5, 6, 7, 8, 9]
