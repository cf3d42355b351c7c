"""SFT examples for next-title generation from the canonical window splits.

Each row of ``splits/window_{train,valid,test}.parquet`` (user_id, history = item ids oldest first, item_id =
target) becomes prompt = the rendered next-item prompt of the history titles, completion = target title + the
template's terminator + EOS, with the loss on the completion only (GDRT Eq. 1 sums over target tokens).

Two output forms:

* :func:`sft_examples` / :func:`sft_dataset`: **pre-tokenised** rows ``input_ids``, ``completion_mask``,
  ``labels`` (-100 on prompt tokens), plus ``user_id``/``item_id``. TRL 1.16's ``SFTTrainer`` treats a dataset
  with an ``input_ids`` column as already processed (no re-tokenisation) and keeps an existing ``labels`` column
  as is, so the loss mask is exactly ours. This is the recommended form: the prompt is tokenised segment by
  segment (:func:`lure.llm.prompts.encode_prompt`) and the completion separately, i.e. the very token sequences
  exact ranking and beam search score at inference.
* :func:`sft_text_examples`: ``prompt``/``completion`` strings (TRL's "prompt-completion" format, which turns on
  ``completion_only_loss``). TRL then tokenises ``prompt`` and ``prompt + completion`` itself; with BPE the
  boundary (the opening quote and the title's first word) may merge, which TRL warns about, and the training
  tokens then differ from our inference tokens. Use it only for external tooling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lure.layout import Prepared
from lure.llm.prompts import PromptTemplate, encode_completion, encode_prompt, render_completion, render_prompt

IGNORE_INDEX = -100


def title_lookup(items: pd.DataFrame) -> dict[int, str]:
    """item_id -> title from ``items.parquet``."""
    return dict(zip(items["item_id"].astype(int), items["title"].astype(str), strict=True))


def _history_titles(history: Sequence[int], titles: Mapping[int, str]) -> list[str]:
    return [titles[int(i)] for i in history]


def sft_text_examples(
    windows: pd.DataFrame, titles: Mapping[int, str], template: PromptTemplate | str | None = None
) -> list[dict[str, Any]]:
    """Prompt-completion strings, one per window row (the completion has no EOS: TRL appends the tokenizer's)."""
    return [
        {
            "prompt": render_prompt(_history_titles(h, titles), template).text,
            "completion": render_completion(titles[int(t)], template),
            "user_id": int(u),
            "item_id": int(t),
        }
        for u, h, t in zip(windows["user_id"], windows["history"], windows["item_id"], strict=True)
    ]


def sft_examples(
    windows: pd.DataFrame,
    titles: Mapping[int, str],
    tokenizer: Any,
    template: PromptTemplate | str | None = None,
    mask: Sequence[str] = (),
    max_length: int | None = None,
) -> list[dict[str, Any]]:
    """Tokenised SFT rows: ``input_ids``, ``completion_mask`` (1 on completion tokens), ``labels``.

    ``mask`` renders those prompt segments as the placeholder (e.g. GDRT's history-masked relevance pass).
    ``max_length`` drops oldest history items until the row fits, so the target is never truncated.
    """
    rows: list[dict[str, Any]] = []
    cache: dict[int, list[int]] = {}
    for u, h, t in zip(windows["user_id"], windows["history"], windows["item_id"], strict=True):
        t = int(t)
        comp = cache.get(t)
        if comp is None:
            comp = cache[t] = encode_completion(tokenizer, titles[t], template)
        hist = _history_titles(h, titles)
        while True:
            prompt = encode_prompt(tokenizer, render_prompt(hist, template, mask=mask)).input_ids
            if max_length is None or len(prompt) + len(comp) <= max_length or not hist:
                break
            hist = hist[1:]
        rows.append(
            {
                "input_ids": prompt + comp,
                "completion_mask": [0] * len(prompt) + [1] * len(comp),
                "labels": [IGNORE_INDEX] * len(prompt) + comp,
                "user_id": int(u),
                "item_id": t,
            }
        )
    return rows


def sft_dataset(windows: pd.DataFrame, titles: Mapping[int, str], tokenizer: Any, **kwargs: Any) -> Any:
    """:func:`sft_examples` as a ``datasets.Dataset`` ready for ``trl.SFTTrainer(train_dataset=...)``."""
    from datasets import Dataset

    return Dataset.from_list(sft_examples(windows, titles, tokenizer, **kwargs))


#: The random stream of the training-window sample: ``train-*`` and ``gdrt-groups`` must draw the same rows.
TRAIN_WINDOWS = "windows.train"


def sample_windows(windows: pd.DataFrame, max_samples: int | None, seed: int, stream: str) -> pd.DataFrame:
    """A seeded sample of ``max_samples`` windows (all when None or fewer), in their original order, drawn from the
    named random stream ``stream`` (``lure.rng``).

    Training and evaluation draw through this one function, so every method sees the same rows for a given seed;
    stages that must see the same rows (``train-*`` and ``gdrt-groups``) use the same stream name.
    """
    import numpy as np

    from lure.rng import generator

    if max_samples is None or len(windows) <= max_samples:
        return windows.reset_index(drop=True)
    idx = np.sort(generator(seed, stream).choice(len(windows), size=max_samples, replace=False))
    return windows.iloc[idx].reset_index(drop=True)


def load_window_split(prepared: Any, split: str) -> pd.DataFrame:
    """The window split ``split`` of a prepared dataset (GDRT §4.1.1 sliding windows)."""
    return Prepared(prepared).read_split("window", split)


def window_training_interactions(prepared: Any) -> pd.DataFrame:
    """Interactions a classic baseline may learn from in the window protocol (:func:`seen_by_training_windows`)."""
    interactions = Prepared(prepared).read_interactions(columns=["user_id", "item_id", "timestamp"])
    first_valid = int(load_window_split(prepared, "valid")["timestamp"].min())
    return seen_by_training_windows(interactions, load_window_split(prepared, "train"), first_valid)


def seen_by_training_windows(interactions: pd.DataFrame, train: pd.DataFrame, first_valid: int) -> pd.DataFrame:
    """What the training windows see, from the interactions in canonical (user, time) order.

    The split is global by target time. When the time cut separates the parts (every training target earlier than
    ``first_valid``, the first validation target's time), that is everything before ``first_valid``. When it does
    not -- a dataset without time (LastFM: every timestamp 0), where the split orders tied targets by user and
    position -- it is, per user, the interactions up to the last training target: a user's training windows are a
    prefix of the user's sequence, so the first ``windows + 1`` interactions."""
    if train.empty or int(train["timestamp"].max()) < first_valid:
        return interactions[interactions["timestamp"] < first_valid].reset_index(drop=True)
    windows = train.groupby("user_id").size()
    position = interactions.groupby("user_id").cumcount().to_numpy()
    keep = position <= interactions["user_id"].map(windows).fillna(-1).to_numpy()
    return interactions[keep].reset_index(drop=True)


#: The fitted model's file in :func:`lure.layout.window_model_dir`.
WINDOW_MODEL_FILE = "model.pkl"


def fit_window_model(name: str, eval_spec: Any, prepared: Any, seed: int) -> Any:
    """Zoo model ``name`` fitted on what the window protocol's training windows see
    (:func:`window_training_interactions`), over every user and item of the prepared dataset, with the seed stream
    ``zoo.<name>``. Fitted once per pipeline (stage ``window-<name>``) and scored by every stage that ranks with it."""
    from lure.models.zoo import build_model
    from lure.rng import int_seed

    prepared = Prepared(prepared)
    train = window_training_interactions(prepared)
    users = prepared.read_interactions(columns=["user_id"])["user_id"]
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = len(prepared.read_items(columns=["item_id"]))
    return build_model(name, eval_spec).fit(train, n_users, n_items, int_seed(seed, f"zoo.{name}"))


def save_window_model(model: Any, folder: Path) -> None:
    """Pickle a fitted zoo model into ``folder`` (written to a temporary name, then moved: never half-written)."""
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WINDOW_MODEL_FILE + ".tmp")
    with tmp.open("wb") as f:
        pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(folder / WINDOW_MODEL_FILE)


def load_window_model(folder: Path) -> Any:
    """The zoo model :func:`save_window_model` wrote (a pipeline's own output: trusted)."""
    import pickle

    path = Path(folder) / WINDOW_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no fitted window model; run its stage (dvc repro) first")
    with path.open("rb") as f:
        return pickle.load(f)
