"""The ABPO pipeline as functions the stages (and the seed study, scripts/abpo_seeds.py) call: the prior policy's
bandit log with the SFT recommender's evaluation as round 0, and one method's successive deployments."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lure.abpo.evaluate import EvalContext, round_metrics
from lure.abpo.logs import horizon_feedback, policy_log, round_contexts, window_futures, world_feedback
from lure.abpo.serve import Recommender, zoo_serve
from lure.abpo.train import update_on_log
from lure.abpo.update import UpdateSettings
from lure.display import progress
from lure.layout import LLM_BASE, Prepared, llm_model_dir
from lure.llm.data import load_window_split, sample_windows, title_lookup
from lure.rng import generator, int_seed


def load_recommender(prepared: Prepared, model_spec: Any) -> Recommender:
    """The SFT recommender (stage ``train-sft``), every compared method's starting point."""
    from lure.llm.base import load_trained

    model, tokenizer = load_trained(Path(llm_model_dir("sft")), Path(LLM_BASE), model_spec)
    titles = title_lookup(prepared.read_items(columns=["item_id", "title"]))
    return Recommender.build(model, tokenizer, model_spec.template, titles, model_spec.max_length)


def torch_generator(seed: int, name: str) -> torch.Generator:
    """A torch generator on the named stream (``lure.rng``): the same draws for every compared method."""
    return torch.Generator().manual_seed(int_seed(seed, name))


def feedback(
    prepared: Prepared, windows: pd.DataFrame, actions: np.ndarray, horizon: int, rng: np.random.Generator
) -> np.ndarray:
    """The logged reward of each exposed item: on the world a click with probability r(u, a); on real data 1 iff
    the item is among the user's next ``horizon`` interactions (docs/abpo.md)."""
    relevance = prepared.read_relevance()
    if relevance is not None:
        return world_feedback(relevance, windows["user_id"].to_numpy(), actions, rng)
    interactions = prepared.read_interactions(columns=["user_id", "item_id"])
    return horizon_feedback(window_futures(windows, interactions, horizon), actions, horizon)


def eval_context(
    prepared: Prepared, policy: Recommender, windows: pd.DataFrame, eval_log: pd.DataFrame, log: pd.DataFrame
) -> EvalContext:
    """The evaluation windows with their prompts, the prior policy's log on them and the items it exposed."""
    return EvalContext(
        windows=windows.reset_index(drop=True),
        prompts=policy.prompts(windows),
        eval_log=eval_log,
        prior_exposed=np.unique(log["action"].to_numpy()),
        relevance=prepared.read_relevance(),
    )


def log_summary(log: pd.DataFrame) -> dict[str, float]:
    """How a log looks: its size, positive rate, distinct exposed items and the spread of mu."""
    return {
        "contexts": int(len(log)),
        "positive_rate": float(log["reward"].mean()),
        "distinct_items": int(log["action"].nunique()),
        "mu_mean": float(log["mu"].mean()),
        "mu_min": float(log["mu"].min()),
    }


@dataclass(frozen=True)
class BanditLog:
    """What ``banditlog`` writes: the windows of every round (round 0 = evaluation), round 1's log, the prior
    policy's log on the evaluation windows, and the SFT recommender's evaluation (round 0)."""

    contexts: pd.DataFrame
    log: pd.DataFrame
    eval_log: pd.DataFrame
    round_0: dict[str, float]


def bandit_log(
    prepared: Prepared, policy: Recommender, zoo: Any | None, cfg: Any, seed: int, rank_batch: int
) -> BanditLog:
    """The prior policy (``zoo`` when given, else the SFT recommender ``policy``) serves round 1's training windows
    and the evaluation windows; the SFT recommender is evaluated as round 0. ``cfg``: the ``abpo`` section."""

    def serve(windows: pd.DataFrame, round_: int, name: str) -> pd.DataFrame:
        if zoo is None:
            prompts = policy.prompts(windows)
            actions, mu = policy.serve(prompts, cfg.serving_temperature, torch_generator(seed, f"abpo.{name}"))
        else:
            actions, mu = zoo_serve(zoo, windows, cfg.serving_temperature, generator(seed, f"abpo.{name}"))
        rewards = feedback(prepared, windows, actions, cfg.horizon, generator(seed, f"abpo.{name}.feedback"))
        ids, users, histories = windows["context_id"], windows["user_id"], windows["history"]
        return policy_log(round_, ids, users, histories, actions, mu, rewards, f"prior:{cfg.prior}")

    train = load_window_split(prepared, "train")
    contexts = round_contexts(train, cfg.rounds, cfg.contexts, generator(seed, "abpo.contexts"))
    test = sample_windows(load_window_split(prepared, "test"), cfg.eval_contexts, seed, "abpo.eval_windows")
    test.insert(0, "context_id", np.arange(len(test), dtype=np.int64))
    test.insert(0, "round", 0)
    log = serve(contexts[contexts["round"] == 1].reset_index(drop=True), 1, "serve.round1")
    eval_log = serve(test, 0, "serve.eval")
    ctx = eval_context(prepared, policy, test, eval_log, log)
    round_0 = round_metrics(
        policy, ctx, cfg.ks, cfg.serving_temperature, cfg.ctr_samples, rank_batch, torch_generator(seed, "abpo.ctr")
    )
    return BanditLog(pd.concat([test, contexts], ignore_index=True), log, eval_log, round_0)


def continual_rounds(
    prepared: Prepared,
    policy: Recommender,
    name: str,
    settings: UpdateSettings,
    cfg: Any,
    seed: int,
    rank_batch: int,
    logged: BanditLog,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Successive deployments of one method: update on round 1's log, then for every later round serve its windows
    with the policy the previous round produced, log the feedback and update again; evaluate after every update.
    The metrics of every round, and every round's log."""
    reference = copy.deepcopy(policy.model).eval() if cfg.kl_beta > 0 else None
    contexts = logged.contexts
    ctx = eval_context(prepared, policy, contexts[contexts["round"] == 0], logged.eval_log, logged.log)
    rollouts, ctr = torch_generator(seed, "abpo.rollouts"), torch_generator(seed, "abpo.ctr")
    order = generator(seed, "abpo.batches")
    logs, rounds = [logged.log], []
    for r in progress(range(1, cfg.rounds + 1), f"abpo-{name}: rounds"):
        if r > 1:  # the policy the previous round produced serves this round's windows
            windows = contexts[contexts["round"] == r].reset_index(drop=True)
            serving = torch_generator(seed, f"abpo.{name}.serve.{r}")
            actions, mu = policy.serve(policy.prompts(windows), cfg.serving_temperature, serving)
            rewards = feedback(prepared, windows, actions, cfg.horizon, generator(seed, f"abpo.{name}.feedback.{r}"))
            ids, users, histories = windows["context_id"], windows["user_id"], windows["history"]
            logs.append(policy_log(r, ids, users, histories, actions, mu, rewards, f"{name}:{r - 1}"))
        update = update_on_log(
            policy, reference, logs[-1], settings, cfg.batch_size, cfg.epochs, cfg.learning_rate, order, rollouts
        )
        metrics = round_metrics(policy, ctx, cfg.ks, cfg.serving_temperature, cfg.ctr_samples, rank_batch, ctr)
        rounds.append({"round": r, **metrics, "log": log_summary(logs[-1]), "update": update})
    return rounds, pd.concat(logs, ignore_index=True)
