"""RecJudge-X (LURE §2.1): an LLM judge of matched item pairs whose rationales must quote their evidence.

One job per module:

* :mod:`lure.judge.schema`    the answer schema (winner, confidence, rationales) and the presentation of a pair;
* :mod:`lure.judge.prompt`    the pairwise prompt (``prompts/judge_pairwise.j2``): history and candidate blocks, the
                              A/B order drawn per pair, each block's exact text;
* :mod:`lure.judge.parse`     reading a reply: tolerant JSON extraction, schema, evidence check, one status per answer;
* :mod:`lure.judge.requests`  the chat messages of a judge prompt (both modes);
* :mod:`lure.judge.logprob`   logprob mode (PairS-style): P(A) vs P(B) at the verdict token, both orders averaged;
* :mod:`lure.judge.labels`    status + answer -> label y in {+1, -1, 0} and a weight (the invalid-answer policy);
* :mod:`lure.judge.simulated` a judge of the simulated world with known accuracy and biases, emitting reply text.

The metrics over the labels (PairAUC_IPS, RJS, judge accuracy) are :mod:`lure.metrics.pairwise`; the options are
:mod:`lure.spec.judge`. docs/judge.md describes every choice.
"""
