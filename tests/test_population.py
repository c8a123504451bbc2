"""Population training: per-model optimizers that match torch.optim, seeded, and it learns."""

import numpy as np
import pandas as pd
import pytest
import torch

from wsl.zoo.arch import cnn
from wsl.zoo.population import SGD_MOMENTUM, BatchedOptimizer, sample_hypers, train_population
from wsl.zoo.tasks import load_task


def hypers(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"model_id": range(n), "seed": range(n), "activation": ["tanh"] * n, "init": ["uniform"] * n}
    base.update({"dropout": [0.0] * n, "wd": [0.0] * n})
    return pd.DataFrame({**base, **columns})


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_batched_optimizer_matches_torch_optim(kind):
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(2, 3, 4, generator=gen)
    h = hypers(lr=[1e-2, 3e-3], wd=[0.0, 1e-2], optimizer=[kind, kind])
    stacked = {"w": start.clone()}
    ours = BatchedOptimizer(stacked, h, "cpu")
    singles = [start[m].clone().requires_grad_() for m in range(2)]
    make = {
        "adam": lambda p, lr, wd: torch.optim.Adam([p], lr=lr, weight_decay=wd),
        "sgd": lambda p, lr, wd: torch.optim.SGD([p], lr=lr, momentum=SGD_MOMENTUM, weight_decay=wd),
    }[kind]
    theirs = [make(p, lr, wd) for p, lr, wd in zip(singles, h["lr"], h["wd"])]
    for _ in range(5):
        grad = torch.randn(2, 3, 4, generator=gen)
        ours.step([grad])
        for m, (p, opt) in enumerate(zip(singles, theirs)):
            p.grad = grad[m].clone()
            opt.step()
    torch.testing.assert_close(stacked["w"], torch.stack([p.detach() for p in singles]), rtol=1e-5, atol=1e-6)


def test_mixed_optimizers_in_one_population_follow_their_own_rule():
    h = hypers(lr=[0.1, 0.1], optimizer=["adam", "sgd"])
    stacked = {"w": torch.zeros(2, 1)}
    BatchedOptimizer(stacked, h, "cpu").step([torch.full((2, 1), 4.0)])
    # Adam's first step moves by lr whatever the gradient's size; SGD moves by lr * grad.
    torch.testing.assert_close(stacked["w"], torch.tensor([[-0.1], [-0.4]]))


def test_sample_hypers_is_seeded_and_in_range():
    args = (50, 7, (1e-4, 1e-2), (0.0, 0.0), ["tanh", "relu"], ["uniform"], ["adam", "sgd"], [0.0, 0.5])
    a, b = sample_hypers(*args), sample_hypers(*args)
    pd.testing.assert_frame_equal(a, b)
    assert a["lr"].between(1e-4, 1e-2).all() and (a["wd"] == 0).all()
    assert set(a["optimizer"]) == {"adam", "sgd"} and set(a["dropout"]) <= {0.0, 0.5}


@pytest.fixture(scope="module")
def trained():
    task = load_task("digits")
    arch = cnn(task.in_shape, task.num_classes)
    h = hypers(lr=[1e-2, 3e-3, 1e-5], optimizer=["adam", "adam", "sgd"], activation=["relu", "tanh", "gelu"])
    return train_population(arch, task, h, epochs=2, checkpoints=[0, 2], batch_size=32, seed=3)


def test_snapshot_rows_line_up_with_stacked_weights(trained):
    weights, rows = trained
    assert list(rows["epoch"]) == [0, 0, 0, 2, 2, 2]
    assert all(w.shape[0] == 6 for w in weights.values())
    assert rows[["train_loss", "train_acc", "test_loss", "test_acc"]].notna().all().all()


def test_training_learns_and_a_tiny_learning_rate_does_not(trained):
    _, rows = trained
    final = rows[rows["epoch"] == 2].set_index("model_id")["test_acc"]
    assert final[0] > 0.6 and final[1] > 0.5
    assert final[2] < 0.3


def test_same_seed_gives_the_same_zoo(trained):
    task = load_task("digits")
    arch = cnn(task.in_shape, task.num_classes)
    h = hypers(lr=[1e-2, 3e-3, 1e-5], optimizer=["adam", "adam", "sgd"], activation=["relu", "tanh", "gelu"])
    weights, rows = train_population(arch, task, h, epochs=2, checkpoints=[0, 2], batch_size=32, seed=3)
    for k, w in weights.items():
        assert torch.equal(w, trained[0][k])
    np.testing.assert_array_equal(rows["test_acc"], trained[1]["test_acc"])
