"""The request layer without a network: request model, cache key, answer store, ledger, configs and registry, the
simulated backend through the runner, and the progress line."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from lure.display import progress
from lure.registry import BACKENDS
from lure.requests import (
    SCHEMA_VERSION,
    BackendConfig,
    ChatRequest,
    Ledger,
    OpenAIConfig,
    Prices,
    Response,
    ResponseCache,
    SimulatedConfig,
    TransformersConfig,
    Usage,
    build_backend,
    cache_key,
    run_requests,
)
from lure.requests.backends.simulated import SimulatedBackend
from lure.requests.cache import CacheLayoutError

ROOT = Path(__file__).resolve().parents[1]
IDENTITY = {"backend": "openai", "base_url": "http://x/v1", "model": "m"}


def ask(text: str, **fields: object) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **fields)


def echo(request: ChatRequest) -> str:
    """A simulated judge: repeats the last message."""
    return f"echo: {request.messages[-1].content}"


def test_request_and_response_validation() -> None:
    with pytest.raises(ValidationError):
        ChatRequest(messages=[])
    with pytest.raises(ValidationError, match="top_logprobs needs logprobs"):
        ask("q", top_logprobs=3)
    with pytest.raises(ValidationError):
        ask("q", temperature=3.0)
    with pytest.raises(ValidationError):
        Response(status="ok", text=None)
    with pytest.raises(ValidationError):
        Response(status="error", text="x", error="boom")
    schema = {"type": "object", "properties": {"winner": {"enum": ["A", "B"]}}}
    json_mode = ask("q", response_format={"type": "json_object", "schema": schema})
    assert json_mode.wire_response_format() == {"type": "json_object", "schema": schema}
    structured = ask("q", response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}})
    assert structured.wire_response_format() == {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": schema},
    }


def test_cache_key_covers_every_parameter() -> None:
    base = ask("q")
    variants = {
        "messages": ask("q2"),
        "role": ChatRequest(messages=[{"role": "system", "content": "q"}]),
        "more messages": ChatRequest(
            messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
        ),
        "temperature": ask("q", temperature=0.7),
        "top_p": ask("q", top_p=0.9),
        "max_tokens": ask("q", max_tokens=17),
        "json mode": ask("q", response_format={"type": "json_object"}),
        "schema": ask("q", response_format={"type": "json_object", "schema": {"type": "object"}}),
        "logprobs": ask("q", logprobs=True),
        "top_logprobs": ask("q", logprobs=True, top_logprobs=2),
        "seed": ask("q", seed=1),
        "sample": ask("q", sample=1),
        "template": ask("q", template_hash="abc"),
    }
    keys = {name: cache_key(IDENTITY, r) for name, r in variants.items()}
    keys["base"] = cache_key(IDENTITY, base)
    keys["backend"] = cache_key({**IDENTITY, "backend": "transformers"}, base)
    keys["base_url"] = cache_key({**IDENTITY, "base_url": "http://y/v1"}, base)
    keys["model"] = cache_key({**IDENTITY, "model": "m2"}, base)
    assert len(set(keys.values())) == len(keys)
    # the same request spelled differently is the same key; the key is stable across processes
    assert cache_key(IDENTITY, ask("q", temperature=0)) == cache_key(
        IDENTITY, ChatRequest.model_validate(base.model_dump())
    )
    assert SCHEMA_VERSION == 1
    script = (
        "from lure.requests import ChatRequest, cache_key;"
        "print(cache_key({'backend': 'openai', 'base_url': 'http://x/v1', 'model': 'm'},"
        " ChatRequest(messages=[{'role': 'user', 'content': 'q'}])))"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert other.stdout.strip() == keys["base"]


def test_cache_is_append_only_and_refuses_errors(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    request = ask("q", logprobs=True)
    first = Response(
        text="A",
        finish_reason="stop",
        logprobs=({"token": "A", "logprob": -0.5, "top": [{"token": "B", "logprob": -1.0}]},),
        usage=Usage(prompt_tokens=11, completion_tokens=2),
        attempts=3,
    )
    with ResponseCache(path) as cache:
        cache.put("k", IDENTITY, request, first)
        cache.put("k", IDENTITY, request, Response(text="B", usage=Usage(prompt_tokens=1, completion_tokens=1)))
        with pytest.raises(ValueError, match="never errors"):
            cache.put("e", IDENTITY, request, Response(status="error", error="boom"))
        assert len(cache) == 1
    with ResponseCache(path) as cache:  # reopened: the first answer, its usage, marked cached
        got = cache.get("k")
        assert got is not None and got.text == "A" and got.cached and got.attempts == 0
        assert got.usage == first.usage and got.logprobs == first.logprobs
        assert cache.get("e") is None and cache.get_many(["k", "zz"]).keys() == {"k"}
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(CacheLayoutError, match="layout 99"):
        ResponseCache(path)


def test_ledger_arithmetic() -> None:
    ledger = Ledger(prices=Prices(prompt_per_million=2.0, completion_per_million=10.0))
    ledger.add_sent(Response(text="a", usage=Usage(prompt_tokens=1000, completion_tokens=100), attempts=3))
    ledger.add_sent(Response(status="error", error="x", attempts=2))
    ledger.add_sent(Response(text="b", attempts=1))
    ledger.add_cached(Response(text="c", usage=Usage(prompt_tokens=500_000, completion_tokens=0), cached=True))
    assert (ledger.sent, ledger.ok, ledger.failed, ledger.attempts, ledger.retries) == (3, 2, 1, 6, 3)
    assert (ledger.prompt_tokens, ledger.completion_tokens, ledger.without_usage) == (1000, 100, 1)
    assert ledger.cost == pytest.approx((1000 * 2 + 100 * 10) / 1e6)
    assert ledger.cached_cost == pytest.approx(1.0) and ledger.cache_hits == 1
    assert ledger.as_dict()["price_completion_per_million"] == 10.0


def test_configs_union_and_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = TypeAdapter(BackendConfig)
    assert isinstance(adapter.validate_python({"name": "openai", "model": "gpt"}), OpenAIConfig)
    assert isinstance(adapter.validate_python({"name": "transformers", "model": "/m"}), TransformersConfig)
    simulated = adapter.validate_python({"name": "simulated", "function": "tests.test_requests_core:echo"})
    assert isinstance(simulated, SimulatedConfig)
    with pytest.raises(ValidationError):
        adapter.validate_python({"name": "openai", "model": "gpt", "api_key": "sk-x"})  # a key is never a field
    with pytest.raises(ValidationError):
        adapter.validate_python({"name": "openai", "model": "gpt", "api_key_env": "sk-not a name"})
    with pytest.raises(ValidationError):
        adapter.validate_python({"name": "llamacpp", "model": "x"})
    schema = adapter.json_schema()
    for member in schema["$defs"].values():  # every field described, ready for a spec section
        assert all("description" in f for f in member["properties"].values()), member["title"]
    assert set(BACKENDS.builtin_names()) == {"openai", "transformers", "simulated"}
    assert all(
        BACKENDS.get(n).spec is c
        for n, c in [("openai", OpenAIConfig), ("transformers", TransformersConfig), ("simulated", SimulatedConfig)]
    )
    monkeypatch.syspath_prepend(str(ROOT))
    backend = build_backend(simulated)
    assert isinstance(backend, SimulatedBackend) and backend.function.__name__ == "echo"
    assert backend.identity["model"] == "simulated"


def test_importing_the_layer_loads_no_client_or_model() -> None:
    script = (
        "import sys, lure.requests, lure.requests.backends.openai_compatible,"
        " lure.requests.backends.transformers_local;"
        "print(sorted(m for m in ('openai', 'torch', 'transformers', 'httpx2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_simulated_backend_through_the_runner(tmp_path: Path) -> None:
    calls: list[str] = []

    def judge(request: ChatRequest) -> str:
        calls.append(request.messages[-1].content)
        if "bad" in request.messages[-1].content:
            raise RuntimeError("the judge cannot say")
        return echo(request)

    requests = [ask(f"q{i}") for i in range(5)] + [ask("q0"), ask("bad")]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        first = run_requests(SimulatedBackend(judge), requests, cache, concurrency=3)
        assert [r.status for r in first.responses] == ["ok"] * 6 + ["error"]
        assert [r.text for r in first.responses[:6]] == [f"echo: q{i}" for i in range(5)] + ["echo: q0"]
        assert first.responses[-1].error == "RuntimeError: the judge cannot say"
        assert (first.ledger.sent, first.ledger.duplicates, first.ledger.failed) == (6, 1, 1)
        assert sorted(calls) == sorted([f"q{i}" for i in range(5)] + ["bad"])  # the duplicate was asked once
        calls.clear()
        second = run_requests(SimulatedBackend(judge), requests, cache, concurrency=3)
        assert calls == ["bad"]  # answers from the cache; the error was not cached and is asked again
        assert second.ledger.cache_hits == 5 and second.ledger.sent == 1
        assert [r.text for r in second.responses[:6]] == [r.text for r in first.responses[:6]]
        assert all(r.cached for r in second.responses[:6])


def test_runner_inside_a_running_loop() -> None:
    async def main() -> list[str | None]:
        from lure.requests import arun_requests

        result = await arun_requests(SimulatedBackend(echo), [ask("a"), ask("b")], concurrency=1)
        return [r.text for r in result.responses]

    assert asyncio.run(main()) == ["echo: a", "echo: b"]


def test_progress_status_on_piped_lines(capsys: pytest.CaptureFixture[str]) -> None:
    counts = {"failed": 0}
    for _ in progress(range(3), "judging", interval=0.0, status=lambda: f"2 cached, {counts['failed']} failed"):
        counts["failed"] += 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("judging: 1/3 (33 %)") and lines[0].endswith("; 2 cached, 1 failed")
    assert lines[-1].endswith("; 2 cached, 3 failed")


def test_a_broken_cache_stops_the_run(tmp_path: Path) -> None:
    class FullDisk(ResponseCache):
        def put(self, *args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

    with FullDisk(tmp_path / "c.sqlite") as cache, pytest.raises(sqlite3.OperationalError, match="disk is full"):
        run_requests(SimulatedBackend(echo), [ask(f"q{i}") for i in range(20)], cache, concurrency=4)


def test_progress_status_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    seen = []
    assert list(progress(range(4), "judging", status=lambda: seen.append(1) or "0 failed")) == [0, 1, 2, 3]
    assert len(seen) == 5  # once for the bar, once after each item
