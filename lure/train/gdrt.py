"""GDRT: Group-DRO-based tuning against language bias in LLM recommenders.

Paper: "Does LLM Focus on the Right Words? Diagnosing Language Bias in LLM-based Recommenders" (§3, App. A.1).

Pipeline (see docs/gdrt.md):

1. ``token_relevance`` — r(y_t) = log P(y_t | x_task, y_<t) from one forward pass of the (reference) model on the
   prompt whose user history was replaced by 'N/A' (Eq. 3).
2. ``group_tokens`` — K-means over all training-set token relevances into G groups (§3, footnote 1).
3. ``group_dro_loss`` — closed-form Group DRO (Eq. 4 → Lemma 1 / Eq. 5): L = Σ_g Q(g)·L(g), Q = softmax(L/τ),
   with Q treated as a constant (the worst-case distribution of the inner max), so its gradient is Σ_g Q(g)·∇L(g).
4. ``GDRTTrainer`` — ``trl.SFTTrainer`` whose ``compute_loss`` swaps the token mean of Eq. 1 for ``group_dro_loss``
   on the same single forward pass; per-token group ids travel in a ``token_groups`` dataset column.

Group order convention (used everywhere here): **group 0 = most relevant to the auxiliary tokens** (highest r,
the paper's "Group 1"), group G-1 = least relevant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

IGNORE_INDEX = -100
"""Label value for tokens outside the response (HF/TRL convention)."""

NO_GROUP = -1
"""``token_groups`` value for tokens that carry no loss (prompt, padding)."""

TOKEN_GROUPS_COLUMN = "token_groups"
"""Dataset column holding one group id per position, aligned with ``labels``."""


# --------------------------------------------------------------------------------------------------------------------
# Eq. 3 / Eq. 2: relevance to auxiliary tokens
# --------------------------------------------------------------------------------------------------------------------
def token_relevance(logits_masked: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token relevance to the auxiliary tokens, r(y_t) = log P(y_t | x_task, y_<t) (Eq. 3).

    ``logits_masked`` come from a forward pass on the prompt with the user history replaced by 'N/A' followed by
    the response, so the only conditioning left is the task text and the response prefix (the auxiliary tokens).
    Causal-LM shift: the logits at position t-1 score the label at position t.

    Args:
        logits_masked: ``(B, T, V)`` logits of the masked prompt + response.
        labels: ``(B, T)`` token ids of the same sequence, ``-100`` on every non-response token.

    Returns:
        ``(B, T)`` float32 tensor aligned with ``labels``: r(y_t) at response positions, NaN elsewhere (NaN rather
        than 0 because 0 is a legitimate log-probability limit and must not be mistaken for a score).
    """
    if logits_masked.dim() != 3 or labels.shape != logits_masked.shape[:2]:
        raise ValueError(
            f"expected logits (B,T,V) and labels (B,T); got {tuple(logits_masked.shape)}, {tuple(labels.shape)}"
        )
    shift_logits = logits_masked[:, :-1].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    logp = torch.log_softmax(shift_logits, dim=-1).gather(-1, shift_labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    out = torch.full(labels.shape, float("nan"), dtype=torch.float32, device=labels.device)
    out[:, 1:] = torch.where(mask, logp, torch.full_like(logp, float("nan")))
    return out


def item_relevance(token_rel: torch.Tensor) -> torch.Tensor:
    """Item-wise relevance r(y) = (1/|y|) Σ_t log P(y_t | x_task, y_<t) (Eq. 2): the NaN-mean of ``token_relevance``.

    Used for the MGU/DGU item groups (§2.2.2, §4.1.4), where the paper scores whole titles rather than tokens.
    """
    return torch.nanmean(token_rel, dim=-1)


def response_values(values: torch.Tensor, labels: torch.Tensor) -> list[np.ndarray]:
    """Per-row 1-D arrays of ``values`` at the response positions (``labels != -100``), in order.

    The masked prompt ('N/A' history) is shorter than the real one, so relevances are carried between the two by
    the *order* of response tokens, not by absolute position. This relies on the response being tokenised the same
    way in both sequences (true when the response ids are appended to the prompt ids, as TRL's prompt-completion
    path does).
    """
    mask = labels != IGNORE_INDEX
    return [values[i][mask[i]].detach().cpu().numpy() for i in range(values.shape[0])]


def token_groups_column(labels: Sequence[int], groups: Sequence[int]) -> list[int]:
    """Spread the response tokens' group ids over a ``labels`` row: ``NO_GROUP`` where the label is ``-100``.

    The result is the ``token_groups`` column the ``GDRTDataCollator`` pads alongside ``labels``.
    """
    labels = list(labels)
    n_resp = sum(1 for lab in labels if lab != IGNORE_INDEX)
    if n_resp != len(groups):
        raise ValueError(f"{n_resp} response tokens but {len(groups)} group ids")
    it = iter(int(g) for g in groups)
    return [next(it) if lab != IGNORE_INDEX else NO_GROUP for lab in labels]


@torch.inference_mode()
def dataset_token_relevance(
    model: Any, masked_rows: Sequence[dict[str, Any]], pad_id: int, batch: int = 64
) -> list[np.ndarray]:
    """Eq. 3 for every response token of pre-tokenised rows whose prompt has the history masked as 'N/A'.

    Rows are right-padded per batch (causal attention keeps padding from influencing earlier positions); returns one
    array per row in response-token order (see :func:`response_values`).
    """
    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    model.eval()
    for start in range(0, len(masked_rows), batch):
        rows = masked_rows[start : start + batch]
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.as_tensor(r["input_ids"])
            labels[i, :n] = torch.as_tensor(r["labels"])
            attn[i, :n] = 1
        logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits
        out.extend(response_values(token_relevance(logits, labels.to(device)), labels.to(device)))
    return out


# --------------------------------------------------------------------------------------------------------------------
# §3 "Token Grouping by Relevance with Auxiliary Tokens"
# --------------------------------------------------------------------------------------------------------------------
def group_tokens(
    relevance: np.ndarray,
    groups: int,
    seed: int = 0,
    method: Literal["kmeans", "quantile"] = "kmeans",
) -> tuple[np.ndarray, np.ndarray]:
    """Partition token relevances into ``groups`` groups (§3: K-means via scikit-learn, footnote 1).

    Groups are re-labelled by centre in **descending** order, so group 0 holds the tokens most predictable from the
    auxiliary tokens alone (the paper's "Group 1") and group G-1 the least. K-means labels are arbitrary, so without
    this the group ids would not mean anything across seeds or runs.

    ``method="quantile"`` is footnote 1's alternative ("evenly partitioned according to its magnitude"): equal-count
    bins by rank; the returned centres are then the bins' means.

    Args:
        relevance: 1-D array of r(y_{i,t}) over all training target tokens (Eq. 3); finite values only.
        groups: G, the number of groups (paper tunes {2, 5, 10}).
        seed: K-means ``random_state``.

    Returns:
        ``(assignments, centers)``: int64 group id per token, and the ``(G,)`` centres sorted descending.
    """
    r = np.asarray(relevance, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(r)):
        raise ValueError("relevance must be finite (drop the NaN non-response positions first)")
    if groups < 1:
        raise ValueError("groups must be >= 1")
    if np.unique(r).size < groups:
        raise ValueError(f"{np.unique(r).size} distinct relevance values cannot form {groups} groups")
    if method == "kmeans":
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=groups, n_init=10, random_state=seed).fit(r.reshape(-1, 1))
        raw_centers = km.cluster_centers_.reshape(-1)
        order = np.argsort(-raw_centers, kind="stable")  # new id k <- old cluster order[k]
        remap = np.empty(groups, dtype=np.int64)
        remap[order] = np.arange(groups)
        return remap[km.labels_].astype(np.int64), raw_centers[order]
    if method == "quantile":
        ranks = np.argsort(np.argsort(-r, kind="stable"), kind="stable")  # 0 = most relevant
        assignments = (ranks * groups // r.size).astype(np.int64)
        centers = np.array([r[assignments == g].mean() for g in range(groups)])
        return assignments, centers
    raise ValueError(f"unknown method {method!r}")


def assign_groups(relevance: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Nearest-centre group ids for new tokens (e.g. a validation split) using centres from ``group_tokens``."""
    r = np.asarray(relevance, dtype=np.float64).reshape(-1, 1)
    return np.abs(r - np.asarray(centers, dtype=np.float64).reshape(1, -1)).argmin(axis=1).astype(np.int64)


# --------------------------------------------------------------------------------------------------------------------
# Eq. 4-5, Lemma 1
# --------------------------------------------------------------------------------------------------------------------
def group_dro_loss(
    token_losses: torch.Tensor,
    token_groups: torch.Tensor,
    n_groups: int,
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form Group DRO loss of GDRT (Lemma 1, Eq. 5).

    L(g) = mean of the token losses in group g (Eq. 4, second line); Q(g) = softmax_g(L(g)/τ) (Eq. 5), computed on
    ``L.detach()``: Q is the maximiser of the inner problem of Eq. 4 — a distribution over groups, not a function the
    model should descend through — so the gradient is Σ_g Q(g)·∇L(g) (Danskin), exactly the reweighting the paper
    describes ("groups with higher losses ... receive larger weights"). Groups with no token in this batch have no
    L(g) and are left out of the softmax (Q = 0), rather than contributing a fake zero loss.

    Args:
        token_losses: per-token -log P(y_t | x, y_<t), any shape.
        token_groups: integer group id per token, same shape; ids < 0 (``NO_GROUP``) are ignored (prompt/padding).
        n_groups: G.
        tau: τ > 0, the dual coefficient of the KL constraint (paper tunes {0.1, 0.2, 0.3, 0.5, 1.0}). τ→∞ gives the
            uniform average over present groups, τ→0 the worst (max-loss) group. ``math.inf`` is accepted.

    Returns:
        ``(loss, q, group_losses)``: the scalar loss (with grad), Q ``(G,)`` (detached, 0 for absent groups) and
        L ``(G,)`` (with grad, NaN for absent groups).
    """
    if token_losses.shape != token_groups.shape:
        raise ValueError(f"shape mismatch {tuple(token_losses.shape)} vs {tuple(token_groups.shape)}")
    if not tau > 0:
        raise ValueError("tau must be > 0")
    losses = token_losses.reshape(-1)
    gid = token_groups.reshape(-1).long()
    if (gid >= n_groups).any():
        raise ValueError(f"group id >= n_groups={n_groups}")
    valid = gid >= 0
    safe_gid = torch.where(valid, gid, torch.zeros_like(gid))
    w = valid.to(losses.dtype)
    # masked_fill instead of multiplying by w so that inf/NaN losses on ignored positions cannot leak into the sums
    sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device).index_add(
        0, safe_gid, losses.masked_fill(~valid, 0.0)
    )
    counts = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device).index_add(0, safe_gid, w)
    present = counts > 0
    # clamp keeps the backward of absent groups finite (0/1, not 0/0) — torch.where would otherwise route NaN grads
    means = sums / counts.clamp(min=1.0)
    group_losses = torch.where(present, means, torch.full_like(means, float("nan")))
    if not bool(present.any()):
        q = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device)
        return losses.sum() * 0.0, q, group_losses  # stays attached to the graph: a zero-gradient step
    scaled = means.detach() / tau if math.isfinite(tau) else torch.zeros_like(means)
    q = torch.softmax(scaled.masked_fill(~present, float("-inf")), dim=0).detach()
    loss = (q * means).sum()  # absent groups: q = 0 and means = 0
    return loss, q, group_losses


