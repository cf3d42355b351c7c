"""Training objectives for LLM recommenders (GDRT: group-DRO over token groups, see docs/gdrt.md).

``GDRTTrainer`` / ``GDRTDataCollator`` are resolved lazily so that importing the pure-torch functions does not
pull in trl.
"""

from typing import Any

from lure.train import gdrt
from lure.train.gdrt import (
    IGNORE_INDEX,
    NO_GROUP,
    TOKEN_GROUPS_COLUMN,
    assign_groups,
    group_dro_loss,
    group_tokens,
    item_relevance,
    response_values,
    token_groups_column,
    token_relevance,
)

__all__ = [
    "IGNORE_INDEX",
    "NO_GROUP",
    "TOKEN_GROUPS_COLUMN",
    "GDRTDataCollator",
    "GDRTTrainer",
    "assign_groups",
    "group_dro_loss",
    "group_tokens",
    "item_relevance",
    "response_values",
    "token_groups_column",
    "token_relevance",
]


def __getattr__(name: str) -> Any:
    if name in ("GDRTDataCollator", "GDRTTrainer"):
        return getattr(gdrt, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
