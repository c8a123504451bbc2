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
