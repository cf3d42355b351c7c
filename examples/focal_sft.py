"""A training method added as a plugin: SFT with the focal loss (Lin et al. 2017) on the title tokens.

The worked example of docs/pipeline.md ("Adding a method as a plugin"). This one file is the whole method: its spec
class (joins the ``method`` union), its trainer (TRL's ``SFTTrainer`` with one loss overridden) and its definition
(registered in ``lure.registry.METHODS`` exactly as the built-in SFT and GDRT are). Use it from a spec:

    plugins: [examples.focal_sft]
    method: {name: focal-sft, gamma: 2.0}

    FL = -(1/|T|) sum_t (1 - p_t)^gamma log p_t      (Lin et al. 2017, Eq. 4, without the class weight alpha)

over the |T| title tokens of the batch; gamma = 0 is plain SFT (the token-mean NLL).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from lure.registry import METHODS
from lure.spec.base import Section, structural
from lure.train.methods import MethodDefinition, TrainerSetup, train_stage


class FocalSFTMethod(Section):
    """SFT with the focal loss: hard title tokens (low p_t) weigh more."""

    name: Literal["focal-sft"] = structural("focal-sft", description="Method under study.")
    gamma: float = Field(2.0, ge=0.0, le=10.0, description="Focusing parameter gamma (0 = plain SFT).")


def focal_loss(logits: Any, labels: Any, gamma: float) -> Any:
    """Mean over title tokens of -(1 - p_t)^gamma log p_t; ``labels`` are -100 off the title (shifted inside)."""
    import torch

    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != -100
    log_p = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    weights = (1.0 - log_p.exp()) ** gamma
    return -(weights * log_p)[mask].sum() / mask.sum().clamp_min(1)


def _trainer_class() -> type:
    from trl import SFTTrainer

    class FocalSFTTrainer(SFTTrainer):  # type: ignore[misc,valid-type]
        """``trl.SFTTrainer`` whose loss is the focal loss; nothing else changes."""

        def __init__(self, *args: Any, gamma: float, **kwargs: Any) -> None:
            self.gamma = float(gamma)
            super().__init__(*args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[override]
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), use_cache=False)
            loss = focal_loss(outputs.logits, inputs["labels"], self.gamma)
            return (loss, outputs) if return_outputs else loss

    return FocalSFTTrainer


def _setup(spec: Any, rows: list[dict[str, Any]], windows: Any) -> TrainerSetup:
    gamma = spec.method.gamma
    return TrainerSetup(trainer_cls=_trainer_class(), trainer_kwargs={"gamma": gamma}, key_parts=[gamma])


METHODS.add(
    MethodDefinition(
        "focal-sft",
        _setup,
        spec=FocalSFTMethod,
        reads=("method.gamma",),
        stages=lambda spec: [train_stage(spec, "focal-sft", params=("method.gamma",))],
        description="SFT with the focal loss on title tokens (plugin example)",
    )
)
