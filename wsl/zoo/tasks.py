"""Classification tasks that ship offline, with fixed seeded train/test splits.

Zoos are trained on these, and the autoencoder's behavioral loss and the
reconstruction metrics run decoded models on them, so a zoo names its task
and everything else looks it up here. A zoo may also carry its own task
data (``Zoo.task_data``, e.g. imported with a public zoo); ``wsl.data.task_of`` is the
one lookup: the zoo's own data first, then the tasks that ship here.

- ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes).
- ``shapes``: procedurally drawn 12x12 glyphs (10 classes: bars, diagonals,
  squares, crosses, rings, ...) at random positions and sizes with pixel
  noise; generated from a fixed seed, so it is the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import Tensor

from wsl.errors import WslError
from wsl.zoo.pickling import arrays, tensors


@dataclass(frozen=True)
class Task:
    """Images ``[N, C, H, W]`` float32 as the models see them, labels ``[N]`` int64 in ``[0, num_classes)``.

    Shipped tasks are standardised with training-set statistics; a zoo's own
    data is kept exactly as its models were trained on it.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def __reduce__(self):
        """Pickled with its tensors as numpy arrays, shared by a node's Ray workers (``wsl.zoo.pickling``)."""
        data = arrays({k: getattr(self, k) for k in ("x_train", "y_train", "x_test", "y_test")})
        return _unpickle_task, (self.name, data, self.num_classes)


def _unpickle_task(name: str, data: dict, num_classes: int) -> Task:
    return Task(name, num_classes=num_classes, **tensors(data))


def load_task(name: str) -> Task:
    """The task called ``name``; cached, so repeated calls share tensors."""
    if name not in TASKS:
        raise WslError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return _cached(name)


@cache
def _cached(name: str) -> Task:
    x, y = TASKS[name]()
    return _split(name, x, y, test_fraction=0.3, seed=0)


def _split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> Task:
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(), x[train].std()
    x = torch.from_numpy(((x - mean) / std).astype(np.float32))
    y = torch.from_numpy(y.astype(np.int64))
    return Task(name, x[train], y[train], x[test], y[test], int(y.max()) + 1)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images[:, None].astype(np.float64) / 16.0, data.target


def _shapes(n: int = 3000, size: int = 12, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """``n`` glyphs of 10 classes, drawn with random offset, extent and thickness."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((n, 1, size, size))
    labels = rng.integers(0, 10, n)
    for i, label in enumerate(labels):
        half = rng.uniform(2.5, size / 2 - 1)
        cy, cx = rng.uniform(half, size - half, 2)
        thick = rng.uniform(0.6, 1.4)
        dy, dx = yy - cy, xx - cx
        inside = (np.abs(dy) <= half) & (np.abs(dx) <= half)
        r = np.hypot(dy, dx)
        glyph = [
            (np.abs(dy) <= thick) & inside,  # horizontal bar
            (np.abs(dx) <= thick) & inside,  # vertical bar
            (np.abs(dy - dx) <= thick) & inside,  # diagonal
            (np.abs(dy + dx) <= thick) & inside,  # anti-diagonal
            inside & (np.maximum(np.abs(dy), np.abs(dx)) >= half - thick),  # square outline
            (np.maximum(np.abs(dy), np.abs(dx)) <= half * 0.6),  # filled square
            ((np.abs(dy) <= thick) | (np.abs(dx) <= thick)) & inside,  # plus
            ((np.abs(dy - dx) <= thick) | (np.abs(dy + dx) <= thick)) & inside,  # x
            np.abs(r - half * 0.8) <= thick,  # ring
            r <= half * 0.5,  # disc
        ][label]
        images[i, 0] = glyph + rng.normal(0, 0.35, (size, size))
    return images, labels


TASKS = {"digits": _digits, "shapes": _shapes}
