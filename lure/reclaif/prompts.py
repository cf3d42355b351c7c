"""Rendering RecLAIF's prompts (``prompts/reclaif_*.j2``): the recommender's candidate prompt (§4.1, Eq. 3), the
pairwise judge (§4.2, Eq. 5) and the explainability rater (§5). The templates are whole documents (no blocks): the
recommender is trained on prompt + answer, never on a prompt segment."""

from __future__ import annotations

from collections.abc import Sequence

from lure.layout import TEMPLATE_SUFFIX, prompts_dir
from lure.llm.prompts import template_environment

_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def number_word(k: int) -> str:
    """'three' for 3 (the paper writes "the top three"); digits above ten."""
    return _WORDS[k] if 0 <= k < len(_WORDS) else str(k)


def render(template: str, **variables: object) -> str:
    """``prompts/<template>.j2`` rendered with ``variables`` (a missing variable is an error)."""
    env = template_environment(prompts_dir())
    return env.get_template(f"{template}{TEMPLATE_SUFFIX}").render(**variables)


def recommender_prompt(template: str, context: Sequence[str], candidates: Sequence[str], k: int) -> str:
    """The recommender's prompt x = [u, c, I', P_Rec] (Eq. 3): history (or query), candidates, k."""
    return render(template, history=list(context), candidates=list(candidates), k=k, k_word=number_word(k))


def judge_prompt(
    template: str,
    items: str,
    context: Sequence[str],
    candidates: Sequence[str],
    option_a: str,
    option_b: str,
    label: str,
) -> str:
    """The judge's prompt for one pair (Eq. 5): both answers as options A and B and the next item as the label."""
    return render(
        template,
        items=items,
        history=list(context),
        candidates=list(candidates),
        option_a=option_a.strip(),
        option_b=option_b.strip(),
        label=label,
    )


def explain_prompt(template: str, items: str, context: Sequence[str], answer: str) -> str:
    """The explainability rater's prompt for one answer (§5: a score 1-100)."""
    return render(template, items=items, history=list(context), answer=answer.strip())
