"""How good is an autoencoder: probes on embeddings, reconstructions that run, generation.

- ``ridge_probe``: closed-form ridge (float64, unpenalised bias) from features
  to a target, regularisation chosen by validation R² over a log grid, scored
  on the test split as R² and Kendall tau (the field reports both).
- ``probe_target``: what a probe predicts: test accuracy, or the field's
  extra targets, the checkpoint's epoch and the generalisation gap.
- ``weight_statistics``: per-tensor mean, variance and quantiles: the strong
  baseline that embeddings must be compared with.
- ``run_models``: test accuracy of decoded models and their agreement with
  the originals (share of test inputs on which both predict the same class).
- ``kde_sample``: embeddings sampled from a Gaussian KDE fitted on the best
  models' embeddings, for generation; ``nearest_distance`` and
  ``nearest_distance_aligned`` (up to the order of hidden units) measure how
  novel generated weights are (generative weight models tend to return
  near-copies of their training data).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import kendalltau
from sklearn.neighbors import KernelDensity
from torch import Tensor

from wsl.augment import reorder_units
from wsl.zoo.arch import Arch, forward
from wsl.zoo.tasks import Task

ALPHAS = np.logspace(3, -5, 17)


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
    tau = kendalltau(y["test"], pred).statistic
    return {"r2": r2_score(y["test"], pred), "tau": float(np.nan_to_num(tau)), "alpha": float(best)}


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


@torch.no_grad()
def run_models(
    arch: Arch, params: dict[str, Tensor], activations, task: Task, reference: dict[str, Tensor] | None = None
) -> dict[str, np.ndarray]:
    """Per-model test ``acc`` and, given reference params, ``agreement`` with the reference's predictions."""
    pred = _predictions(arch, params, activations, task)
    out = {"acc": (pred == task.y_test.to(pred.device)).double().mean(1).cpu().numpy()}
    if reference is not None:
        ref = _predictions(arch, reference, activations, task)
        out["agreement"] = (pred == ref).double().mean(1).cpu().numpy()
    return out


def _predictions(arch: Arch, params: dict[str, Tensor], activations, task: Task, chunk: int = 256) -> Tensor:
    """Predicted classes [N, test inputs]."""
    device = next(iter(params.values())).device
    return torch.cat(
        [
            forward(arch, params, task.x_test[s : s + chunk].to(device), activations).argmax(-1)
            for s in range(0, len(task.x_test), chunk)
        ],
        dim=1,
    )


def kde_sample(embeddings: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n samples [n, D] from a Gaussian KDE (Scott's bandwidth on standardised embeddings)."""
    mean, std = embeddings.mean(0), embeddings.std(0) + 1e-12
    z = (embeddings - mean) / std
    bandwidth = len(z) ** (-1.0 / (z.shape[1] + 4))
    kde = KernelDensity(bandwidth=bandwidth).fit(z)
    return kde.sample(n, random_state=seed) * std + mean


def nearest_distance(candidates: Tensor, pool: Tensor) -> np.ndarray:
    """For each flattened weight vector in candidates [n, P], the L2 distance to the nearest in pool [m, P]."""
    return torch.cdist(candidates.double(), pool.double()).min(1).values.cpu().numpy()


def nearest_distance_aligned(arch: Arch, candidates: dict[str, Tensor], pool: dict[str, Tensor]) -> np.ndarray:
    """For each of n candidate models, the L2 distance to the nearest of m pool models up to hidden-unit order.

    Reordering a network's hidden units changes its weights, not its function: a
    training model with its units shuffled is a copy that plain L2 calls far. For
    every (candidate, pool model) pair this matches the candidate's units to the
    pool model's one layer at a time from the input (greedy weight matching: an
    assignment on the inner products of the units' incoming weights and bias, once
    the layer below is matched), then measures. Each pair keeps the smaller of that
    and the plain distance, so the result is never above ``nearest_distance``'s.
    Cheap for the zoo's small layers: n * m * layers assignments of at most 20
    units, one candidate at a time so that memory grows with m only.
    """
    device = next(iter(candidates.values())).device
    pool = {k: pool[k].to(device) for k in candidates}  # same device, same key order
    m = len(next(iter(pool.values())))
    pool_flat = flatten(pool).double()  # [m, P]
    nearest = []
    for c in range(len(next(iter(candidates.values())))):
        cand = {k: v[c : c + 1].expand(m, *v.shape[1:]) for k, v in candidates.items()}  # [m, ...]: one per pair
        for i in range(len(arch.layers) - 1):
            cand = reorder_units(arch, cand, i, _matching(cand, pool, i))
        nearest.append((flatten(cand).double() - pool_flat).norm(dim=1).min().item())
    return np.minimum(nearest, nearest_distance(flatten(candidates), pool_flat))


def _matching(cand: dict[str, Tensor], ref: dict[str, Tensor], i: int) -> Tensor:
    """[P, units]: for each pair, the candidate unit to put at each of the reference's units of layer ``i``."""

    def incoming(params):  # [P, units, inputs + 1]
        return torch.cat([params[f"layers.{i}.weight"].flatten(2), params[f"layers.{i}.bias"].unsqueeze(2)], 2)

    similarity = (incoming(ref) @ incoming(cand).transpose(1, 2)).cpu().numpy()  # [P, ref units, cand units]
    order = [linear_sum_assignment(s, maximize=True)[1] for s in similarity]
    return torch.as_tensor(np.stack(order), device=cand[f"layers.{i}.weight"].device)


def flatten(params: dict[str, Tensor]) -> Tensor:
    """name -> [N, *shape] to one weight vector per model [N, P]."""
    return torch.cat([w.flatten(1) for w in params.values()], 1)
