"""The pairwise judge prompt (LURE §2.1 "Input representation"): a history block (titles, genres, meta bins), two
candidate blocks and the JSON answer rules, rendered from ``prompts/judge_pairwise.j2``.

Why block by block (:class:`lure.llm.prompts.BlockTemplate`, the machinery of every prompt of the project): the
evidence check needs the exact text of each block on its own. LURE's public code checked a quote against the whole
prompt, so a quote of the prompt's own instructions counted as evidence; here a quote must lie in the block its
source names (:mod:`lure.judge.parse`).

Why an order per pair: LLM judges favour a position. Which item is shown first (as "A") is drawn per pair from the
named stream ``judge.order`` and recorded in the :class:`~lure.judge.schema.Presentation`, so answers are mapped
back to i and j and the position effect can be measured.

Titles come from the catalogue and may contain anything, instructions included. Whitespace runs (newlines too) are
collapsed to one space, so a title cannot start a line that looks like a block header; everything else is rendered
as it is, and Jinja never evaluates the content of a variable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lure.judge.schema import HISTORY, LABELS, Presentation
from lure.llm.prompts import BlockTemplate, Prompt, compose
from lure.rng import generator

DEFAULT_JUDGE_TEMPLATE = "judge_pairwise"
#: Blocks a judge template must define (rendered in the order task, history, (candidate_header, candidate) x 2, answer).
JUDGE_BLOCKS = ("task", "history", "candidate_header", "candidate", "answer")
#: Named random stream of the A/B order.
ORDER_STREAM = "judge.order"


@dataclass(frozen=True)
class JudgeItem:
    """What the judge sees of an item: title, genres, meta bins (pop_bin 0 = most popular, age_bin 0 = oldest)."""

    title: str
    genres: tuple[str, ...]
    pop_bin: int
    age_bin: int


def judge_item(title: str, genres: str | Sequence[str], pop_bin: int, age_bin: int) -> JudgeItem:
    """A :class:`JudgeItem` with whitespace runs collapsed; ``genres`` "|"-joined (the canonical column) or a list."""
    names = genres.split("|") if isinstance(genres, str) else list(genres)
    return JudgeItem(
        title=" ".join(str(title).split()),
        genres=tuple(" ".join(g.split()) for g in names if g.strip()),
        pop_bin=int(pop_bin),
        age_bin=int(age_bin),
    )


@dataclass(frozen=True)
class JudgePrompt:
    """A rendered pairwise prompt: its text and segments, and how the pair was presented (order, block texts)."""

    prompt: Prompt
    presentation: Presentation
    history: tuple[JudgeItem, ...]
    item_i: JudgeItem
    item_j: JudgeItem

    @property
    def text(self) -> str:
        return self.prompt.text


_PROBE_ITEM = JudgeItem("probe", ("probe",), 0, 0)


class JudgeTemplate:
    """A judge template (``prompts/judge_*.j2``) with the blocks of :data:`JUDGE_BLOCKS`."""

    def __init__(self, name: str = DEFAULT_JUDGE_TEMPLATE, directory: str | Path | None = None) -> None:
        self.name = name
        self._template = BlockTemplate(
            name,
            directory,
            required=JUDGE_BLOCKS,
            probe={"history": [_PROBE_ITEM], "item": _PROBE_ITEM, "label": LABELS[0], "labels": LABELS},
        )

    def render(self, history: Sequence[JudgeItem], item_i: JudgeItem, item_j: JudgeItem, i_first: bool) -> JudgePrompt:
        """The prompt for one pair; ``i_first``: item i is shown first, as candidate "A"."""
        block = self._template.block
        shown = (item_i, item_j) if i_first else (item_j, item_i)
        parts = [("task", block("task")), ("history", block("history", history=list(history)))]
        for label, item in zip(LABELS, shown, strict=True):
            parts.append((f"header_{label}", block("candidate_header", label=label)))
            parts.append((f"candidate_{label}", block("candidate", item=item)))
        parts.append(("answer", block("answer", labels=LABELS)))
        prompt = compose(parts)
        first, second = ("i", "j") if i_first else ("j", "i")
        blocks = {
            HISTORY: prompt.segment_text("history"),
            first: prompt.segment_text(f"candidate_{LABELS[0]}"),
            second: prompt.segment_text(f"candidate_{LABELS[1]}"),
        }
        return JudgePrompt(prompt, Presentation(bool(i_first), blocks), tuple(history), item_i, item_j)


def presentation_orders(n: int, seed: int) -> np.ndarray:
    """Per pair, whether item i is shown first: a fair coin per pair from the stream ``judge.order``."""
    return generator(seed, ORDER_STREAM).random(n) < 0.5


def user_histories(train: pd.DataFrame, users: np.ndarray, max_items: int) -> dict[int, np.ndarray]:
    """Each user's last ``max_items`` training items (item ids, oldest first; a repeated item counts at its last
    interaction). Ties in time go to the row order of ``train``."""
    wanted = np.unique(np.asarray(users, dtype=np.int64))
    rows = train.loc[train["user_id"].isin(wanted), ["user_id", "item_id", "timestamp"]]
    rows = rows.reset_index(drop=True).rename_axis("row").reset_index()
    rows = rows.sort_values(["user_id", "timestamp", "row"], kind="stable")
    rows = rows.drop_duplicates(["user_id", "item_id"], keep="last")
    out = {int(u): np.empty(0, dtype=np.int64) for u in wanted}
    if max_items == 0:
        return out
    for u, group in rows.groupby("user_id", sort=False):
        out[int(u)] = group["item_id"].to_numpy(np.int64)[-max_items:]
    return out


def judge_prompts(
    pairs: pd.DataFrame,
    items: pd.DataFrame,
    train: pd.DataFrame,
    history_items: int,
    seed: int,
    template: JudgeTemplate | None = None,
    i_first: np.ndarray | Sequence[bool] | None = None,
) -> list[JudgePrompt]:
    """One prompt per row of ``pairs`` (user_id, item_i, item_j), in row order.

    ``items``: the prepared catalogue (item_id 0..n-1 in order; title, genres, pop_bin, age_bin); ``train``: the
    interactions the history is taken from (user_id, item_id, timestamp: the pairs' training split). ``i_first``:
    per pair, whether item i is shown first; None (default): a fair coin per pair (:func:`presentation_orders`).
    Logprob mode judges every pair in both orders (``i_first`` all true, then all false; :mod:`lure.judge.logprob`).
    """
    tpl = template or JudgeTemplate()
    if not np.array_equal(items["item_id"].to_numpy(), np.arange(len(items))):
        raise ValueError("items.item_id must be 0..n-1 in order")
    catalogue = [
        judge_item(t, g, p, a)
        for t, g, p, a in zip(items["title"], items["genres"], items["pop_bin"], items["age_bin"], strict=True)
    ]
    users = pairs["user_id"].to_numpy(np.int64)
    histories = user_histories(train, users, history_items)
    if i_first is None:
        orders = presentation_orders(len(pairs), seed)
    else:
        orders = np.asarray(i_first, dtype=bool)
        if orders.shape != (len(pairs),):
            raise ValueError(f"i_first needs one value per pair ({len(pairs)}), got shape {orders.shape}")
    out = []
    for u, i, j, first in zip(
        users, pairs["item_i"].to_numpy(np.int64), pairs["item_j"].to_numpy(np.int64), orders, strict=True
    ):
        history = [catalogue[h] for h in histories[int(u)]]
        out.append(tpl.render(history, catalogue[i], catalogue[j], bool(first)))
    return out
