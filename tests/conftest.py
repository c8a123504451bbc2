"""Shared fixtures: one small real zoo, trained once per test session."""

import pytest

from wsl.zoo.make import ZooConfig, make_zoo
from wsl.zoo.store import save_zoo


@pytest.fixture(scope="session")
def small_zoo_path(tmp_path_factory):
    """18 digits CNNs, checkpoints at epochs 0, 1 and 3 (a few seconds to train)."""
    cfg = ZooConfig(name="small", models=18, epochs=3, checkpoints=[0, 1, 3], device="cpu")
    path = tmp_path_factory.mktemp("zoos") / "small"
    save_zoo(path, make_zoo(cfg))
    return path


def with_other_test_models(zoo, seed: int = 1):
    """``zoo`` with its test-split models replaced: other weights and other recorded accuracies; every other
    row, and the task's inputs, as they were. What a run or a sweep decides by must not change."""
    import dataclasses

    import numpy as np
    import torch

    test = torch.from_numpy(zoo.models["split"].to_numpy() == "test")
    gen = torch.Generator().manual_seed(seed)
    weights = {
        k: torch.where(test.view(-1, *[1] * (v.dim() - 1)), torch.randn(v.shape, generator=gen), v)
        for k, v in zoo.weights.items()
    }
    models = zoo.models.copy()
    rng = np.random.default_rng(seed)
    for column in ("test_acc", "train_acc"):
        models.loc[test.numpy(), column] = rng.uniform(0, 1, int(test.sum()))
    return dataclasses.replace(zoo, path=None, models=models, weights=weights)
