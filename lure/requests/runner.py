"""Run many requests through one backend: cache first, then at most ``concurrency`` in flight, answers in order.

Why it is shaped this way:

* every stored answer is looked up before anything is sent (one query per 900 keys), so a re-run makes no backend
  call and needs no credentials (``Backend.prepare`` runs only when something is to be sent);
* identical requests in one run (same cache key) are sent once;
* ``concurrency`` workers take requests one at a time from a shared queue, so the number of requests in flight
  is bounded by construction, and tasks and memory grow with the concurrency, not with the number of requests;
  a worker commits each answer to the cache before it takes the next request, so at any moment at most
  ``concurrency`` requests have been sent without their answer being stored: a run killed at any point re-sends
  at most that many;
* a failure is one request's ``error`` status (redacted message, never cached), not the run's end; only a
  configuration error found by ``prepare`` (an unset API key variable) stops the run, before any request;
* ``accept`` lets the caller keep answers it cannot use out of the cache (a judge's truncated or unparseable JSON):
  such an answer is returned as it is but asked again on the next run, never stored as the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lure.display import PIPED_PROGRESS_INTERVAL, progress
from lure.requests.backends.base import Backend, BackendError
from lure.requests.cache import ResponseCache
from lure.requests.key import cache_key
from lure.requests.ledger import Ledger
from lure.requests.models import ChatRequest, Response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """One response per request, in the order of the requests, and the run's ledger."""

    responses: list[Response]
    ledger: Ledger


async def arun_requests(
    backend: Backend,
    requests: Iterable[ChatRequest],
    cache: ResponseCache | None = None,
    concurrency: int = 8,
    description: str = "requests",
    progress_interval: float = PIPED_PROGRESS_INTERVAL,
    accept: Callable[[ChatRequest, Response], bool] | None = None,
) -> RunResult:
    """:func:`run_requests` for a caller already inside an event loop."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    start = time.monotonic()
    requests = list(requests)
    identity = backend.identity
    keys = [cache_key(identity, r) for r in requests]
    unique: dict[str, ChatRequest] = {}
    for key, request in zip(keys, requests, strict=True):
        unique.setdefault(key, request)
    ledger = Ledger(prices=backend.prices, requests=len(requests), duplicates=len(requests) - len(unique))
    answers = cache.get_many(unique) if cache is not None else {}
    for response in answers.values():
        ledger.add_cached(response)
    to_send = [k for k in unique if k not in answers]
    if to_send:
        await backend.prepare()
        queue = iter(to_send)  # shared by the workers: each key is taken once
        finished: asyncio.Queue[tuple[str, Response] | BaseException] = asyncio.Queue()

        async def worker() -> None:
            try:
                for key in queue:
                    response = await _complete(backend, unique[key])
                    keep = response.status == "ok" and (accept is None or accept(unique[key], response))
                    if cache is not None and keep:
                        cache.put(key, identity, unique[key], response)  # committed before the next request
                    finished.put_nowait((key, response))
            except BaseException as exc:  # a broken cache or a cancellation: the run stops, not just this worker
                finished.put_nowait(exc)
                raise

        workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(to_send)))]
        try:
            for _ in progress(
                range(len(to_send)),
                description,
                interval=progress_interval,
                status=lambda: f"{ledger.cache_hits} cached, {ledger.failed} failed",
            ):
                item = await finished.get()
                if isinstance(item, BaseException):
                    raise item
                key, response = item
                answers[key] = response
                ledger.add_sent(response)
        finally:  # interrupted (an exception, a cancellation): stop what is still in flight
            unfinished = [w for w in workers if not w.done()]
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.gather(*unfinished, return_exceptions=True)
            await backend.aclose()
    ledger.wall_s = time.monotonic() - start
    return RunResult([answers[k] for k in keys], ledger)


def run_requests(
    backend: Backend,
    requests: Iterable[ChatRequest],
    cache: ResponseCache | None = None,
    concurrency: int = 8,
    description: str = "requests",
    progress_interval: float = PIPED_PROGRESS_INTERVAL,
    accept: Callable[[ChatRequest, Response], bool] | None = None,
) -> RunResult:
    """Answer ``requests`` with ``backend``: answers in ``cache`` are reused, the rest sent with at most
    ``concurrency`` in flight (module docstring). Every request gets exactly one response, ``ok`` or ``error``;
    an ``ok`` answer is cached unless ``accept(request, response)`` is false."""
    return asyncio.run(arun_requests(backend, requests, cache, concurrency, description, progress_interval, accept))


async def _complete(backend: Backend, request: ChatRequest) -> Response:
    """The backend's answer, or an ``error`` response with its redacted message."""
    try:
        response = await backend.complete(request)
        if response.status != "ok":
            raise RuntimeError(f"backend returned status {response.status!r}: {response.error}")
        return response
    except Exception as exc:  # noqa: BLE001 - one request's failure is its error status, not the run's end
        message = backend.redact(str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}")
        log.debug("request failed: %s", message)
        return Response(status="error", error=message, attempts=exc.attempts if isinstance(exc, BackendError) else 1)
