"""Prompt templates with addressable segments (task description, user history, response prefix).

Why segments: GDRT (Eq. 2/3) scores a target with the user history masked to a placeholder (the paper's 'N/A',
the template's ``masked`` block), and its feature-ablation analysis attributes predictions to the task, history and
prefix tokens separately. Both need
to know exactly where each segment starts and ends, in characters and in tokens. A template in ``prompts/*.j2``
therefore consists of named Jinja blocks only: the prompt segments (``task``, ``history``, ``response`` by
default, rendered in that order), ``completion`` (the target title followed by the closing terminator, e.g. the
closing quote) and ``masked`` (what a masked segment is replaced with — the one placeholder of Eq. 2, Eq. 3 and the
feature ablation). Rendering block by block gives exact
character spans without any marker parsing, and every piece of prompt text stays in the template.

The block machinery itself (:class:`BlockTemplate`: load, check that no text stands outside a block, render one
block, compose segments with their spans) is shared by every prompt of the project; the LLM judge's pairwise prompt
(``prompts/judge_pairwise.j2``, :mod:`lure.judge.prompt`) uses it too, so that the exact text of each block is known
to its evidence check. Templates are rendered in a sandboxed Jinja environment (:func:`template_environment`): the
variables carry item titles, which are data from the catalogue, and a sandbox keeps a hostile template or value from
reaching Python internals; ``StrictUndefined`` makes a missing variable an error rather than an empty string.

Token spans come from :func:`encode_prompt`, which tokenises segment by segment and concatenates, so a BPE merge
never straddles two segments; training (``lure.llm.data``), exact ranking and beam search all use the same
function, so the model sees identical token sequences at training and inference time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from lure.layout import TEMPLATE_SUFFIX, prompts_dir

DEFAULT_TEMPLATE = "next_item"
#: Prompt segments in rendering order; the template must define a block for each.
SEGMENTS: tuple[str, ...] = ("task", "history", "response")
COMPLETION_BLOCK = "completion"
MASK_BLOCK = "masked"


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its text and the half-open character span ``[start, end)`` of each segment."""

    text: str
    segments: dict[str, tuple[int, int]]
    masked: frozenset[str] = field(default_factory=frozenset)

    def segment_text(self, name: str) -> str:
        start, end = self.segments[name]
        return self.text[start:end]


@dataclass(frozen=True)
class EncodedPrompt:
    """Token ids of a prompt (BOS first when the tokenizer has one) and each segment's token span."""

    input_ids: list[int]
    segments: dict[str, tuple[int, int]]


def template_environment(directory: str | Path) -> SandboxedEnvironment:
    """The Jinja environment of the templates in ``directory`` (one per folder, cached): sandboxed, strict about
    undefined variables, no autoescaping (prompts are not HTML), trailing newlines kept."""
    return _environment(str(directory))


@lru_cache(maxsize=8)
def _environment(directory: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        autoescape=False,
        keep_trailing_newline=True,
    )


