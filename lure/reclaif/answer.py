"""A recommender's answer (RecLAIF §4.1, Eq. 3): key preferences K_u, then a ranked top-k R_u with a reason each.

Parsing is lenient about layout and strict about items, so the same parser reads the paper's markdown format
("**Key Preferences:**", "- Preference 1: ...", "1. Name - Reason") and the compact one of the tiny models
("Key preferences: a; b", '1. "Name" - reason').

**Preferences**: the text after "Key preferences:" on its line, split at ';', plus the bullet lines that follow
("- Preference 1: x" gives x), up to the first numbered line or a line that mentions "recommend".

**Items**: the numbered lines ("1. ...", "2) ...") after the preferences; when there are none, the bullet lines after
a line that mentions "recommend". Markdown emphasis (``*``, ``_``, backticks) is dropped.

**The matching rule** (what ``ValidRatio`` counts, docs/reclaif.md): texts are normalised (Unicode NFKC, casefold,
whitespace collapsed, emphasis and surrounding quotes dropped). An item line names the candidate whose normalised
text is the *longest* prefix of the normalised line that ends at the end of the line or before a character that is
not a letter or digit ("Heat 2 - ..." names "Heat 2", not "Heat"). A line that starts with no candidate names
nothing: it is out of the candidate set. The reason is what follows the name, without the separator (" - ", ":",
",", a closing quote).

**Validity**: an answer is valid when it names exactly ``k`` items, each a candidate, none twice.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

#: Why an answer is invalid (``None`` when it is valid).
INVALID_REASONS = ("no_items", "out_of_candidates", "duplicate", "wrong_count")

_NUMBERED = re.compile(r"^\s*(?:#+\s*)?\(?(\d{1,2})[.)]\s*(.*)$")
_BULLET = re.compile(r"^\s*[-*•]\s+(.*)$")
_PREFERENCE = re.compile(r"^\s*(?:preference\s*\d+\s*:\s*)?(.*)$", re.IGNORECASE)
_KEY_PREFERENCES = re.compile(r"key\s+preferences?\s*[:：]?\s*(.*)$", re.IGNORECASE)
_EMPHASIS = re.compile(r"[*_`]+")
_SEPARATOR = re.compile(r'^\s*["”’\']?\s*(?:[-–—:,|]+\s*)?')
_QUOTES = "\"'“”‘’«»"


@dataclass(frozen=True)
class Answer:
    """What an answer says: key preferences, and the item lines in order (each without its number)."""

    preferences: tuple[str, ...]
    lines: tuple[str, ...]


@dataclass(frozen=True)
class MatchedAnswer:
    """An answer read against its candidates: per item line the candidate index it names (-1 = none) and its
    reason; ``invalid`` is None for a valid answer, else one of :data:`INVALID_REASONS`."""

    preferences: tuple[str, ...]
    picks: tuple[int, ...]
    reasons: tuple[str, ...]
    invalid: str | None

    @property
    def valid(self) -> bool:
        return self.invalid is None

    def ranked(self) -> list[int]:
        """Candidate indices in the answer's order: named candidates only, each once (its first mention)."""
        seen: list[int] = []
        for p in self.picks:
            if p >= 0 and p not in seen:
                seen.append(p)
        return seen


def normalise(text: str) -> str:
    """NFKC, casefold, no emphasis marks, collapsed whitespace, no surrounding quotes."""
    text = _EMPHASIS.sub("", unicodedata.normalize("NFKC", text)).casefold()
    return " ".join(text.split()).strip(_QUOTES + " ")


def _clean(line: str) -> str:
    return _EMPHASIS.sub("", line).strip()


def parse_answer(text: str) -> Answer:
    """The preferences and item lines of ``text`` (see the module docstring); never raises."""
    lines = [_clean(x) for x in text.splitlines()]
    preferences: list[str] = []
    items: list[str] = []
    section = "start"
    bullets_after_header: list[str] = []
    for line in lines:
        if not line:
            continue
        key = _KEY_PREFERENCES.search(line)
        numbered = _NUMBERED.match(line)
        if key and not numbered:
            section = "preferences"
            preferences.extend(p.strip() for p in key.group(1).split(";") if p.strip())
            continue
        if numbered:
            section = "items"
            items.append(numbered.group(2).strip())
            continue
        if "recommend" in line.casefold():
            section = "header"
            continue
        bullet = _BULLET.match(line)
        if section == "preferences" and bullet:
            found = _PREFERENCE.match(bullet.group(1))
            if found and found.group(1).strip():
                preferences.append(found.group(1).strip())
        elif section == "header" and bullet:
            bullets_after_header.append(bullet.group(1).strip())
    return Answer(tuple(preferences), tuple(items or bullets_after_header))


