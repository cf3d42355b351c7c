"""An OpenAI-compatible chat-completions server on loopback, with deterministic answers, a fixed latency and
injected transport faults: what the request layer's tests and benchmark run against, and a way to try a pipeline's
LLM calls without a model (``python -m lure.requests.loopback --latency 0.05``, then point an ``openai`` backend
at the URL it prints).

Why deterministic: the answer is a hash of the request body, and whether an attempt is faulty is a hash of the
body and of how many times that body was received before, so a faulty run and a fault-free run must end with
equal answers when the client's retries do their job, and a test can say which requests saw which faults.

Faults (a share ``rate`` of attempts, kinds drawn among ``kinds``):

* ``timeout``: the answer comes after ``stall_s`` seconds (longer than the client's timeout);
* ``429``: rate limited, with ``Retry-After: 0`` and ``retry-after-ms: 10`` (the openai client prefers the latter);
* ``500``: an internal error with a JSON error body, no retry header;
* ``malformed``: status 200 with a body that is not JSON;
* ``truncated``: status 200, the connection closed half way through the announced body.

A user message containing ``[[fail:400]]`` always gets a 400; one containing ``[[fail:401-echo]]`` gets a 401 whose
message repeats the request's Authorization header, as a careless proxy might (the secrets test checks that the key
never leaves the backend).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

FAULT_KINDS = ("timeout", "429", "500", "malformed", "truncated")


@dataclass(frozen=True)
class Faults:
    """Which share of attempts fail, and how (module docstring)."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    stall_s: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be among {FAULT_KINDS}, got {self.kinds}")

    def draw(self, digest: str, attempt: int) -> str | None:
        """The fault of the ``attempt``-th receipt (0-based) of the body with ``digest``, or None."""
        if self.rate <= 0:
            return None
        h = hashlib.sha256(f"{self.seed}:{digest}:{attempt}".encode()).digest()
        if int.from_bytes(h[:8], "big") / 2**64 >= self.rate:
            return None
        return self.kinds[int.from_bytes(h[8:16], "big") % len(self.kinds)]


@dataclass
class Stats:
    """What the server saw. ``received``: POSTs to /v1/chat/completions; ``answered``: 200 answers written;
    ``connections``: TCP connections accepted;
    ``max_in_flight``: most requests being handled at once (a stalled ``timeout`` fault counts until it ends)."""

    received: int = 0
    answered: int = 0
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    #: Fault (or "ok") of each receipt, by body digest, in order.
    outcomes: dict[str, list[str]] = field(default_factory=dict)
    authorizations: set[str] = field(default_factory=set)
    bodies: list[dict[str, Any]] = field(default_factory=list)


def body_digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def answer_text(body: dict[str, Any]) -> str:
    """The deterministic answer to a request body: ``answer-<hash>`` plus the model name."""
    return f"answer-{body_digest(body)[:16]} from {body.get('model')}"


def completion(body: dict[str, Any], answer: Callable[[dict[str, Any]], str] = answer_text) -> dict[str, Any]:
    """A ``chat.completion`` object answering ``body`` with ``answer(body)`` (with logprobs when asked for)."""
    text = answer(body)
    words = text.split(" ")
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
        "logprobs": None,
    }
    if body.get("logprobs"):
        top = int(body.get("top_logprobs") or 0)
        choice["logprobs"] = {
            "content": [
                {
                    "token": w,
                    "logprob": -0.1 * (i + 1),
                    "bytes": None,
                    "top_logprobs": [
                        {"token": f"{w}~{j}", "logprob": -0.1 * (i + 1) - j, "bytes": None} for j in range(top)
                    ],
                }
                for i, w in enumerate(words)
            ]
        }
    return {
        "id": f"chatcmpl-{body_digest(body)[:12]}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", ""),
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        },
    }


