"""A zoo made ready for the autoencoder: tokens, splits, normaliser, and the behavioral targets.

``prepare`` is what training and evaluation both read (tokens on the device,
normalised per layer with training-split statistics, or with the normaliser a
run was trained with when it is reloaded). ``behavior`` is what the
behavioral loss alone reads, in one of two modes:

- a fixed probe set per run: the original models' outputs on it are computed
  once (seconds on a CPU) and kept in a ``memo`` that a sweep worker shares
  between the trials it runs; memory: [models, probe_size, classes] floats;
- a fresh draw of ``probe_size`` training inputs every step (S25's setting):
  the batch's originals are run on it without gradients, one batched forward
  per step. Memory is the input pool on the device (``loss.probe_pool``
  bounds it: 50,000 CIFAR images are 600 MB as float32, 4,096 are 50 MB) plus
  [batch, probe_size, classes]; time per step grows with batch and probe
  size, never with the zoo or the task's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wsl.errors import WslError
from wsl.losses import LossConfig
from wsl.tokens import Normalizer, TokenLayout, layout, tokenize
from wsl.zoo.arch import forward
from wsl.zoo.splits import SPLITS
from wsl.zoo.store import Zoo
from wsl.zoo.tasks import TASKS, Task, load_task


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
    """The behavioral loss's inputs: a probe set and the originals' logits on it, or a pool to draw from."""

    probe_x: torch.Tensor | None  # [P, C, H, W]: the fixed probe set (None when resampling)
    targets: torch.Tensor | None  # [R, P, classes]: originals' logits on it, training rows filled (others unread)
    pool: torch.Tensor | None = None  # [N, C, H, W]: inputs drawn from every step (None for a fixed set)
    size: int = 0  # inputs per step
    kind: str = "train"  # train | noise | mix
    generator: torch.Generator | None = None  # the draws' own stream (``wsl.train`` reseeds it every epoch)

    def step(
        self, data: Data, batch: np.ndarray, originals: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's inputs [P, C, H, W] and the batch's original logits on them [B, P, classes].

        ``originals``: the batch's weights (name -> [B, *shape]) on the device, as the step has them.
        """
        if self.pool is None:
            return self.probe_x, self.targets[batch]
        x = draw(self.pool, self.size, self.kind, self.generator).to(data.tokens.device)
        with torch.no_grad():
            return x, forward(data.zoo.arch, originals, x, list(data.activations[batch]))


def task_of(zoo: Zoo) -> Task:
    """The task ``zoo``'s models run on: the data the zoo carries, else the shipped task it names."""
    if zoo.task_data is not None:
        return zoo.task_data
    if zoo.task not in TASKS:
        raise WslError(
            f"zoo {zoo.path or zoo.name} has no task data and its task {zoo.task!r} does not ship with wsl "
            f"(shipped: {', '.join(TASKS)}); import it with its data (see README, Zoos)"
        )
    return load_task(zoo.task)


def prepare(zoo: Zoo, token_width: int | str, device: str, norm: Normalizer | None = None) -> Data:
    """Tokens and splits of ``zoo``; normalised by ``norm``, else by one fit on the training split."""
    task = task_of(zoo)
    lay = layout(zoo.arch, token_width)
    raw = tokenize(zoo.weights, lay)
    split = zoo.models["split"].to_numpy()
    rows = {s: np.flatnonzero(split == s) for s in SPLITS}
    if any(len(r) == 0 for r in rows.values()):
        raise WslError(f"zoo {zoo.path} needs models in each of the train, val and test splits")
    norm = norm if norm is not None else Normalizer.fit(raw[rows["train"]], lay)
    acts = zoo.models["activation"].to_numpy()
    return Data(zoo, task, lay, norm, norm.normalize(raw, lay).to(device), rows, acts)


def behavior(data: Data, loss: LossConfig, seed: int, memo: dict | None = None) -> Behavior | None:
    """The behavioral loss's inputs for ``loss``; None at beta 1.

    A fixed probe set (drawn with ``seed``) and the training models' logits on
    it; ``memo``: where to keep those for the next call on the same zoo with the
    same probe set (newest last; the caller bounds its size). With
    ``loss.resample``: the pool to draw from each step, and no targets.
    """
    if loss.beta >= 1:  # the loss never reads them
        return None
    device = data.tokens.device
    if loss.resample:
        pool = data.task.x_train[: loss.probe_pool or None].to(device)
        return Behavior(None, None, pool, loss.probe_size, loss.probe_inputs, torch.Generator().manual_seed(seed))
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
    """The fixed behavioral probe set [size, C, H, W], drawn once with ``seed``."""
    return draw(task.x_train, size, kind, torch.Generator().manual_seed(seed))


def draw(pool: torch.Tensor, size: int, kind: str, gen: torch.Generator) -> torch.Tensor:
    """[size, C, H, W]: inputs of ``pool``, uniform noise over their range, or half each (``kind`` mix)."""
    real = pool[torch.randint(len(pool), (size,), generator=gen).to(pool.device)]
    if kind == "train":
        return real
    lo, hi = pool.min(), pool.max()
    noise = lo + (hi - lo) * torch.rand(real.shape, generator=gen).to(pool.device)
    return torch.cat([real[: size // 2], noise[size // 2 :]]) if kind == "mix" else noise
