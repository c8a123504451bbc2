"""Probes: how much of a property of a model a set of features holds, scored on held-out models.

- ``ridge_probe``: closed-form ridge (float64, unpenalised bias) from features
  to a target, regularisation chosen by validation R² over a log grid, scored
  on the test split as R² and Kendall tau (the field reports both).
- ``probe_target``: what a probe predicts: test accuracy, or the field's
  extra targets, the checkpoint's epoch and the generalisation gap.
- ``weight_statistics``: per-tensor mean, variance and quantiles: the strong
  baseline that embeddings must be compared with.
- ``boosted_probe``: gradient boosting, its rounds chosen by validation R² (as
  the ridge chooses its alpha): the same statistics read non-linearly.
- ``metadata``: what a user knows of a checkpoint without its weights (its
  epoch, activation and the zoo's hyper-parameters): the third baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau
from sklearn.ensemble import HistGradientBoostingRegressor
from torch import Tensor

ALPHAS = np.logspace(3, -5, 17)
ROUNDS = (100, 300, 1000)  # boosting rounds tried, picked on validation
NOT_METADATA = (
    "model_id",
    "source",
    "seed",
    "split",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
)  # ids, outcomes


def _fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    xb = np.hstack([x, np.ones((len(x), 1))])
    reg = alpha * np.eye(xb.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(xb.T @ xb + reg, xb.T @ y)


def _predict(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ w[:-1] + w[-1]


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    total = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - pred) ** 2).sum() / total) if total > 0 else 0.0


def ridge_probe(features: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, float]:
    """features/targets keyed by split ("train", "val", "test"); returns test ``r2``, ``tau`` and the ``alpha``."""
    x = {k: np.asarray(v, dtype=np.float64) for k, v in features.items()}
    y = {k: np.asarray(v, dtype=np.float64) for k, v in targets.items()}
    mean, std = x["train"].mean(0), x["train"].std(0) + 1e-12
    x = {k: (v - mean) / std for k, v in x.items()}
    best = max(ALPHAS, key=lambda a: r2_score(y["val"], _predict(x["val"], _fit_ridge(x["train"], y["train"], a))))
    pred = _predict(x["test"], _fit_ridge(x["train"], y["train"], best))
    return {**_scores(y["test"], pred), "alpha": float(best)}


def boosted_probe(x: dict[str, np.ndarray], y: dict[str, np.ndarray], seed: int = 0) -> dict[str, float]:
    """Boosting on features keyed by split, rounds chosen by validation R²: test ``r2``, ``tau``, ``rounds``."""
    fits = {rounds: _boost(x, y, rounds, seed) for rounds in ROUNDS}
    best = max(ROUNDS, key=lambda rounds: r2_score(y["val"], fits[rounds].predict(x["val"])))
    return {**_scores(y["test"], fits[best].predict(x["test"])), "rounds": best}


def _boost(x, y, rounds: int, seed: int) -> HistGradientBoostingRegressor:
    model = HistGradientBoostingRegressor(max_iter=rounds, learning_rate=0.05, early_stopping=False, random_state=seed)
    return model.fit(x["train"], y["train"])


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"r2": r2_score(y, pred), "tau": float(np.nan_to_num(kendalltau(y, pred).statistic))}


def metadata(models: pd.DataFrame) -> np.ndarray:
    """[R, F]: every column of a zoo's models table but ids and outcomes; text columns one-hot."""
    known = models.drop(columns=[c for c in NOT_METADATA if c in models.columns])
    return pd.get_dummies(known, dtype=float).to_numpy(dtype=np.float64)


def probe_target(models, target: str) -> np.ndarray:
    """[R] ``target`` of each row of a zoo's models table: ``test_acc``, ``epoch`` or ``gap`` (train - test acc)."""
    if target == "gap":
        return (models["train_acc"] - models["test_acc"]).to_numpy()
    return models[target].to_numpy()


def weight_statistics(weights: dict[str, Tensor]) -> np.ndarray:
    """[R, 7 * tensors]: mean, variance and the 0/25/50/75/100% quantiles of every tensor of every row."""
    columns = []
    q = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    for w in weights.values():
        flat = w.flatten(1).double()
        columns += [flat.mean(1, keepdim=True), flat.var(1, keepdim=True), torch.quantile(flat, q, dim=1).T]
    return torch.cat(columns, 1).numpy()