def _name_ends(line: str, end: int) -> bool:
    return end == len(line) or not line[end].isalnum()


def match_line(line: str, candidates: Sequence[str]) -> tuple[int, str]:
    """(index of the candidate ``line`` names, or -1; the reason after it) under the longest-prefix rule."""
    norm_line = normalise(line)
    best, best_len = -1, -1
    for i, cand in enumerate(candidates):
        norm = normalise(cand)
        if norm and norm_line.startswith(norm) and _name_ends(norm_line, len(norm)) and len(norm) > best_len:
            best, best_len = i, len(norm)
    if best < 0:
        return -1, ""
    rest = _strip_name(line, candidates[best])
    return best, _SEPARATOR.sub("", rest, count=1).strip()


def _strip_name(line: str, name: str) -> str:
    """``line`` after its leading ``name`` (compared normalised, so quotes and case may differ)."""
    target = normalise(name)
    stripped = line.lstrip(_QUOTES + " ")
    for end in range(len(stripped) + 1):
        if normalise(stripped[:end]) == target:
            return stripped[end:]
    return ""


def match_answer(answer: Answer, candidates: Sequence[str], k: int) -> MatchedAnswer:
    """``answer`` against the candidate texts; validity as in the module docstring."""
    matched = [match_line(line, candidates) for line in answer.lines]
    picks = tuple(m[0] for m in matched)
    reasons = tuple(m[1] for m in matched)
    if not picks:
        invalid: str | None = "no_items"
    elif any(p < 0 for p in picks):
        invalid = "out_of_candidates"
    elif len(set(picks)) != len(picks):
        invalid = "duplicate"
    elif len(picks) != k:
        invalid = "wrong_count"
    else:
        invalid = None
    return MatchedAnswer(answer.preferences, picks, reasons, invalid)


def read_answer(text: str, candidates: Sequence[str], k: int) -> MatchedAnswer:
    """:func:`parse_answer` then :func:`match_answer`."""
    return match_answer(parse_answer(text), candidates, k)


def write_answer(preferences: Sequence[str], titles: Sequence[str], reasons: Sequence[str], style: str) -> str:
    """An answer in the ``compact`` format of ``reclaif_compact.j2`` or the ``paper`` markdown format of §4.1."""
    if style == "compact":
        head = "Key preferences: " + "; ".join(preferences)
        lines = [f'{r}. "{t}" - {why}' for r, (t, why) in enumerate(zip(titles, reasons, strict=True), start=1)]
        return "\n".join([head, *lines])
    if style == "paper":
        prefs = [f"- Preference {n}: {p}" for n, p in enumerate(preferences, start=1)]
        lines = [f"{r}. {t} - {why}" for r, (t, why) in enumerate(zip(titles, reasons, strict=True), start=1)]
        return "\n".join(["Key Preferences:", *prefs, "", "Recommended (from most to least likely):", *lines])
    raise ValueError(f"unknown answer style {style!r}; expected 'compact' or 'paper'")


def rewrite_answer(answer: MatchedAnswer, candidates: Sequence[str], style: str) -> str:
    """A valid answer written anew in ``style``: its preferences, its ranked candidates by their exact names, its
    reasons. How a model teacher's answer to its own prompt (``reclaif.teacher_template``) becomes an SFT target in
    the format the student is trained to write."""
    if not answer.valid:
        raise ValueError(f"only a valid answer can be rewritten; this one is {answer.invalid}")
    reasons = dict(zip(answer.picks, answer.reasons, strict=True))
    order = answer.ranked()
    return write_answer(answer.preferences, [candidates[j] for j in order], [reasons[j] for j in order], style)