class LoopbackServer:
    """The server, run in a thread of this process (``with LoopbackServer(...) as server: server.url``)."""

    def __init__(
        self,
        latency: float = 0.0,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        answer: Callable[[dict[str, Any]], str] = answer_text,
    ):
        """``answer``: the text of the answer to a request body (deterministic: a fault-free answer must not depend
        on the attempt); by default :func:`answer_text`. A test plugs in a judge here."""
        self.latency = latency
        self.answer = answer
        self.faults = faults or Faults()
        self.stats = Stats()
        self.lock = threading.Lock()
        self.keep_bodies = False
        handler = type("Handler", (_Handler,), {"owner": self})
        self.httpd = ThreadingHTTPServer((host, port), handler, bind_and_activate=False)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256  # many clients connect at once; the default backlog of 5 drops SYNs
        self.httpd.allow_reuse_address = True
        self.httpd.server_bind()
        self.httpd.server_activate()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    owner: LoopbackServer
    protocol_version = "HTTP/1.1"  # keep-alive, as API servers do

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a test's output stays readable."""

    def setup(self) -> None:
        super().setup()
        with self.owner.lock:
            self.owner.stats.connections += 1

    def do_GET(self) -> None:
        """``/stats``: the counters (a server in another process can be asked what it saw)."""
        if self.path.rstrip("/") != "/stats":
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        stats = self.owner.stats
        with self.owner.lock:
            counts = {k: getattr(stats, k) for k in ("received", "answered", "connections", "max_in_flight")}
        self._send(200, counts)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        body = json.loads(raw)
        server, stats = self.owner, self.owner.stats
        digest = body_digest(body)
        with server.lock:
            stats.received += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            stats.authorizations.add(self.headers.get("Authorization", ""))
            if server.keep_bodies:
                stats.bodies.append(body)
            history = stats.outcomes.setdefault(digest, [])
            fault = server.faults.draw(digest, len(history))
            history.append(fault or "ok")
            if fault:
                stats.faults[fault] += 1
        self._pending = True
        try:
            if server.latency:
                time.sleep(server.latency)
            self._respond(body, fault)
        finally:
            self._leave()

    def _leave(self) -> None:
        """This request stops counting as in flight: just before its first response byte, so a client that sends
        its next request on receiving this answer is never seen overlapping it."""
        if getattr(self, "_pending", False):
            self._pending = False
            with self.owner.lock:
                self.owner.stats.in_flight -= 1

    def _respond(self, body: dict[str, Any], fault: str | None) -> None:
        contents = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        if "[[fail:400]]" in contents:
            self._send(400, {"error": {"message": "bad request (asked for)", "type": "invalid_request_error"}})
        elif "[[fail:401-echo]]" in contents:
            seen = self.headers.get("Authorization", "")
            self._send(401, {"error": {"message": f"invalid credentials: {seen}", "type": "invalid_request_error"}})
        elif fault == "429":
            error = {"error": {"message": "rate limited", "type": "rate_limit_error"}}
            self._send(429, error, {"Retry-After": "0", "retry-after-ms": "10"})
        elif fault == "500":
            self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
        elif fault == "malformed":
            self._send_bytes(200, b'{"id": "chatcmpl-x", "choices": [ this is not json', "application/json")
        elif fault == "truncated":
            payload = json.dumps(completion(body, self.owner.answer)).encode()
            self._leave()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            if fault == "timeout":
                time.sleep(self.owner.faults.stall_s)
            try:
                self._send(200, completion(body, self.owner.answer))
            except OSError:  # the client gave up (timeout fault): nothing to answer
                self.close_connection = True
                return
            with self.owner.lock:
                self.owner.stats.answered += 1

    def _send(self, status: int, obj: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(obj).encode(), "application/json", headers)

    def _send_bytes(
        self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self._leave()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of attempts that fail")
    args = parser.parse_args(argv)
    server = LoopbackServer(args.latency, Faults(rate=args.fault_rate), args.host, args.port)
    print(server.url, flush=True)
    try:
        server.httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
