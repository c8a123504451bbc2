"""Weights <-> tokens: the SANE tokenization, exact in both directions.

Each layer's weight becomes one *row* per output neuron (conv kernels
flattened over in, k, k) with the bias appended as one more column. A row
wider than the token width is cut into ``ceil(row / width)`` consecutive
tokens, and every token is zero-padded to the width. Tokens run layer by
layer, row by row.

The rule is fixed by the architecture alone, so ``layout`` precomputes it as
two index maps and ``tokenize`` / ``detokenize`` are each a single gather over
all N models: exact (values are only moved, never computed), differentiable
(the structural and behavioral losses backpropagate through ``detokenize``),
and on whatever device and dtype the weights live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from wsl.errors import WslError
from wsl.zoo.arch import Arch

ROW = "row"  # the token width that puts one output neuron in one token


@dataclass(frozen=True, eq=False)
class TokenLayout:
    """Where every parameter of an ``arch`` sits in a ``[T, width]`` token grid.

    positions: ``[T, 3]`` long, (global token index, layer index, token index within layer).
    mask: ``[T, width]`` bool, True where a real value sits, False on padding.
    """

    arch: Arch
    width: int
    positions: Tensor
    mask: Tensor
    # [T, width] long: 1 + index into the flat parameter vector, 0 on padding.
    _source: Tensor = field(repr=False)
    # [P] long: for each flat parameter, its index into the flattened [T * width] grid.
    _target: Tensor = field(repr=False)

    @property
    def num_tokens(self) -> int:
        return self.positions.shape[0]

    @property
    def num_layers(self) -> int:
        return len(self.arch.layers)

    @property
    def max_positions(self) -> tuple[int, int, int]:
        """Sizes of the three position-embedding tables (largest index + 1 of each column)."""
        return tuple(int(m) + 1 for m in self.positions.max(0).values)

    @property
    def layer_of_token(self) -> Tensor:
        """``[T]`` long: the layer each token belongs to."""
        return self.positions[:, 1]


def layout(arch: Arch, width: int | str) -> TokenLayout:
    """The token layout of ``arch`` with tokens ``width`` values wide.

    ``width="row"``: one token per output neuron, as wide as the widest row
    (SANE's and S25's choice); the third position id is then the neuron's index.
    """
    if width == ROW:
        width = max(math.prod(layer.weight_shape[1:]) + 1 for layer in arch.layers)
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise WslError(f"token width {width!r} must be a positive integer (e.g. 64) or {ROW!r} (one token a neuron)")
    sources, layer_ids, within = [], [], []
    offset = 0  # flat index of the layer's first weight, in param_shapes order
    for i, layer in enumerate(arch.layers):
        rows, fan_in = layer.out_features, math.prod(layer.weight_shape[1:])
        weight = offset + torch.arange(rows * fan_in).view(rows, fan_in)
        bias = offset + rows * fan_in + torch.arange(rows).view(rows, 1)
        per_row = math.ceil((fan_in + 1) / width)
        row = torch.full((rows, per_row * width), -1, dtype=torch.long)
        row[:, : fan_in + 1] = torch.cat([weight, bias], 1)
        sources.append(row.view(rows * per_row, width) + 1)
        layer_ids.append(torch.full((rows * per_row,), i))
        within.append(torch.arange(rows * per_row))
        offset += rows * (fan_in + 1)
    source = torch.cat(sources)
    positions = torch.stack([torch.arange(source.shape[0]), torch.cat(layer_ids), torch.cat(within)], 1)
    mask = source > 0
    target = torch.empty(offset, dtype=torch.long)
    target[source[mask] - 1] = mask.flatten().nonzero().squeeze(1)
    return TokenLayout(arch, width, positions, mask, source, target)


def tokenize(params: dict[str, Tensor], lay: TokenLayout) -> Tensor:
    """Stacked params ``name -> [N, *shape]`` -> tokens ``[N, T, width]``, zero-padded."""
    flat = _flatten(params, lay.arch)
    padded = torch.cat([flat.new_zeros(flat.shape[0], 1), flat], 1)
    source = lay._source.to(flat.device)
    return padded.index_select(1, source.flatten()).view(flat.shape[0], *source.shape)


def detokenize(tokens: Tensor, lay: TokenLayout) -> dict[str, Tensor]:
    """Tokens ``[N, T, width]`` -> stacked params ``name -> [N, *shape]``; padded slots are ignored."""
    expected = (lay.num_tokens, lay.width)
    if tokens.dim() != 3 or tuple(tokens.shape[1:]) != expected:
        raise WslError(
            f"tokens of shape {tuple(tokens.shape)} do not fit this layout; expected [N, {expected[0]}, {expected[1]}]"
        )
    n = tokens.shape[0]
    flat = tokens.reshape(n, -1).index_select(1, lay._target.to(tokens.device))
    params, offset = {}, 0
    for name, shape in lay.arch.param_shapes.items():
        size = math.prod(shape)
        params[name] = flat[:, offset : offset + size].view(n, *shape)
        offset += size
    return params


def _flatten(params: dict[str, Tensor], arch: Arch) -> Tensor:
    """``[N, P]``: each model's parameters, layer by layer, weight then bias."""
    missing = sorted(set(arch.param_shapes) - set(params))
    if missing:
        raise WslError(f"parameters lack {missing[0]!r}; expected the names {list(arch.param_shapes)}")
    n = params["layers.0.weight"].shape[0]
    parts = []
    for name, shape in arch.param_shapes.items():
        value = params[name]
        if tuple(value.shape[1:]) != tuple(shape) or value.shape[0] != n:
            raise WslError(
                f"parameter {name!r} has shape {tuple(value.shape)}; expected [{n}, {', '.join(map(str, shape))}]"
            )
        parts.append(value.reshape(n, -1))
    return torch.cat(parts, 1)


