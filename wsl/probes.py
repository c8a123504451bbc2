"""Probes: how much of a property of a model a set of features holds, scored on held-out models.

- ``ridge_probe``: closed-form ridge (float64, unpenalised bias) from features
  to a target, fit on the training split with its regularisation chosen by
  cross-validation on the training split alone (folds grouped by model, so a
  model's checkpoints never sit on both sides), scored on every held-out split
  it is given as R² and Kendall tau (the field reports both). Neither the
  validation nor the test models choose anything: a sweep reads the validation
  score, the end of a run reports the test one.
- ``probe_target``: what a probe predicts: test accuracy, or the field's
  extra targets, the checkpoint's epoch and the generalisation gap.
- ``weight_statistics``: per-tensor mean, variance and quantiles: the strong
  baseline that embeddings must be compared with.
- ``boosted_probe``: gradient boosting, its rounds chosen by the same grouped
  cross-validation (as the ridge chooses its alpha): the same statistics read
  non-linearly.
- ``metadata``: what a user knows of a checkpoint without its weights (its
  epoch, activation and the zoo's hyper-parameters): the third baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import GroupKFold
from torch import Tensor

from wsl.errors import WslError

ALPHAS = np.logspace(3, -5, 17)
ROUNDS = (100, 300, 1000)  # boosting rounds tried, picked by cross-validation on the training split
FOLDS = 5  # of that cross-validation, grouped by model
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


def ridge_probe(
    features: dict[str, np.ndarray], targets: dict[str, np.ndarray], groups: np.ndarray | None = None
) -> dict:
    """Ridge fit on ``train`` (alpha by grouped cross-validation there), scored on every other split given.

    ``features``/``targets``: keyed by split (``train`` plus any of ``val``, ``test``), [rows, F] and [rows];
    ``groups``: [train rows] the model each training row belongs to (None: each row its own).
    Returns ``{split: {"r2", "tau"}}`` for each held-out split, and the chosen ``alpha``.
    """
    x = {k: np.asarray(v, dtype=np.float64) for k, v in features.items()}
    y = {k: np.asarray(v, dtype=np.float64) for k, v in targets.items()}
    mean, std = x["train"].mean(0), x["train"].std(0) + 1e-12
    x = {k: (v - mean) / std for k, v in x.items()}
    folds = _folds(len(x["train"]), groups)
    cv = {
        a: _cv_r2(
            lambda tr, te, a=a: _predict(x["train"][te], _fit_ridge(x["train"][tr], y["train"][tr], a)),
            y["train"],
            folds,
        )
        for a in ALPHAS
    }
    best = max(ALPHAS, key=cv.get)
    w = _fit_ridge(x["train"], y["train"], best)
    return {**{s: _scores(y[s], _predict(x[s], w)) for s in x if s != "train"}, "alpha": float(best)}


def boosted_probe(
    x: dict[str, np.ndarray], y: dict[str, np.ndarray], groups: np.ndarray | None = None, seed: int = 0
) -> dict:
    """Boosting fit on ``train``, rounds by grouped cross-validation there, scored on every other split given.

    Returns ``{split: {"r2", "tau"}}`` for each held-out split, and the chosen ``rounds``. Each fold grows one
    model through ``ROUNDS`` (``warm_start``), so the search costs one fit of the most rounds per fold.
    """
    folds = _folds(len(x["train"]), groups)
    r2 = {rounds: [] for rounds in ROUNDS}
    for train, held in folds:
        model = _booster(ROUNDS[0], seed, warm_start=True)
        for rounds in ROUNDS:
            model.set_params(max_iter=rounds).fit(x["train"][train], y["train"][train])
            r2[rounds].append(r2_score(y["train"][held], model.predict(x["train"][held])))
    best = max(ROUNDS, key=lambda rounds: np.mean(r2[rounds]))
    model = _booster(best, seed).fit(x["train"], y["train"])
    return {**{s: _scores(y[s], model.predict(x[s])) for s in x if s != "train"}, "rounds": best}


def _booster(rounds: int, seed: int, warm_start: bool = False) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_iter=rounds, learning_rate=0.05, early_stopping=False, random_state=seed, warm_start=warm_start
    )


def _folds(rows: int, groups: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``FOLDS`` (fewer with fewer groups) train/held-out index pairs over the training rows, grouped by model."""
    groups = np.arange(rows) if groups is None else np.asarray(groups)
    k = min(FOLDS, len(np.unique(groups)))
    if k < 2:
        raise WslError(f"a probe needs at least 2 training models to choose its regularisation; got {k}")
    return list(GroupKFold(n_splits=k).split(np.zeros(rows), groups=groups))


def _cv_r2(predict, y: np.ndarray, folds) -> float:
    """Mean held-out R² over ``folds``; ``predict(train_idx, held_idx)`` gives the held-out predictions."""
    return float(np.mean([r2_score(y[held], predict(train, held)) for train, held in folds]))


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
