"""A fitted propensity model behind one checked interface: ids validated, NaN refused, output clipped.

The public LURE code turned a missing propensity into 1e-6 without a word (an IPS weight of a million); here
any id the model does not know, and any NaN, infinite or out-of-range value, raises instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import joblib
import numpy as np

from lure.io import write_with
from lure.propensity.data import PropensityData
from lure.registry import PROPENSITY_MODELS


class PropensityModel(Protocol):
    name: str

    def fit(self, data: PropensityData) -> PropensityModel: ...

    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray: ...


class MissingPropensityError(ValueError):
    """A propensity was asked for an unknown user/item, or the model produced NaN/inf/out-of-range values."""


@dataclass
class FittedPropensity:
    """``predict`` = clip(model.predict(u, i), clip_min, clip_max); ``raw`` = the model's value, checked only.

    ``known_users``: bool per user id, the users of holdout_train (the only ones a model has seen).
    ``settings``: the spec values the metrics need (calibration_bins, metrics_sample) and the model name.
    """

    model: Any
    clip_min: float
    clip_max: float
    known_users: np.ndarray
    n_items: int
    settings: dict[str, Any]

    @property
    def name(self) -> str:
        return self.model.name

    def raw(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        u, i = self._check_ids(user_ids, item_ids)
        out = np.asarray(self.model.predict(u, i), dtype=np.float64)
        if out.shape != u.shape:
            raise MissingPropensityError(f"{self.name}: returned shape {out.shape} for {u.shape} pairs")
        bad = ~np.isfinite(out) | (out < 0) | (out > 1)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise MissingPropensityError(
                f"{self.name}: {int(bad.sum())} propensities are NaN/inf or outside [0, 1], e.g. "
                f"user {u[k]} item {i[k]} -> {out[k]!r}"
            )
        return out

    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        return np.clip(self.raw(user_ids, item_ids), self.clip_min, self.clip_max)

    def _check_ids(self, user_ids: np.ndarray, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = np.asarray(user_ids)
        i = np.asarray(item_ids)
        if u.shape != i.shape or u.ndim != 1:
            raise ValueError(f"user_ids and item_ids must be 1-d of equal length, got {u.shape} and {i.shape}")
        for name, ids in (("user_ids", u), ("item_ids", i)):
            if ids.dtype.kind == "f":
                if np.isnan(ids).any():
                    raise MissingPropensityError(f"{name} contains NaN")
                if (ids != np.round(ids)).any():
                    raise MissingPropensityError(f"{name} contains non-integer ids")
            elif ids.dtype.kind not in "iu":
                raise MissingPropensityError(f"{name} must be integer ids, got dtype {ids.dtype}")
        u = u.astype(np.int64)
        i = i.astype(np.int64)
        bad_i = (i < 0) | (i >= self.n_items)
        if bad_i.any():
            raise MissingPropensityError(
                f"{int(bad_i.sum())} item ids outside 0..{self.n_items - 1}, e.g. {i[bad_i][0]}"
            )
        slots = len(self.known_users)
        bad_u = (u < 0) | (u >= slots)
        bad_u[~bad_u] = ~self.known_users[u[~bad_u]]
        if bad_u.any():
            raise MissingPropensityError(
                f"{int(bad_u.sum())} user ids have no training interactions (no propensity), e.g. {u[bad_u][0]}"
            )
        return u, i

    # ------------------------------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        return write_with(path, lambda tmp: joblib.dump(self, tmp))

    @classmethod
    def load(cls, path: str | Path) -> FittedPropensity:
        obj = joblib.load(path)
        if not isinstance(obj, cls):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not a FittedPropensity")
        return obj


def make_model(spec: Any, seed: int) -> Any:
    """The unfitted model chosen by ``spec.model`` (a member of the propensity-model union), configured from it."""
    return PROPENSITY_MODELS.get(spec.model.name).build(spec.model, seed)


def fit_propensity(spec: Any, prepared_dir: Path, seed: int) -> FittedPropensity:
    """Fit the model of ``spec`` (a PropensitySpec) on ``splits/holdout_train.parquet`` of ``prepared_dir``."""
    data = PropensityData.load(Path(prepared_dir))
    model = make_model(spec, seed).fit(data)
    return FittedPropensity(
        model=model,
        clip_min=float(spec.clip_min),
        clip_max=float(spec.clip_max),
        known_users=data.user_counts() > 0,
        n_items=data.n_items,
        settings={
            "model": spec.model.name,
            "calibration_bins": int(spec.calibration_bins),
            "metrics_sample": int(spec.metrics_sample),
        },
    )


def fit_alternatives(spec: Any, prepared_dir: Path, seed: int) -> dict[str, FittedPropensity]:
    """Every registered propensity model other than ``spec.model``, with its default settings and ``spec``'s clip.

    For side-by-side error ratios (``eval.compare_propensities``). A model that cannot be fitted on this dataset
    ('true' off the world raises FileNotFoundError) is left out.
    """
    out: dict[str, FittedPropensity] = {}
    for name in PROPENSITY_MODELS.names():
        definition = PROPENSITY_MODELS.get(name)
        if name == spec.model.name or definition.spec is None:
            continue
        other = spec.model_copy(update={"model": definition.spec()})
        try:
            out[name] = fit_propensity(other, prepared_dir, seed)
        except FileNotFoundError:
            continue
    return out
