"""The answer store: one append-only SQLite file, in WAL mode, one commit per answer.

Why SQLite in WAL mode: each answer is committed the moment it arrives, so a run killed at any point (SIGKILL
included) keeps every answer it had received, and its re-run asks again only for what was in flight. A committed
transaction is in the write-ahead log before ``put`` returns; ``synchronous=NORMAL`` syncs the log at checkpoints
rather than at every commit, which survives the process being killed (the operating system still has the data)
but may lose the last answers on a power cut. Readers never block the writer.

Append-only: an answer is inserted once under its key and never updated or deleted (``INSERT OR IGNORE``); a
changed request is a new key (``lure.requests.key``). Only answers are stored: an error is never written, so a
failed request is asked again on the next run. The store keeps each answer's token usage, so a cached answer
reports what it cost when it was obtained. The API key is never written (it is in neither the key nor the row).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from lure.requests.key import canonical_json, request_payload
from lure.requests.models import ChatRequest, Response, TokenLogprob, Usage

#: Layout of the file (tables and columns), in ``PRAGMA user_version``; a file of another layout is refused.
STORE_LAYOUT = 1
#: Keys per ``SELECT … IN (…)`` (SQLite's default limit on host parameters is 32766; stay well below).
_LOOKUP_CHUNK = 900

_CREATE = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    backend TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    logprobs TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    attempts INTEGER NOT NULL
) WITHOUT ROWID
"""


class CacheLayoutError(RuntimeError):
    """The file was written with another layout of the store."""


class ResponseCache:
    """Answers by cache key in one SQLite file (created with its folder when missing).

    Usable from any thread (one connection behind a lock); the runner calls it from its event loop only.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, each INSERT is its own committed transaction.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            layout = self._db.execute("PRAGMA user_version").fetchone()[0]
            empty = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
            if not empty and layout != STORE_LAYOUT:
                self._db.close()
                raise CacheLayoutError(
                    f"{self.path}: answer store layout {layout}, this version reads layout {STORE_LAYOUT}; "
                    "use a new file"
                )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_CREATE)
            self._db.execute(f"PRAGMA user_version={STORE_LAYOUT}")

    def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
        """The stored answers among ``keys`` (``cached=True``, ``attempts=0``, ``usage`` as originally reported)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Response] = {}
        with self._lock:
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                chunk = wanted[start : start + _LOOKUP_CHUNK]
                rows = self._db.execute(
                    "SELECT key, text, finish_reason, logprobs, prompt_tokens, completion_tokens FROM answers "
                    f"WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for key, text, finish, logprobs, prompt, completion in rows:
                    found[key] = _response(text, finish, logprobs, prompt, completion)
        return found

    def get(self, key: str) -> Response | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, identity: Mapping[str, Any], request: ChatRequest, response: Response) -> None:
        """Commit one answer (an ``ok`` response; an error is refused). A key already stored keeps its answer."""
        if response.status != "ok" or response.text is None:
            raise ValueError("only answers are cached, never errors")
        logprobs = (
            None
            if response.logprobs is None
            else canonical_json([t.model_dump(mode="json") for t in response.logprobs])
        )
        usage = response.usage
        row = (
            key,
            time.time(),
            canonical_json(dict(identity)),
            canonical_json(request_payload(request)),
            response.text,
            response.finish_reason,
            logprobs,
            None if usage is None else usage.prompt_tokens,
            None if usage is None else usage.completion_tokens,
            response.attempts,
        )
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO answers VALUES (?,?,?,?,?,?,?,?,?,?)", row)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _response(
    text: str, finish: str | None, logprobs: str | None, prompt: int | None, completion: int | None
) -> Response:
    usage = None if prompt is None or completion is None else Usage(prompt_tokens=prompt, completion_tokens=completion)
    tokens = None if logprobs is None else tuple(TokenLogprob.model_validate(t) for t in json.loads(logprobs))
    return Response(text=text, finish_reason=finish, logprobs=tokens, usage=usage, cached=True, attempts=0)
