"""CNN-l, the network of the zoos "Structure Is Not Enough" trained on: it imports with its data, and trains.

Four CNN-l networks (3x3 convs of 16, 32 and 15 channels, each pooled, then 60 -> 20 -> 10: 10,853
parameters on 32x32x3 inputs) are trained with plain torch on digits scaled to 32x32 and repeated over three
channels, written in the public layout with their dataset.pt, imported, and an autoencoder trains on them
with the behavioral loss and the reconstruction metrics.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from test_importer import ACTS, EPOCHS, PublicNet, params_json, train, write_folder
from torch import nn
from torch.utils.data import TensorDataset

from wsl.config import EvalConfig, OptimConfig, TrainConfig
from wsl.losses import LossConfig
from wsl.model import ModelConfig
from wsl.train import train as train_autoencoder
from wsl.zoo.importer import import_public_zoo
from wsl.zoo.store import load_zoo
from wsl.zoo.tasks import load_task

ACTIVATIONS = ("relu", "tanh", "gelu", "gelu")


def cnn_l(act: str) -> PublicNet:
    a = ACTS[act]
    return PublicNet(
        [nn.Conv2d(3, 16, 3), nn.MaxPool2d(2), a(), nn.Conv2d(16, 32, 3), nn.MaxPool2d(2), a()]
        + [nn.Conv2d(32, 15, 3), nn.MaxPool2d(2), a(), nn.Flatten(), nn.Linear(60, 20), a(), nn.Linear(20, 10)]
    )


def digits_32x32x3() -> dict:
    """Digits scaled from 8x8 to 32x32 (each pixel 4x4) on 3 channels: CIFAR-10's shape, a task that learns fast."""
    task = load_task("digits")

    def lift(x):
        return nn.functional.interpolate(x, scale_factor=4, mode="nearest").repeat(1, 3, 1, 1)

    return {
        "trainset": TensorDataset(lift(task.x_train[:1000]), task.y_train[:1000]),
        "valset": TensorDataset(lift(task.x_train[1000:]), task.y_train[1000:]),
        "testset": TensorDataset(lift(task.x_test), task.y_test),
        "dataset_seed": 7,
    }


@pytest.fixture(scope="module")
def cnn_l_zoo(tmp_path_factory) -> tuple[Path, dict[int, dict]]:
    src = tmp_path_factory.mktemp("cnn-l") / "cifar_like"
    data, last = digits_32x32x3(), {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i, act in enumerate(ACTIVATIONS):
            torch.manual_seed(i)
            results, states = train(cnn_l(act), data, seed=i)
            write_folder(
                src / f"NN_tune_trainable_{i:05d}_seed={i}", {**params_json(i), "model::nlin": act}, results, states
            )
            last[i] = results[EPOCHS]
    finally:
        torch.set_num_threads(threads)
    torch.save(data, src / "dataset.pt")
    out = import_public_zoo(src, tmp_path_factory.mktemp("zoos") / "cnn-l", task="cifar10-like")
    return out, last


def test_the_fixture_networks_learned(cnn_l_zoo):
    _, last = cnn_l_zoo
    assert min(m["test_acc"] for m in last.values()) > 0.5


def test_cnn_l_imports_as_10853_parameters_on_32x32x3(cnn_l_zoo):
    zoo = load_zoo(cnn_l_zoo[0])
    assert zoo.arch.in_shape == (3, 32, 32) and zoo.arch.num_params == 10_853
    assert zoo.extra["task_check"]["largest_abs_diff"] < 0.02


def test_an_autoencoder_trains_on_the_imported_cnn_l_zoo(cnn_l_zoo, tmp_path):
    cfg = TrainConfig(
        zoo=str(cnn_l_zoo[0]),
        out=str(tmp_path / "run"),
        device="cpu",
        generate=0,
        model=ModelConfig(d_model=32, layers=1, heads=2, latent_dim=8),
        optim=OptimConfig(epochs=1, batch_size=8),
        loss=LossConfig(probe_size=16),
        eval=EvalConfig(baselines=False),
    )
    reports = []
    final = train_autoencoder(cfg, reports.append)
    assert np.isfinite([reports[0]["loss_behav"], final["rec_acc"], final["rec_agreement"]]).all()