@dataclass
class Normalizer:
    """Per-layer standardisation of tokens, fit on the training split only.

    mean: ``[L]``, the mean over models of each model's mean of that layer's values.
    std: ``[L]``, sqrt of the mean over models of each model's (population) variance.
    Padding is neither counted nor touched: padded slots stay 0 both ways.
    """

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, tokens: Tensor, lay: TokenLayout, chunk: int = 256) -> Normalizer:
        """Statistics of ``tokens`` ``[N, T, width]`` (the training models) and of nothing else.

        Each model's moments are its own: computed ``chunk`` models at a time, so that the float64 temporaries
        are ``[chunk, T, width]``, not the whole split's (four of 30 MB for the default zoo's training rows).
        """
        moments = [_layer_moments(tokens[s : s + chunk].detach(), lay) for s in range(0, len(tokens), chunk)]
        means, variances = (torch.cat(m) for m in zip(*moments))  # [N, L] each
        std = variances.mean(0).sqrt()
        std = torch.where(std > 0, std, torch.ones_like(std))
        return cls(means.mean(0).float().cpu(), std.float().cpu())

    def normalize(self, tokens: Tensor, lay: TokenLayout) -> Tensor:
        mean, std, mask = self._per_token(tokens, lay)
        return (tokens - mean) / std * mask

    def denormalize(self, tokens: Tensor, lay: TokenLayout) -> Tensor:
        mean, std, mask = self._per_token(tokens, lay)
        return (tokens * std + mean) * mask

    def _per_token(self, tokens: Tensor, lay: TokenLayout) -> tuple[Tensor, Tensor, Tensor]:
        """Mean and std ``[T, 1]`` and mask ``[T, width]`` on the tokens' device and dtype."""
        if self.mean.shape[0] != lay.num_layers:
            raise WslError(f"normalizer has {self.mean.shape[0]} layers but the layout has {lay.num_layers}; refit it")
        layer = lay.layer_of_token.to(tokens.device)
        mean = self.mean.to(tokens.device, tokens.dtype)[layer, None]
        std = self.std.to(tokens.device, tokens.dtype)[layer, None]
        return mean, std, lay.mask.to(tokens.device, tokens.dtype)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        try:
            mean, std = torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(d["std"], dtype=torch.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise WslError(f"normalizer {d!r} is malformed ({e}); expected lists 'mean' and 'std'") from None
        if mean.dim() != 1 or mean.shape != std.shape:
            raise WslError(f"normalizer mean and std must be equal-length lists, got {d!r}")
        return cls(mean, std)


def _layer_moments(tokens: Tensor, lay: TokenLayout) -> tuple[Tensor, Tensor]:
    """Each model's mean and (population) variance of each layer's values, ``[N, L]`` float64 each, of tokens
    ``[N, T, width]``; padding is not counted."""
    x = tokens.double()
    mask = lay.mask.to(x.device)
    one_hot = torch.nn.functional.one_hot(lay.layer_of_token.to(x.device), lay.num_layers).double()  # [T, L]
    counts = mask.sum(1).double() @ one_hot  # [L]
    means = ((x * mask).sum(2) @ one_hot) / counts
    centered = (x - means[:, lay.layer_of_token.to(x.device), None]) * mask
    return means, (centered.square().sum(2) @ one_hot) / counts
