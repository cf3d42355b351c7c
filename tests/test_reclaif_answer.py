"""The RecLAIF answer parser and the ValidRatio rule, on hand-written answers."""

from __future__ import annotations

import pytest

from lure.reclaif.answer import match_line, normalise, parse_answer, read_answer

CANDIDATES = [
    "Bassnectar",
    "The Horrors",
    "Band of Skulls",
    "Catherine Wheel",
    "Snow Patrol",
    "Heat",
    "Heat 2",
]

PAPER_ANSWER = """**Key Preferences:**
- Preference 1: Alternative/Indie Rock and Electronic/Synthpop genres
- Preference 2: Dark, moody, and atmospheric vibes
- Preference 3: Female vocals

**Recommended Artists/Bands (from most to least likely):**
1. The Horrors - Their music blends alternative rock with electronic and synth-pop elements.
2. Band of Skulls - This alternative rock band has a moody and atmospheric sound.
3. **Catherine Wheel** - With their blend of alternative rock and electronic influences.

The recommendations focus on aligning with the user's identified preferences."""


def test_the_papers_example_answer_is_valid_with_three_preferences_and_reasons() -> None:
    m = read_answer(PAPER_ANSWER, CANDIDATES, k=3)
    assert m.valid and m.invalid is None
    assert m.preferences == (
        "Alternative/Indie Rock and Electronic/Synthpop genres",
        "Dark, moody, and atmospheric vibes",
        "Female vocals",
    )
    assert m.picks == (1, 2, 3)
    assert m.reasons[0] == "Their music blends alternative rock with electronic and synth-pop elements."
    assert m.ranked() == [1, 2, 3]


def test_compact_answer_with_quoted_titles() -> None:
    text = 'Key preferences: Drama; Comedy\n1. "Heat 2" - fits Drama\n2. "snow  patrol" - adds Comedy\n'
    m = read_answer(text, CANDIDATES, k=2)
    assert m.valid
    assert m.preferences == ("Drama", "Comedy")
    assert m.picks == (6, 4)  # "Heat 2", not its prefix "Heat"; case and spacing do not matter
    assert m.reasons == ("fits Drama", "adds Comedy")


def test_duplicate_item_is_invalid() -> None:
    text = "Key preferences: x\n1. Heat - a\n2. heat - b\n3. Snow Patrol - c"
    m = read_answer(text, CANDIDATES, k=3)
    assert m.invalid == "duplicate"
    assert m.ranked() == [5, 4]  # metrics that read a partial answer see each named candidate once


def test_out_of_candidate_item_is_invalid() -> None:
    text = "Key preferences: x\n1. Radiohead - great\n2. Heat - b\n3. Snow Patrol - c"
    m = read_answer(text, CANDIDATES, k=3)
    assert m.invalid == "out_of_candidates"
    assert m.picks == (-1, 5, 4)


def test_a_name_that_only_starts_like_a_candidate_is_out_of_candidates() -> None:
    # "Heatwave" starts with "heat" but the name does not end there
    assert match_line("Heatwave - summer", CANDIDATES) == (-1, "")


def test_wrong_count_is_invalid() -> None:
    text = "Key preferences: x\n1. Heat - a\n2. Snow Patrol - b"
    assert read_answer(text, CANDIDATES, k=3).invalid == "wrong_count"


@pytest.mark.parametrize("text", ["I would recommend some indie rock bands.", "", "Key preferences: rock"])
def test_free_text_has_no_items(text: str) -> None:
    m = read_answer(text, CANDIDATES, k=3)
    assert m.invalid == "no_items" and not m.valid and m.ranked() == []


def test_bullets_after_a_recommendation_header_are_items_when_nothing_is_numbered() -> None:
    text = "Key Preferences:\n- Preference 1: rock\nRecommended artists:\n- Heat: loud\n- Bassnectar: bass"
    answer = parse_answer(text)
    assert answer.preferences == ("rock",)
    assert answer.lines == ("Heat: loud", "Bassnectar: bass")
    m = read_answer(text, CANDIDATES, k=2)
    assert m.valid and m.picks == (5, 0) and m.reasons == ("loud", "bass")


def test_normalise() -> None:
    assert normalise("  **“The  Horrors”** ") == "the horrors"
