"""Train a population of small networks at once, each with its own hyper-parameters.

All N models live in stacked tensors (``name -> [N, *shape]``) and take every
step together: one batched forward (``arch.forward``), one backward of the sum
of the per-model mean losses (so each model receives exactly its own
gradient), and one batched optimizer update with per-model learning rate,
weight decay and optimizer kind. Each model sees its own shuffle of the
training set. No Python loop runs over models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from wsl.zoo.arch import Arch, forward, init_params
from wsl.zoo.tasks import Task

HYPER_COLUMNS = ("model_id", "seed", "lr", "wd", "activation", "init", "optimizer", "dropout")
OPTIMIZERS = ("adam", "sgd")
SGD_MOMENTUM = 0.9
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def sample_hypers(
    n: int,
    seed: int,
    lr: tuple[float, float],
    wd: tuple[float, float],
    activation: Sequence[str],
    init: Sequence[str],
    optimizer: Sequence[str],
    dropout: Sequence[float],
) -> pd.DataFrame:
    """One row per model: ``lr`` and ``wd`` log-uniform in their ranges, the rest uniform choices."""
    rng = np.random.default_rng(seed)

    def log_uniform(lo: float, hi: float) -> np.ndarray:
        return np.exp(rng.uniform(np.log(lo), np.log(hi), n)) if lo > 0 else np.full(n, float(lo))

    return pd.DataFrame(
        {
            "model_id": np.arange(n, dtype=np.int64),
            "seed": rng.integers(0, 2**31, n, dtype=np.int64),
            "lr": log_uniform(*lr),
            "wd": log_uniform(*wd),
            "activation": rng.choice(list(activation), n),
            "init": rng.choice(list(init), n),
            "optimizer": rng.choice(list(optimizer), n),
            "dropout": rng.choice(np.asarray(dropout, dtype=np.float64), n),
        }
    )


def train_population(
    arch: Arch,
    task: Task,
    hypers: pd.DataFrame,
    epochs: int,
    checkpoints: Sequence[int],
    batch_size: int,
    seed: int,
    device: str = "cpu",
    on_epoch: Callable[[int], None] | None = None,
) -> tuple[dict[str, Tensor], pd.DataFrame]:
    """Train ``len(hypers)`` models for ``epochs`` epochs; snapshot them at ``checkpoints``.

    Returns the stacked weights ``name -> [len(checkpoints) * N, *shape]``
    (checkpoint-major: all models at the first checkpoint, then the next) and
    a table with one row per snapshot: the hyper-parameters, ``epoch`` and
    train/test loss and accuracy. ``on_epoch(epoch)`` is called after each epoch.
    """
    n = len(hypers)
    gen = torch.Generator(device=device).manual_seed(seed)
    params = {
        k: v.to(device).requires_grad_() for k, v in init_params(arch, list(hypers["init"]), _cpu_gen(seed)).items()
    }
    opt = BatchedOptimizer(params, hypers, device)
    acts = list(hypers["activation"])
    dropout = torch.tensor(hypers["dropout"].to_numpy(), dtype=torch.float32, device=device)
    x_train, y_train = task.x_train.to(device), task.y_train.to(device)
    snaps: list[dict[str, Tensor]] = []
    rows: list[pd.DataFrame] = []

    def snapshot(epoch: int) -> None:
        snaps.append({k: v.detach().clone().cpu() for k, v in params.items()})
        rows.append(hypers.assign(epoch=epoch, **evaluate_population(arch, params, task, acts, device)))

    if 0 in checkpoints:
        snapshot(0)
    for epoch in range(1, epochs + 1):
        order = torch.argsort(torch.rand(n, len(x_train), generator=gen, device=device), dim=1)
        for start in range(0, len(x_train) - batch_size + 1, batch_size):
            idx = order[:, start : start + batch_size]  # [N, B]: each model its own batch
            logits = forward(arch, params, x_train[idx], acts, dropout, gen)
            loss = F.cross_entropy(logits.flatten(0, 1), y_train[idx].flatten(), reduction="none")
            opt.step(torch.autograd.grad(loss.view(n, -1).mean(1).sum(), list(params.values())))
        if epoch in checkpoints:
            snapshot(epoch)
        if on_epoch:
            on_epoch(epoch)
    weights = {k: torch.cat([s[k] for s in snaps]) for k in params}
    return weights, pd.concat(rows, ignore_index=True)


def _cpu_gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def evaluate_population(
    arch: Arch, params: dict[str, Tensor], task: Task, activations, device: str = "cpu", chunk: int = 256
) -> dict[str, np.ndarray]:
    """Per-model ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` (arrays of length N)."""
    out = {}
    for split, x, y in (("train", task.x_train, task.y_train), ("test", task.x_test, task.y_test)):
        loss, correct = 0.0, 0.0
        for s in range(0, len(x), chunk):
            xb, yb = x[s : s + chunk].to(device), y[s : s + chunk].to(device)
            logits = forward(arch, params, xb, activations)  # [N, b, K]
            target = yb.expand(logits.shape[0], -1)
            loss = loss + F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(1)
            correct = correct + (logits.argmax(-1) == target).sum(1)
        out[f"{split}_loss"] = (loss / len(x)).double().cpu().numpy()
        out[f"{split}_acc"] = (correct / len(x)).double().cpu().numpy()
    return out


class BatchedOptimizer:
    """Adam or SGD-with-momentum per model, with per-model lr and L2 weight decay.

    Both updates are computed for every tensor and each model takes the one its
    optimizer names: a few elementwise ops, far cheaper than the forward pass.
    """

    def __init__(self, params: dict[str, Tensor], hypers: pd.DataFrame, device: str):
        unknown = sorted(set(hypers["optimizer"]) - set(OPTIMIZERS))
        if unknown:
            raise ValueError(f"unknown optimizer {unknown[0]!r}; known: {', '.join(OPTIMIZERS)}")

        def per_model(values) -> Tensor:
            return torch.tensor(np.asarray(values, dtype=np.float32), device=device)

        self.params = list(params.values())
        self.lr, self.wd = per_model(hypers["lr"]), per_model(hypers["wd"])
        self.is_adam = per_model(hypers["optimizer"] == "adam")
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: Sequence[Tensor]) -> None:
        self.t += 1
        b1, b2 = ADAM_BETAS
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            shape = (-1,) + (1,) * (p.dim() - 1)
            lr, wd, is_adam = self.lr.view(shape), self.wd.view(shape), self.is_adam.view(shape)
            g = g + wd * p
            # m is Adam's first moment for Adam models and the momentum buffer for SGD models.
            m.copy_(torch.where(is_adam.bool(), b1 * m + (1 - b1) * g, SGD_MOMENTUM * m + g))
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            adam = (m / (1 - b1**self.t)) / ((v / (1 - b2**self.t)).sqrt() + ADAM_EPS)
            p.sub_(lr * torch.where(is_adam.bool(), adam, m))
