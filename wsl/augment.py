"""Two random views of the same models, for the contrastive loss.

A view is: permute hidden neurons (the same function, different weights),
tokenize, multiply by ``1 + sigma * eps`` noise, and with probability ``p``
erase a contiguous span of 2-33% of the model's values (SANE's augmentations).
Everything is batched over the N models and seeded by a ``torch.Generator``;
random numbers are drawn on the generator's device and then moved to the data.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from wsl.errors import WslError
from wsl.tokens import Normalizer, TokenLayout, tokenize
from wsl.zoo.arch import Arch


def permute_neurons(arch: Arch, params: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
    """Each model's hidden units reordered by its own random permutation; same function.

    For every layer but the last, a permutation ``[N, out]`` reorders that
    layer's weight rows and bias and, to match, the next layer's inputs: the
    next conv's in-channels, the next linear's columns, or (conv -> linear) the
    flattened features in blocks of one channel each. Flattening is
    channel-major, so channel c owns features ``c * block .. (c + 1) * block``
    where ``block`` is the spatial size after that conv block (pooling included).
    """
    out = dict(params)
    n = params["layers.0.weight"].shape[0]
    for i, layer in enumerate(arch.layers[:-1]):
        perm = _rand((n, layer.out_features), generator, params["layers.0.weight"].device).argsort(1)
        out = reorder_units(arch, out, i, perm)
    return out


def reorder_units(arch: Arch, params: dict[str, Tensor], i: int, perm: Tensor) -> dict[str, Tensor]:
    """Hidden layer ``i``'s units of each model reordered by ``perm`` ``[N, units]`` (the new unit j is
    the old unit ``perm[:, j]``), and the next layer's inputs with them: every model computes what it did."""
    out = dict(params)
    weight, bias, following = f"layers.{i}.weight", f"layers.{i}.bias", f"layers.{i + 1}.weight"
    out[weight] = _take(out[weight], perm, 1)
    out[bias] = _take(out[bias], perm, 1)
    block = arch.layers[i + 1].weight_shape[1] // arch.layers[i].out_features
    features = (perm.unsqueeze(2) * block + torch.arange(block, device=perm.device)).flatten(1)
    out[following] = _take(out[following], features, 2)
    return out


def multiplicative_noise(tokens: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    """``tokens * (1 + sigma * eps)``, eps ~ N(0, 1) per value; zero padding stays zero."""
    return tokens * (1 + sigma * _randn(tokens.shape, generator, tokens.device, tokens.dtype))


def erase(
    tokens: Tensor,
    mask: Tensor,
    p: float,
    frac_range: tuple[float, float] = (0.02, 0.33),
    *,
    generator: torch.Generator,
) -> Tensor:
    """With probability ``p`` per model, zero one contiguous span of its real values.

    tokens: ``[N, T, W]``; mask: ``[T, W]`` (the layout's), True on real values.
    The span runs over real values in token order (padding is skipped) and
    holds between ``frac_range[0]`` and ``frac_range[1]`` of them (never more
    than the upper bound when no whole number of values fits the range).
    """
    lo, hi = frac_range
    if not 0 <= p <= 1:
        raise WslError(f"erase probability {p!r} must lie in [0, 1]")
    if not 0 <= lo <= hi <= 1:
        raise WslError(f"erase fraction range {frac_range!r} must satisfy 0 <= low <= high <= 1")
    n = tokens.shape[0]
    real = mask.flatten().nonzero().squeeze(1).to(tokens.device)  # [R]
    count = real.shape[0]
    longest = math.floor(hi * count)
    shortest = min(math.ceil(lo * count), longest)
    draws = _rand((n, 3), generator, tokens.device)
    length = shortest + (draws[:, 0] * (longest - shortest + 1)).long().clamp(max=longest - shortest)
    start = (draws[:, 1] * (count - length + 1)).long().clamp(max=count - length)
    applies = draws[:, 2] < p
    index = torch.arange(count, device=tokens.device)
    span = (index >= start[:, None]) & (index < (start + length)[:, None]) & applies[:, None]  # [N, R]
    erased = torch.zeros(n, mask.numel(), dtype=torch.bool, device=tokens.device)
    erased[:, real] = span
    return tokens.masked_fill(erased.view(tokens.shape), 0)


class View(NamedTuple):
    """One augmented view of N models: what the encoder reads, and the clean tokens it should rebuild."""

    clean: Tensor  # [N, T, W]: permuted (if asked) and normalised, nothing more
    augmented: Tensor  # [N, T, W]: the same, then noise and erasing


def two_views(
    arch: Arch,
    params: dict[str, Tensor],
    lay: TokenLayout,
    generator: torch.Generator,
    noise: float = 0.1,
    erase_p: float = 0.5,
    *,
    permute: bool = True,
    normalizer: Normalizer | None = None,
) -> tuple[View, View]:
    """Two independently augmented views of the same N models.

    Each view: permute -> tokenize -> (normalize, if a normalizer is given) ->
    noise -> erase, so erased values are 0 in the space the model sees.
    """
    if arch != lay.arch:
        raise WslError(f"layout was built for {lay.arch}, not for {arch}; build it with tokens.layout(arch, width)")
    return tuple(_view(params, lay, generator, noise, erase_p, permute, normalizer) for _ in range(2))


def _view(params, lay, generator, noise, erase_p, permute, normalizer) -> View:
    tokens = tokenize(permute_neurons(lay.arch, params, generator) if permute else params, lay)
    clean = normalizer.normalize(tokens, lay) if normalizer is not None else tokens
    noisy = multiplicative_noise(clean, noise, generator)
    return View(clean, erase(noisy, lay.mask.to(clean.device), erase_p, generator=generator))


def _take(x: Tensor, index: Tensor, dim: int) -> Tensor:
    """``x`` ``[N, ...]`` reordered along ``dim`` by a per-model ``index`` ``[N, size]``."""
    shape = [index.shape[0]] + [1] * (x.dim() - 1)
    shape[dim] = index.shape[1]
    return x.gather(dim, index.view(shape).expand(*x.shape[:dim], index.shape[1], *x.shape[dim + 1 :]))


def _rand(shape, generator: torch.Generator, device) -> Tensor:
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _randn(shape, generator: torch.Generator, device, dtype) -> Tensor:
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
