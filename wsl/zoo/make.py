"""Build a zoo from a typed config: sample hyper-parameters, train, split, return.

``ZooConfig`` is what ``sweeps/zoo.yaml`` validates into; ``make_zoo`` is the
recipe behind ``wsl zoo make``, top to bottom.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from wsl.device import pick_device
from wsl.errors import WslError
from wsl.zoo.arch import ACTIVATIONS, INITS, Arch, cnn, mlp
from wsl.zoo.population import OPTIMIZERS, sample_hypers, train_population
from wsl.zoo.splits import assign_splits
from wsl.zoo.store import Zoo
from wsl.zoo.tasks import TASKS, load_task


@dataclass
class ArchConfig:
    """``cnn``: conv blocks of ``channels``/``kernels`` then ``hidden`` fc layers; ``mlp``: ``hidden`` only."""

    family: str = "cnn"
    channels: list[int] = field(default_factory=lambda: [8, 6, 4])
    kernels: list[int] = field(default_factory=lambda: [3, 3, 2])
    hidden: list[int] = field(default_factory=lambda: [20])

    def build(self, in_shape: tuple[int, int, int], num_classes: int) -> Arch:
        if self.family == "mlp":
            return mlp(in_shape, num_classes, tuple(self.hidden))
        if len(self.channels) != len(self.kernels):
            raise WslError(f"arch.channels {self.channels} and arch.kernels {self.kernels} differ in length")
        return cnn(in_shape, num_classes, tuple(self.channels), tuple(self.kernels), tuple(self.hidden))


@dataclass
class SpaceConfig:
    """Per-model hyper-parameters: ``lr``/``wd`` log-uniform in [lo, hi], the rest drawn from the lists."""

    lr: list[float] = field(default_factory=lambda: [1e-4, 3e-2])
    wd: list[float] = field(default_factory=lambda: [1e-6, 1e-2])
    activation: list[str] = field(default_factory=lambda: ["tanh", "relu", "sigmoid", "gelu"])
    init: list[str] = field(default_factory=lambda: list(INITS))
    optimizer: list[str] = field(default_factory=lambda: ["adam", "sgd"])
    dropout: list[float] = field(default_factory=lambda: [0.0, 0.25])


@dataclass
class ZooConfig:
    name: str = "digits-cnn"
    task: str = "digits"
    out: str = "zoos/digits-cnn"
    models: int = 256
    epochs: int = 20
    checkpoints: list[int] = field(default_factory=lambda: [0, 1, 2, 5, 10, 20])
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    arch: ArchConfig = field(default_factory=ArchConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)

    def __post_init__(self):
        _check(self.task in TASKS, "task", self.task, f"one of {', '.join(TASKS)}")
        _check(self.arch.family in ("cnn", "mlp"), "arch.family", self.arch.family, "cnn or mlp")
        _check(self.models >= 3, "models", self.models, ">= 3 (train, val and test need a model each)")
        _check(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        bad = [c for c in self.checkpoints if not 0 <= c <= self.epochs]
        _check(not bad and self.checkpoints, "checkpoints", self.checkpoints, f"non-empty, within 0..{self.epochs}")
        for key in ("lr", "wd"):
            lo_hi = getattr(self.space, key)
            ok = len(lo_hi) == 2 and 0 <= lo_hi[0] <= lo_hi[1] and math.isfinite(lo_hi[1])
            _check(ok, f"space.{key}", lo_hi, "[low, high] with 0 <= low <= high")
        for key, known in (("activation", ACTIVATIONS), ("init", INITS), ("optimizer", OPTIMIZERS)):
            values = getattr(self.space, key)
            _check(values and set(values) <= set(known), f"space.{key}", values, f"a subset of {', '.join(known)}")
        bad_p = [p for p in self.space.dropout if not 0 <= p < 1]
        _check(self.space.dropout and not bad_p, "space.dropout", self.space.dropout, "values in [0, 1)")


def _check(ok, key: str, value, expected: str) -> None:
    if not ok:
        raise WslError(f"config value {key}={value!r} is invalid: expected {expected}")


def make_zoo(cfg: ZooConfig, on_epoch: Callable[[int], None] | None = None) -> Zoo:
    """Train the population ``cfg`` describes and return it as an (unsaved) ``Zoo``."""
    task = load_task(cfg.task)
    arch = cfg.arch.build(task.in_shape, task.num_classes)
    space = cfg.space
    hypers = sample_hypers(
        cfg.models,
        cfg.seed,
        tuple(space.lr),
        tuple(space.wd),
        space.activation,
        space.init,
        space.optimizer,
        space.dropout,
    )
    weights, models = train_population(
        arch,
        task,
        hypers,
        cfg.epochs,
        sorted(set(cfg.checkpoints)),
        cfg.batch_size,
        cfg.seed,
        pick_device(cfg.device),
        on_epoch,
    )
    splits = assign_splits(hypers["model_id"], seed=cfg.seed)
    models["split"] = models["model_id"].map(splits)
    return Zoo(None, cfg.name, cfg.task, arch, models, weights, {"config": asdict(cfg)})
