"""The judge stages under DVC with a real HTTP judge: an OpenAI-compatible server on loopback (in this process)
answers the ``judge`` stage's requests through the ``openai`` backend, with the API key in an environment variable.

Checks: ``dvc repro`` runs judge -> judge-metrics -> calibrate; the key appears in no file of the project (params,
dvc.yaml, dvc.lock, metrics, MLflow's store, the request cache and its WAL, DVC's cache, git) nor in DVC's output; a
re-run asks the server nothing; ``-S judge.metrics.ips=false`` re-runs the metrics, not the judge."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest

from lure.requests.loopback import LoopbackServer
from tests.conftest import TINY_WORLD, dvc, make_project, ran, tool_env

pytestmark = pytest.mark.slow

KEY_ENV = "LURE_TEST_JUDGE_KEY"


def _judge_answer(body: dict) -> str:
    """Candidate A, quoting its title from the prompt (a valid answer whatever the pair)."""
    text = body["messages"][-1]["content"]
    title = re.search(r'### Candidate A\nTitle: "(.*)"', text).group(1)
    rationale = {"claim": "fits the history", "evidence": title, "source": "A"}
    return json.dumps({"winner": "A", "confidence": 0.6, "rationales": [rationale]})


def _files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


def test_judge_stages_under_dvc_keep_the_key_out_of_every_file(tmp_path: Path) -> None:
    key = "sk-lure-test-" + secrets.token_hex(12)
    with LoopbackServer(answer=_judge_answer) as server:
        spec = {
            "seed": 0,
            "data": {"source": {"name": "world", **TINY_WORLD}},
            "method": None,
            "baselines": [],
            "eval": {"models": ["random", "popularity", "itemknn"], "bootstrap": 20},
            "judge": {
                "backend": {
                    "name": "openai",
                    "base_url": server.url,
                    "model": "loopback-judge",
                    "api_key_env": KEY_ENV,
                },
                "history_items": 5,
                "concurrency": 4,
            },
            "calibrate": {"reference": "popularity", "estimator": "truth"},
            "reclaif": None,
            "abpo": None,
            "tracking": {"enabled": True},
        }
        root = make_project(tmp_path / "p", spec)
        env = tool_env(**{KEY_ENV: key})
        first = dvc("repro", cwd=root, env=env)
        asked = server.stats.received
        assert {"judge", "judge-metrics", "calibrate", "track"} <= set(ran(first.stdout))
        judged = json.loads((root / "metrics" / "judge.json").read_text())
        assert judged["statuses"]["valid"] == judged["answers"] > 0 and judged["first_shown_share"] == 1.0
        assert asked == judged["requests"]["sent"] > 0
        calib = json.loads((root / "metrics" / "calibrate.json").read_text())
        assert calib["models"] == 3 and set(calib["tuples"]) == {"random", "popularity", "itemknn"}

        again = dvc(
            "repro", "--force", "--single-item", "judge", cwd=root, env=env
        )  # the stage runs, the server is not asked
        assert ran(again.stdout) == ["judge"] and server.stats.received == asked
        assert json.loads((root / "metrics" / "judge.json").read_text())["requests"]["cache_hits"] > 0

        metrics_only = dvc("exp", "run", "-S", "judge.metrics.ips=false", cwd=root, env=env)
        assert "judge-metrics" in ran(metrics_only.stdout) and "judge" not in ran(metrics_only.stdout)

        # something to send and no key: the stage stops before any request, naming the variable
        received = server.stats.received
        without_key = dvc("exp", "run", "-S", "judge.history_items=4", cwd=root, env=tool_env(), check=False)
        assert without_key.returncode != 0 and KEY_ENV in without_key.stderr + without_key.stdout
        assert server.stats.received == received

    outputs = first.stdout + first.stderr + again.stdout + again.stderr + metrics_only.stdout + metrics_only.stderr
    assert key not in outputs
    assert (root / ".lure" / "requests.sqlite").is_file()
    assert _files_holding(root, key.encode()) == []