class BlockTemplate:
    """A ``prompts/<name>.j2`` template that consists of named blocks only, rendered one block at a time.

    ``required``: blocks the template must define. ``probe``: variables that render every block; the whole template
    rendered with them must equal its blocks rendered one by one, i.e. no text stands outside a block (it would belong
    to no segment, and every span would be off).
    """

    def __init__(
        self,
        name: str,
        directory: str | Path | None = None,
        required: Sequence[str] = (),
        probe: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.directory = Path(directory) if directory is not None else prompts_dir()
        self._template = template_environment(self.directory).get_template(f"{name}{TEMPLATE_SUFFIX}")
        missing = [b for b in required if b not in self._template.blocks]
        if missing:
            raise ValueError(f"template {name!r} lacks block(s) {missing}")
        variables = dict(probe or {})
        outside = self._template.render(**variables)
        inside = "".join(self.block(b, **variables) for b in self._template.blocks)
        if outside != inside:
            raise ValueError(f"template {name!r} has text outside its blocks")

    @property
    def blocks(self) -> tuple[str, ...]:
        """The template's block names, in the order they appear."""
        return tuple(self._template.blocks)

    def block(self, name: str, **variables: Any) -> str:
        """The text of block ``name`` rendered with ``variables``."""
        ctx = self._template.new_context(variables)
        return "".join(self._template.blocks[name](ctx))


def compose(parts: Sequence[tuple[str, str]], masked: Iterable[str] = ()) -> Prompt:
    """Concatenate (segment name, text) parts into a :class:`Prompt` with each segment's character span."""
    spans: dict[str, tuple[int, int]] = {}
    pos = 0
    for name, text in parts:
        if name in spans:
            raise ValueError(f"segment {name!r} appears twice")
        spans[name] = (pos, pos + len(text))
        pos += len(text)
    return Prompt("".join(text for _, text in parts), spans, frozenset(masked))


class PromptTemplate(BlockTemplate):
    """A next-item ``prompts/<name>.j2`` template; see the module docstring for the block contract.

    ``directory`` defaults to :func:`lure.layout.prompts_dir` (the project's ``prompts/``, else the packaged copy).
    """

    def __init__(
        self, name: str = DEFAULT_TEMPLATE, directory: str | Path | None = None, segments: Sequence[str] = SEGMENTS
    ) -> None:
        self.segments = tuple(segments)
        super().__init__(
            name,
            directory,
            required=(*self.segments, COMPLETION_BLOCK, MASK_BLOCK),
            probe={"history": [], "target": ""},
        )
        self.mask_text = self.block(MASK_BLOCK)

    def render(self, history: Sequence[str], mask: Iterable[str] = ()) -> Prompt:
        """Render the prompt for ``history`` (titles, oldest first); segments in ``mask`` become the mask text."""
        masked = frozenset(mask)
        unknown = masked - set(self.segments)
        if unknown:
            raise ValueError(f"unknown segment(s) {sorted(unknown)}; segments are {self.segments}")
        parts = [
            (name, self.mask_text if name in masked else self.block(name, history=list(history)))
            for name in self.segments
        ]
        return compose(parts, masked)

    def completion(self, title: str) -> str:
        """The text that follows the prompt for target ``title``: the title and the template's terminator."""
        return self.block(COMPLETION_BLOCK, target=title)


def load_template(name: str = DEFAULT_TEMPLATE, directory: str | None = None) -> PromptTemplate:
    """Cached :class:`PromptTemplate` by name (templates are immutable files, parsing them once is enough).

    The folder is resolved before the cache is consulted, so a change of directory never serves another
    project's template.
    """
    return _load_template(name, str(prompts_dir() if directory is None else directory))


@lru_cache(maxsize=16)
def _load_template(name: str, directory: str) -> PromptTemplate:
    return PromptTemplate(name, directory)


def _template(template: PromptTemplate | str | None) -> PromptTemplate:
    if isinstance(template, PromptTemplate):
        return template
    return load_template(template or DEFAULT_TEMPLATE)


def render_prompt(
    history_titles: Sequence[str], template: PromptTemplate | str | None = None, mask: Iterable[str] = ()
) -> Prompt:
    """Render the next-item prompt for a history of titles (oldest first)."""
    return _template(template).render(history_titles, mask)


def render_masked(
    history_titles: Sequence[str], segment: str = "history", template: PromptTemplate | str | None = None
) -> Prompt:
    """The prompt with ``segment`` replaced by the placeholder (GDRT Eq. 2/3 mask the user history)."""
    return _template(template).render(history_titles, mask=(segment,))


def render_completion(title: str, template: PromptTemplate | str | None = None) -> str:
    """Target title plus the template's terminator (the tokenizer's EOS is appended at the token level)."""
    return _template(template).completion(title)


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (BOS/EOS are placed explicitly by the callers)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_prompt(tokenizer: Any, prompt: Prompt, add_bos: bool = True) -> EncodedPrompt:
    """Tokenise segment by segment so every token belongs to exactly one segment; token spans are half-open."""
    ids: list[int] = []
    if add_bos and tokenizer.bos_token_id is not None:
        ids.append(int(tokenizer.bos_token_id))
    spans: dict[str, tuple[int, int]] = {}
    for name, (start, end) in sorted(prompt.segments.items(), key=lambda kv: kv[1]):
        seg = encode_text(tokenizer, prompt.text[start:end])
        spans[name] = (len(ids), len(ids) + len(seg))
        ids.extend(seg)
    return EncodedPrompt(ids, spans)


def encode_completion(tokenizer: Any, title: str, template: PromptTemplate | str | None = None) -> list[int]:
    """Token ids the model must generate for ``title``: the completion text, then the tokenizer's EOS.

    This is the single definition of "an item as a token sequence" shared by the trie, exact ranking and the
    SFT labels; the terminator comes from the template and the tokenizer, never from hard-coded ids.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer needs an EOS token to terminate item titles")
    return encode_text(tokenizer, render_completion(title, template)) + [int(tokenizer.eos_token_id)]


#: Stands in for the target while the completion block is split into the text before and after the title.
_TARGET_SENTINEL = "\x00"


def completion_affixes(template: PromptTemplate | str | None = None) -> tuple[str, str]:
    """The completion block's text before and after the title (``("", '"')`` for the shipped templates).

    The text after the title is the template's terminator (the closing quote). Rendering a sentinel instead of a
    title finds both without parsing the template, so any completion block that prints the target once works.
    """
    parts = _template(template).completion(_TARGET_SENTINEL).split(_TARGET_SENTINEL)
    if len(parts) != 2:
        raise ValueError("the completion block must print the target exactly once")
    return parts[0], parts[1]


def completion_title_span(tokenizer: Any, title: str, template: PromptTemplate | str | None = None) -> tuple[int, int]:
    """Half-open span of the title's own tokens within :func:`encode_completion` (terminator and EOS outside it).

    Why: GDRT's Eq. 2 averages log-probabilities over "the tokens for each item"; the completion also carries the
    template's terminator (the closing quote) and the EOS, which every item shares and which follow from the title
    itself rather than from the prompt. Callers that score an item by its title select these tokens.

    A token is a title token when its characters overlap the title's (tokenizer offsets), so a BPE merge that
    straddles the end of the title and the terminator (e.g. ``)"``) counts as a title token: it is the model's
    prediction of the title's last characters. Tokenizers without offsets (slow ones) fall back to encoding the
    text up to the title's end, which must then be a token prefix of the completion.
    """
    before, after = completion_affixes(template)
    text = render_completion(title, template)
    if text != before + title + after:
        raise ValueError(f"the completion block changes the title it prints: {text!r}")
    start, end = len(before), len(before) + len(title)
    ids = encode_text(tokenizer, text)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if list(enc["input_ids"]) != ids:  # pragma: no cover - the same call without offsets
            raise ValueError("offsets were computed for another tokenisation")
        inside = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start]
        if not inside:
            raise ValueError(f"no token of {title!r} overlaps the title")
        return inside[0], inside[-1] + 1
    head, through = encode_text(tokenizer, before), encode_text(tokenizer, before + title)
    if ids[: len(head)] != head or ids[: len(through)] != through or len(through) == len(head):
        raise ValueError(f"cannot separate the title's tokens of {title!r} without tokenizer offsets")
    return len(head), len(through)
