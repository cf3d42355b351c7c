"""The ``openai`` backend against the loopback server (``lure.requests.loopback``): transport faults, cache, SIGKILL,
concurrency bound, secrets and the request body on the wire.

Timings are kept small (client timeout 0.4 s, a stalled answer 1 s, ``retry-after-ms: 10``), so each test takes a
few seconds; the openai client's own backoff (0.5 s doubling, up to 25 % less) sets most of the duration.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lure.requests import ChatRequest, OpenAIConfig, ResponseCache, RunResult, build_backend, run_requests
from lure.requests.backends.openai_compatible import MissingAPIKeyError, OpenAIBackend
from lure.requests.loopback import FAULT_KINDS, Faults, LoopbackServer, body_digest

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "LURE_TEST_REQUESTS_KEY"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "sk-lure-test-" + secrets.token_hex(16)
    monkeypatch.setenv(KEY_ENV, key)
    return key


def backend(server: LoopbackServer, **fields: object) -> OpenAIBackend:
    config = {"base_url": server.url, "model": "judge-1", "api_key_env": KEY_ENV, "max_retries": 6, "timeout": 0.4}
    built = build_backend(OpenAIConfig(**{**config, **fields}))
    assert isinstance(built, OpenAIBackend)
    return built


def questions(n: int, prefix: str = "q") -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=[{"role": "system", "content": "You judge."}, {"role": "user", "content": f"{prefix}{i}"}],
            max_tokens=32,
            logprobs=i % 4 == 0,
            top_logprobs=2 if i % 4 == 0 else 0,
        )
        for i in range(n)
    ]


def run(
    server: LoopbackServer, requests: list[ChatRequest], cache: ResponseCache | None = None, **kw: object
) -> RunResult:
    concurrency = int(kw.pop("concurrency", 8))  # type: ignore[call-overload]
    return run_requests(backend(server, **kw), requests, cache, concurrency=concurrency)


def answers(result: RunResult) -> list[tuple[object, ...]]:
    return [(r.text, r.finish_reason, r.logprobs, r.usage) for r in result.responses]


def test_faulty_run_ends_with_the_fault_free_answers(tmp_path: Path) -> None:
    requests = questions(40)
    with LoopbackServer() as clean:
        reference = run(clean, requests)
    assert all(r.status == "ok" for r in reference.responses) and clean.stats.received == 40

    with (
        LoopbackServer(faults=Faults(rate=0.3, stall_s=1.0, seed=0)) as faulty,
        ResponseCache(tmp_path / "answers.sqlite") as cache,
    ):
        faulty.keep_bodies = True
        result = run(faulty, requests, cache)
        assert set(faulty.stats.faults) == set(FAULT_KINDS)  # every kind of fault was served
        assert len(result.responses) == len(requests)
        digests = {b["messages"][1]["content"]: body_digest(b) for b in faulty.stats.bodies}
        for request, response, expected in zip(requests, result.responses, reference.responses, strict=True):
            history = faulty.stats.outcomes[digests[request.messages[1].content]]
            # every attempt the server saw is counted, retries included; under CPU starvation the client can also
            # time out an attempt before the server accepts it, which the client counts and the server never logs
            assert response.attempts >= len(history) >= 1
            if history[-1] == "malformed":  # a 200 whose body is not JSON: not retried by the client, not cached
                assert response.status == "error" and response.error.startswith("JSONDecodeError")
            else:  # timeouts, 429, 500 and cut bodies were retried until the answer came
                assert history[-1] == "ok" and response.status == "ok"
                assert (response.text, response.logprobs, response.usage) == (
                    expected.text,
                    expected.logprobs,
                    expected.usage,
                )
        failed = sum(r.status == "error" for r in result.responses)
        assert result.ledger.attempts >= faulty.stats.received and result.ledger.retries > 0
        assert (result.ledger.ok, result.ledger.failed) == (40 - failed, failed) and failed > 0
        assert len(cache) == 40 - failed

        for _ in range(5):  # re-runs ask again for the failed requests only, until none is left
            received = faulty.stats.received
            rerun = run(faulty, requests, cache)
            assert rerun.ledger.cache_hits == 40 - failed and rerun.ledger.sent == failed
            assert faulty.stats.received - received == rerun.ledger.attempts >= failed
            failed = rerun.ledger.failed
            if not failed:
                break
        assert answers(rerun) == answers(reference)


def test_second_run_makes_no_server_call(tmp_path: Path) -> None:
    requests = questions(30) + questions(2, prefix="[[fail:400]] ")
    with LoopbackServer() as server, ResponseCache(tmp_path / "answers.sqlite") as cache:
        first = run(server, requests, cache)
        assert [r.status for r in first.responses] == ["ok"] * 30 + ["error"] * 2
        assert "Error code: 400" in (first.responses[-1].error or "")
        assert server.stats.received == 32  # a 400 is not retried
        second = run(server, requests[:30], cache)
        assert server.stats.received == 32
        assert second.ledger.sent == 0 and second.ledger.cache_hits == 30 and second.ledger.attempts == 0
        assert answers(second) == answers(first)[:30] and all(r.cached for r in second.responses)
        assert second.ledger.cached_prompt_tokens == first.ledger.prompt_tokens > 0
        assert second.ledger.cached_completion_tokens == first.ledger.completion_tokens > 0
        assert second.ledger.prompt_tokens == 0
        third = run(server, requests, cache)  # errors were never cached: exactly those are sent again
        assert server.stats.received == 34 and third.ledger.sent == 2 and third.ledger.cache_hits == 30


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    with LoopbackServer(latency=0.2) as server:  # long enough for all five to overlap on a busy machine
        result = run(server, questions(30), concurrency=5)
    assert all(r.status == "ok" for r in result.responses)
    assert server.stats.max_in_flight == 5  # reached, never exceeded


def test_missing_key_variable_is_named_before_any_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requests = questions(3)
    with LoopbackServer() as server, ResponseCache(tmp_path / "answers.sqlite") as cache:
        run(server, requests, cache)
        monkeypatch.delenv(KEY_ENV)
        cached = run(server, requests, cache)  # a fully cached run needs no key
        assert cached.ledger.cache_hits == 3 and server.stats.received == 3
        with pytest.raises(MissingAPIKeyError, match=f"environment variable {KEY_ENV} is not set"):
            run(server, questions(4), cache)
        assert server.stats.received == 3


def test_request_body_on_the_wire(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"winner": {"enum": ["A", "B"]}}, "required": ["winner"]}
    request = ChatRequest(
        messages=[{"role": "user", "content": "A or B?"}],
        temperature=0.5,
        top_p=0.9,
        max_tokens=7,
        response_format={"type": "json_object", "schema": schema},
        logprobs=True,
        top_logprobs=3,
        seed=11,
    )
    structured = ChatRequest(
        messages=request.messages,
        response_format={"type": "json_schema", "json_schema": {"name": "v", "schema": schema}},
        max_tokens=7,
    )
    with LoopbackServer() as server:
        server.keep_bodies = True
        result = run(server, [request], max_tokens_field="max_completion_tokens")
        run(server, [structured])
    body, second = server.stats.bodies
    assert body == {
        "model": "judge-1",
        "messages": [{"role": "user", "content": "A or B?"}],
        "temperature": 0.5,
        "top_p": 0.9,
        "max_completion_tokens": 7,
        "response_format": {"type": "json_object", "schema": schema},
        "logprobs": True,
        "top_logprobs": 3,
        "seed": 11,
    }
    assert second["response_format"] == {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}
    assert second["max_tokens"] == 7 and "seed" not in second
    logprobs = result.responses[0].logprobs
    assert logprobs is not None and len(logprobs[0].top) == 3 and logprobs[0].logprob == pytest.approx(-0.1)


def test_api_key_never_leaves_the_backend(
    tmp_path: Path, api_key: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx2", "httpcore2", "httpx", "httpcore", "lure"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    requests = questions(12) + questions(2, "[[fail:401-echo]] ") + questions(2, "[[fail:400]] ")
    cache_path = tmp_path / "answers.sqlite"
    with LoopbackServer(faults=Faults(rate=0.3, stall_s=1.0, seed=5)) as server, ResponseCache(cache_path) as cache:
        result = run(server, requests, cache)
        db_bytes = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(cache_path.name))
    assert f"Bearer {api_key}" in server.stats.authorizations  # the key was sent, so the checks below mean something
    echoed = [r.error or "" for r in result.responses[12:14]]
    assert all("Error code: 401" in e and "invalid credentials: Bearer [redacted]" in e for e in echoed)
    assert server.stats.received > len(requests)  # retries happened
    out = capsys.readouterr()
    everything = "\n".join(
        [
            caplog.text,
            *(str(r.args) for r in caplog.records),
            out.out,
            out.err,
            json.dumps([r.model_dump(mode="json") for r in result.responses]),
            json.dumps(result.ledger.as_dict()),
        ]
    )
    assert caplog.records  # the client's debug logging was captured
    assert api_key not in everything
    assert api_key.encode() not in db_bytes


SIGKILL_CHILD = """
import sys
from lure.requests import ChatRequest, OpenAIConfig, ResponseCache, build_backend, run_requests
url, cache_path, n, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
requests = [ChatRequest(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(n)]
backend = build_backend(OpenAIConfig(base_url=url, model="judge-1", api_key_env="KEY_ENV", timeout=10))
with ResponseCache(cache_path) as cache:
    run_requests(backend, requests, cache, concurrency=concurrency)
print("finished", flush=True)
""".replace("KEY_ENV", KEY_ENV)


def test_sigkill_midway_resends_only_what_was_in_flight(tmp_path: Path) -> None:
    n, concurrency = 60, 4
    requests = [ChatRequest(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(n)]
    script = tmp_path / "child.py"
    script.write_text(SIGKILL_CHILD)
    cache_path = tmp_path / "answers.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with LoopbackServer() as clean:
        reference = run(clean, requests)
    with LoopbackServer(latency=0.1) as server:
        child = subprocess.Popen(
            [sys.executable, str(script), server.url, str(cache_path), str(n), str(concurrency)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while server.stats.received < n // 2 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, err.decode()
        with ResponseCache(cache_path) as cache:
            kept = len(cache)
            assert 0 < kept < n  # killed half way, with answers committed
            result = run_requests(backend(server, timeout=10), requests, cache, concurrency=concurrency)
        assert result.ledger.cache_hits == kept and result.ledger.sent == n - kept
        assert all(r.status == "ok" for r in result.responses)
        assert answers(result) == answers(reference)
        assert server.stats.received <= n + concurrency
