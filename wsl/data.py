"""A zoo made ready for the autoencoder: tokens, splits, normaliser, and the behavioral targets.

``prepare`` is what training and evaluation both read (tokens on the device,
normalised per layer with training-split statistics, or with the normaliser a
run was trained with when it is reloaded). ``behavior`` is what the
behavioral loss alone reads: the probe inputs and the original models'
outputs on them, computed once per probe set (seconds on a CPU) and kept in a
``memo`` that a sweep worker shares between the trials it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wsl.errors import WslError
from wsl.losses import LossConfig
from wsl.tokens import Normalizer, TokenLayout, layout, tokenize
from wsl.zoo.arch import forward
from wsl.zoo.store import Zoo
from wsl.zoo.tasks import Task, load_task


@dataclass
class Data:
    """Everything about the zoo a run reads, prepared once."""

    zoo: Zoo
    task: Task
    lay: TokenLayout
    norm: Normalizer
    tokens: torch.Tensor  # [R, T, W] normalised, on the device
    rows: dict[str, np.ndarray]  # split -> row indices
    activations: np.ndarray  # [R]


@dataclass
class Behavior:
    """The behavioral loss's inputs: a probe set and the originals' logits on it."""

    probe_x: torch.Tensor  # [P, C, H, W]
    targets: torch.Tensor  # [R, P, classes]: training rows filled, zeros elsewhere (the loss reads no other row)


def prepare(zoo: Zoo, token_width: int, device: str, norm: Normalizer | None = None) -> Data:
    """Tokens and splits of ``zoo``; normalised by ``norm``, else by one fit on the training split."""
    task = load_task(zoo.task)
    lay = layout(zoo.arch, token_width)
    raw = tokenize(zoo.weights, lay)
    split = zoo.models["split"].to_numpy()
    rows = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    if any(len(r) == 0 for r in rows.values()):
        raise WslError(f"zoo {zoo.path} needs models in each of the train, val and test splits")
    norm = norm if norm is not None else Normalizer.fit(raw[rows["train"]], lay)
    acts = zoo.models["activation"].to_numpy()
    return Data(zoo, task, lay, norm, norm.normalize(raw, lay).to(device), rows, acts)


def behavior(data: Data, loss: LossConfig, seed: int, memo: dict | None = None) -> Behavior | None:
    """The probe set of ``loss`` (drawn with ``seed``) and the training models' logits on it; None at beta 1.

    ``memo``: where to keep the targets for the next call on the same zoo with
    the same probe set (newest last; the caller bounds its size).
    """
    if loss.beta >= 1:  # the loss never reads them
        return None
    device = data.tokens.device
    probe_x = probe_inputs(data.task, loss.probe_size, loss.probe_inputs, seed).to(device)
    memo = {} if memo is None else memo
    key = (str(data.zoo.path), len(data.zoo), loss.probe_size, loss.probe_inputs, seed, str(device))
    targets = memo.pop(key, None)  # re-inserted below: newest last
    if targets is None:
        targets = behavioral_targets(data.zoo, data.rows["train"], probe_x, data.activations)
    memo[key] = targets
    return Behavior(probe_x, targets)


@torch.no_grad()
def behavioral_targets(
    zoo: Zoo, train: np.ndarray, probe_x: torch.Tensor, activations: np.ndarray, chunk: int = 256
) -> torch.Tensor:
    """[R, P, classes]: the ``train`` rows' logits on the probe set, ``chunk`` models at a time; zeros elsewhere."""
    weights = {k: v[train].to(probe_x.device) for k, v in zoo.weights.items()}
    acts = activations[train]
    outputs = torch.cat(
        [
            forward(zoo.arch, {k: v[s : s + chunk] for k, v in weights.items()}, probe_x, list(acts[s : s + chunk]))
            for s in range(0, len(train), chunk)
        ]
    )
    target = outputs.new_zeros(len(zoo), *outputs.shape[1:])
    target[train] = outputs
    return target


def probe_inputs(task: Task, size: int, kind: str, seed: int) -> torch.Tensor:
    """The behavioral probe set [size, C, H, W]: training inputs, uniform noise over their range, or half each."""
    gen = torch.Generator().manual_seed(seed)
    real = task.x_train[torch.randint(len(task.x_train), (size,), generator=gen)]
    lo, hi = task.x_train.min(), task.x_train.max()
    noise = lo + (hi - lo) * torch.rand(real.shape, generator=gen)
    if kind == "mix":
        return torch.cat([real[: size // 2], noise[size // 2 :]])
    return real if kind == "train" else noise
