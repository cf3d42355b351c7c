"""RecLAIF's costs on the default spec (issue 16). Run: ``python -m bench.reclaif_bench`` (``make bench`` runs it).

On the default world and a tiny Llama of the default size (hidden 128, 2 layers, catalogue BPE; untrained: speed
does not depend on the weights, only on the answers' lengths, which ``max_new_tokens`` caps):

* ``reclaif_answers_per_s``: sampled answers per second (Eq. 4: T, p and constrained names as in the spec), 64
  prompts x 2 answers. Goal >= 10, so an iteration's 2 x 256 answers take under a minute.
* ``reclaif_judged_pairs_per_min``: the simulated judge (Eq. 5) through the request layer. Goal >= 10,000.
* ``reclaif_dpo_step_s``: one DPO step (Eq. 2, a batch of ``reclaif.dpo.batch_size`` pairs, the reference
  log-probabilities precomputed) on the CPU. Goal <= 2 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd


def bench_reclaif() -> dict[str, float]:
    from lure.data.prepare import prepare
    from lure.layout import Prepared
    from lure.llm.model import build_tiny_llama, set_torch_threads
    from lure.llm.tokenizer import train_tokenizer
    from lure.reclaif.loop import judge_samples, truth_of
    from lure.reclaif.policy import dpo_train, generate_answers
    from lure.reclaif.run import build_data, constraint, part, sampling
    from lure.spec.model import Spec

    set_torch_threads()
    spec = Spec()
    rs = spec.reclaif
    assert rs is not None
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        prepare(spec.data, spec.seed, Path(tmp) / "prepared")
        prepared = Prepared(Path(tmp) / "prepared")
        data, _, _ = build_data(prepared, rs, spec.seed, None)
        dpo = part(data, "dpo").iloc[:64].reset_index(drop=True)
        titles = list(prepared.read_items(columns=["title"])["title"])
        tok = train_tokenizer(titles, vocab_size=spec.model.tiny.vocab_size)
        t = spec.model.tiny
        model = build_tiny_llama(tok, hidden=t.hidden, layers=t.layers, heads=t.heads, seed=0)
        samples, stats = generate_answers(
            model, tok, list(dpo["prompt"]), 2, sampling(rs, greedy=False), 0, candidates=constraint(dpo, rs)
        )
        figures["reclaif_answers_per_s"] = stats["answers_per_s"]
        truth = truth_of(prepared)
        t0 = time.perf_counter()
        judged, _ = judge_samples(dpo, list(dpo["prompt"]), samples, truth, rs, spec.seed, 1, None)
        figures["reclaif_judged_pairs_per_min"] = round(len(judged) / (time.perf_counter() - t0) * 60, 1)
        # DPO on as many pairs as one epoch of two steps needs (chosen = sample 0: speed does not depend on which)
        n = 2 * rs.dpo.batch_size
        pairs = pd.DataFrame(
            {
                "prompt": list(dpo["prompt"])[:n],
                "chosen": [s[0] for s in samples][:n],
                "rejected": [s[1] for s in samples][:n],
            }
        )
        settings = rs.dpo.model_copy(update={"epochs": 1.0})
        fit = dpo_train(model, None, tok, pairs, settings, 0, Path(tmp) / "dpo", Path(tmp) / "work")
        figures["reclaif_dpo_step_s"] = fit["step_seconds"]
    return figures


if __name__ == "__main__":
    for key, value in bench_reclaif().items():
        print(f"{key}: {value}")
