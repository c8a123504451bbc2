"""The three training losses and how they combine.

    L = gamma * L_contrast + (1 - gamma) * (beta * L_struct + (1 - beta) * L_behav)

- structural: masked MSE between reconstructed and original tokens, both
  per-layer normalised (so every layer counts, whatever its scale);
- contrastive: NT-Xent between projections of two views of each model;
- behavioral: the reconstructed tokens are de-normalised, cut back into
  weights and *run* (one batched ``arch.forward`` for all models of a batch)
  on a shared probe set; their softmax outputs are compared with the original
  models' outputs. Gradients flow through the network evaluation into the
  decoder. S25's finding is that low weight error alone can give broken
  models, and this term repairs that.

``LossScaler`` divides each component by its value on the first batch, so
that gamma and beta weigh comparable quantities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from wsl.tokens import Normalizer, TokenLayout, detokenize
from wsl.zoo.arch import forward


@dataclass
class LossConfig:
    gamma: float = 0.05
    beta: float = 0.1
    temperature: float = 0.1  # NT-Xent
    probe_size: int = 256  # behavioral inputs per step
    probe_inputs: str = "train"  # train | noise | mix
    resample: bool = True  # draw new inputs every step (S25); false: one fixed probe set per run
    probe_pool: int = 0  # with resample: draw from the first N training inputs (0: all of them)
    warmup_epochs: int = 0  # epochs of structure (and contrast) alone before the behavioral term joins
    distance: str = "mse"  # mse (of softmax outputs) | kl
    kl_temperature: float = 2.0
    scale_by_first: bool = True


def struct_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked MSE. pred, target: [N, T, W]; mask: [T, W] bool (padding False)."""
    m = mask.to(pred.dtype)
    return ((pred - target) ** 2 * m).sum() / (m.sum() * pred.shape[0])


def nt_xent(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """SimCLR's NT-Xent for projections a, b: [N, D]; pair i of a and i of b is positive."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / temperature
    n = a.shape[0]
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(a.device)
    return F.cross_entropy(sim, targets)


def run_tokens(pred: Tensor, lay: TokenLayout, norm: Normalizer, probe_x: Tensor, activations) -> Tensor:
    """Logits [N, P, classes] of the models that normalised tokens [N, T, W] describe, on probe_x [P, C, H, W]."""
    params = detokenize(norm.denormalize(pred, lay), lay)
    return forward(lay.arch, params, probe_x, activations)


def behav_loss(logits: Tensor, target_logits: Tensor, cfg: LossConfig) -> Tensor:
    """Distance between reconstructed and original outputs, both [N, P, classes]."""
    if cfg.distance == "kl":
        t = cfg.kl_temperature
        log_p = F.log_softmax(logits / t, -1)
        log_q = F.log_softmax(target_logits / t, -1)
        return F.kl_div(log_p, log_q, log_target=True, reduction="batchmean") * t * t / logits.shape[1]
    return F.mse_loss(logits.softmax(-1), target_logits.softmax(-1))


class LossScaler:
    """Divides each named component by its (detached) value on the first call."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.first: dict[str, float] = {}

    def __call__(self, name: str, value: Tensor) -> Tensor:
        if not self.enabled:
            return value
        ref = self.first.setdefault(name, max(float(value.detach()), 1e-12))
        return value / ref


def combine(cfg: LossConfig, contrast: Tensor, struct: Tensor, behav: Tensor | None) -> Tensor:
    """The weighted total; ``behav`` is None when the behavioral term is off (beta == 1, or a warm-up epoch)."""
    inner = struct if behav is None else cfg.beta * struct + (1 - cfg.beta) * behav
    return cfg.gamma * contrast + (1 - cfg.gamma) * inner