# --------------------------------------------------------------------------------------------------------------------
# TRL integration
# --------------------------------------------------------------------------------------------------------------------
def _build_trl_classes() -> dict[str, type]:
    """Define the TRL-backed classes on first use: importing trl costs ~6 s, the pure functions above need none of
    it."""
    from trl import SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    @dataclass
    class GDRTDataCollator(DataCollatorForLanguageModeling):  # type: ignore[misc,valid-type]
        """TRL's LM collator plus a padded ``token_groups`` tensor aligned with ``labels``.

        TRL's preparation truncates only ``input_ids``/``labels`` to ``max_length``; the group column is cut here the
        same way (``truncation_mode``) so the three stay aligned. Padding uses ``NO_GROUP``. Group ids must be >= 0
        exactly where the label is not ``-100``, otherwise a token would be trained without a group (or vice versa).
        """

        truncation_mode: str = "keep_start"

        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            if self.padding_free:
                raise ValueError("GDRT needs per-row token groups; padding_free/packing is not supported")
            rows = []
            for ex in examples:
                n = len(ex["input_ids"])
                g = list(ex[TOKEN_GROUPS_COLUMN])
                if len(g) > n:
                    g = g[:n] if self.truncation_mode == "keep_start" else g[len(g) - n :]
                if len(g) != n:
                    raise ValueError(f"token_groups has {len(g)} entries for {n} input ids")
                labels = ex.get("labels", ex["input_ids"])
                has_label = [lab != IGNORE_INDEX for lab in labels]
                has_group = [int(x) >= 0 for x in g]
                if has_label != has_group:
                    raise ValueError("token_groups must be >= 0 exactly at the positions whose label is not -100")
                rows.append(torch.tensor(g, dtype=torch.long))
            stripped = [{k: v for k, v in ex.items() if k != TOKEN_GROUPS_COLUMN} for ex in examples]
            out = super().torch_call(stripped)
            width = out["input_ids"].shape[1]
            groups = torch.full((len(rows), width), NO_GROUP, dtype=torch.long)
            for i, g in enumerate(rows):
                groups[i, : g.numel()] = g
            out[TOKEN_GROUPS_COLUMN] = groups
            return out

    class GDRTTrainer(SFTTrainer):  # type: ignore[misc,valid-type]
        """``trl.SFTTrainer`` with the GDRT objective (Eq. 5) in place of the token-mean NLL (Eq. 1).

        Only ``compute_loss`` changes: one forward pass through TRL's fused LM head yields per-token log-probabilities
        (no full logits are materialised), and ``group_dro_loss`` reweights the token losses by their precomputed group.

        The train dataset must be tokenised (``input_ids``, ``labels`` with -100 off the response) and carry
        ``token_groups`` (see ``token_groups_column``). ``token_groups`` is added to TRL's signature columns, so it
        survives ``remove_unused_columns`` either way; packing / padding-free are rejected (they would merge rows).

        Group means and Q are computed per micro-batch (as in the paper's per-batch dynamic weighting), so the loss is
        not pre-normalised by ``num_items_in_batch``; ``loss_is_scaled_for_ga = False`` makes ``Trainer`` divide it by
        the gradient-accumulation steps. Under data parallelism every rank uses its own Q.
        """

        loss_is_scaled_for_ga = False

        def __init__(self, *args: Any, n_groups: int, tau: float, **kwargs: Any) -> None:
            if n_groups < 1 or not tau > 0:
                raise ValueError("need n_groups >= 1 and tau > 0")
            self.n_groups = int(n_groups)
            self.tau = float(tau)
            targs = kwargs.get("args", args[1] if len(args) > 1 else None)
            if targs is not None and (getattr(targs, "packing", False) or getattr(targs, "padding_free", False)):
                raise ValueError("GDRTTrainer does not support packing or padding_free")
            super().__init__(*args, **kwargs)
            if not isinstance(self.data_collator, GDRTDataCollator):
                if type(self.data_collator) is not DataCollatorForLanguageModeling:
                    raise ValueError("GDRTTrainer needs a GDRTDataCollator (or none, to build one)")
                self.data_collator = GDRTDataCollator(
                    pad_token_id=self.data_collator.pad_token_id,
                    pad_to_multiple_of=self.data_collator.pad_to_multiple_of,
                    truncation_mode=self.args.truncation_mode,
                )
            self.loss_is_scaled_for_ga = False

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if TOKEN_GROUPS_COLUMN not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, TOKEN_GROUPS_COLUMN]

        def compute_loss(
            self,
            model: torch.nn.Module,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: torch.Tensor | int | None = None,
        ) -> torch.Tensor | tuple[torch.Tensor, Any]:
            """GDRT loss from one forward pass; ``num_items_in_batch`` is ignored (per-batch group means, see class)."""
            mode = "train" if self.model.training else "eval"
            inputs = dict(inputs)
            token_groups = inputs.pop(TOKEN_GROUPS_COLUMN, None)
            if token_groups is None:
                raise KeyError(f"batch has no {TOKEN_GROUPS_COLUMN!r}; use GDRTDataCollator and keep the column")
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)
            # fused head: log_probs[:, t] = log P(labels[:, t+1] | ...), zero where the label is -100
            token_losses = -outputs.log_probs
            groups = token_groups[:, 1:].to(token_losses.device)
            groups = torch.where(outputs.label_mask, groups, torch.full_like(groups, NO_GROUP))
            loss, q, group_losses = group_dro_loss(token_losses, groups, self.n_groups, self.tau)

            m = self._metrics[mode]
            num_valid = outputs.label_mask.sum()
            if num_valid > 0:
                m["entropy"].append((outputs.entropy.detach().sum() / num_valid).item())
                m["mean_token_accuracy"].append((outputs.is_top1.sum() / num_valid).item())
                m["sft_loss"].append((token_losses.detach().sum() / num_valid).item())
            for g in range(self.n_groups):
                m[f"gdrt_q_{g}"].append(q[g].item())
                if not torch.isnan(group_losses[g]):
                    m[f"gdrt_loss_{g}"].append(group_losses[g].item())
            if mode == "train" and "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum().item())
                m["num_tokens"] = [self._total_train_tokens]
            if return_outputs:
                with torch.no_grad():
                    outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
                return loss, outputs
            return loss

    for cls in (GDRTDataCollator, GDRTTrainer):  # picklable via the module __getattr__ (spawned dataloader workers)
        cls.__qualname__ = cls.__name__
    return {"GDRTDataCollator": GDRTDataCollator, "GDRTTrainer": GDRTTrainer}


_TRL_CLASSES: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    """Lazy ``GDRTTrainer`` / ``GDRTDataCollator`` (PEP 562), so ``import lure.train`` does not import trl."""
    if name in ("GDRTDataCollator", "GDRTTrainer"):
        if not _TRL_CLASSES:
            _TRL_CLASSES.update(_build_trl_classes())
        return _TRL_CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
