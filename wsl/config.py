"""The training config as typed data: what one autoencoder run is, checked once when it is built.

``TrainConfig`` nests the sections of ``sweeps/train.yaml`` (``tokens``,
``model``, ``loss``, ``optim``, ``augment``); its ``__post_init__`` rejects
out-of-range values with the key's name. The helpers move it between the
nested dataclass and the two plain shapes it is stored in: a nested dict
(``asdict``; YAML, checkpoints) and flat dotted keys (``loss.beta``; the
results table's config columns, a sweep's searched values).

Hydra composes it in the command line (``wsl.compose``); nothing here reads a
file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from wsl.errors import WslError
from wsl.losses import LossConfig
from wsl.metrics import WORKING_ACC
from wsl.model import ModelConfig
from wsl.tokens import ROW


@dataclass
class TokenConfig:
    width: int | str = "row"  # "row": one token per output neuron (its index in the position), or values per token


@dataclass
class AugmentConfig:
    permute: bool = True
    noise: float = 0.1
    erase_p: float = 0.5


@dataclass
class EvalConfig:
    later_epoch: int = 5  # "later rows": checkpoints at or after this epoch (the papers' zoos hold no earlier ones)
    working_acc: float = WORKING_ACC  # held-out originals at or above this test accuracy are "working"
    baselines: bool = True  # boosting and metadata baselines at the end of a run (seconds; sweep trials skip them)
    test: bool = True  # the end of a run: baselines and the test figures (test_*); sweep trials never compute them
    inputs: int | None = 1000  # test inputs each epoch's reconstructions run on (a fixed subset, at most); None: all


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 30
    batch_size: int = 64


@dataclass
class TrainConfig:
    name: str = "default"
    zoo: str = "zoos/digits-cnn"
    out: str = "runs/default"
    seed: int = 0
    device: str = "auto"
    generate: int = 32  # models sampled from the KDE at the end (0: skip generation)
    tokens: TokenConfig = field(default_factory=TokenConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        if isinstance(self.tokens.width, str) and self.tokens.width.isdigit():  # a width read back as text
            self.tokens.width = int(self.tokens.width)
        checks = [
            ("loss.gamma", self.loss.gamma, 0 <= self.loss.gamma <= 1, "in [0, 1]"),
            ("loss.beta", self.loss.beta, 0 <= self.loss.beta <= 1, "in [0, 1]"),
            ("loss.probe_size", self.loss.probe_size, self.loss.probe_size >= 1, ">= 1"),
            (
                "loss.probe_inputs",
                self.loss.probe_inputs,
                self.loss.probe_inputs in ("train", "noise", "mix"),
                "train, noise or mix",
            ),
            ("loss.distance", self.loss.distance, self.loss.distance in ("mse", "kl"), "mse or kl"),
            ("loss.probe_pool", self.loss.probe_pool, self.loss.probe_pool >= 0, ">= 0 (0: every training input)"),
            ("loss.warmup_epochs", self.loss.warmup_epochs, self.loss.warmup_epochs >= 0, ">= 0"),
            ("loss.temperature", self.loss.temperature, self.loss.temperature > 0, "> 0"),
            (
                "tokens.width",
                self.tokens.width,
                self.tokens.width == ROW or (isinstance(self.tokens.width, int) and self.tokens.width >= 1),
                f">= 1, or {ROW!r}",
            ),
            ("optim.lr", self.optim.lr, self.optim.lr > 0, "> 0"),
            ("optim.epochs", self.optim.epochs, self.optim.epochs >= 1, ">= 1"),
            ("optim.batch_size", self.optim.batch_size, self.optim.batch_size >= 2, ">= 2 (contrastive pairs)"),
            (
                "model.d_model",
                self.model.d_model,
                self.model.d_model % self.model.heads == 0,
                f"a multiple of model.heads={self.model.heads}",
            ),
            ("model.latent_dim", self.model.latent_dim, self.model.latent_dim >= 1, ">= 1"),
            ("augment.erase_p", self.augment.erase_p, 0 <= self.augment.erase_p <= 1, "in [0, 1]"),
            ("augment.noise", self.augment.noise, self.augment.noise >= 0, ">= 0"),
            ("eval.working_acc", self.eval.working_acc, 0 <= self.eval.working_acc <= 1, "in [0, 1]"),
            ("eval.inputs", self.eval.inputs, _count_or_none(self.eval.inputs), "an integer >= 1, or null (all)"),
        ]
        for key, value, ok, expected in checks:
            if not ok:
                raise WslError(f"config value {key}={value!r} is invalid: expected {expected}")


def _count_or_none(value) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


def with_values(base: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """``base`` with dotted ``values`` set; validated again as a whole (e.g. d_model vs heads)."""
    tree = asdict(base)
    for key, value in values.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node[part]
        node[leaf] = value
    return from_dict(TrainConfig, tree)


def from_dict(schema, tree: dict):
    """Rebuild a nested dataclass from ``asdict`` output (runs each ``__post_init__``)."""
    kwargs = {}
    for f in fields(schema):
        if f.name in tree:
            sub = f.default_factory() if callable(f.default_factory) else None
            kwargs[f.name] = from_dict(type(sub), tree[f.name]) if is_dataclass(sub) else tree[f.name]
    return schema(**kwargs)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dict (e.g. ``asdict(TrainConfig)``) -> ``{"loss.beta": 0.1, ...}``: the table's config columns."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
