"""The Small CNN Zoo's ``layout.csv``: where each Keras variable sits in a row of ``weights.npy``, and what
network and wsl parameters those variables make.

``layout.csv`` lists ``varname,start_idx,end_idx,shape``. Each variable is one
kernel or bias of a Keras layer (``sequential/conv2d/kernel:0``); the layers
run in Keras's naming order (``conv2d``, ``conv2d_1``, ...). Keras keeps conv
kernels ``[kh, kw, in, out]`` and dense kernels ``[in, out]``; wsl keeps
``[out, in, kh, kw]`` and ``[out, in]`` (``slots`` says how to permute).
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wsl.errors import WslError
from wsl.zoo.arch import Arch, Conv

STRIDE, PADDING = 2, 0  # every conv of the zoo: Conv2D(strides=2, padding="valid")
VARIABLE = re.compile(r"(?P<layer>.+)/(?P<role>kernel|bias)(?::\d+)?")


@dataclass(frozen=True)
class Variable:
    """One Keras variable of ``layout.csv``: values ``[start, end)`` of a row, in Keras ``shape``."""

    name: str
    layer: str
    role: str  # kernel | bias
    start: int
    end: int
    shape: tuple[int, ...]


def read_layout(file: Path, width: int, weights_file: Path) -> list[Variable]:
    """The variables of ``layout.csv``, by ``start_idx``; together they must cover a row of ``width`` exactly."""
    try:
        table = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise WslError(f"{file} is not a readable CSV file ({e})") from None
    missing = [c for c in ("varname", "start_idx", "end_idx", "shape") if c not in table.columns]
    if missing:
        raise WslError(f"{file}: column {missing[0]!r} is missing; expected varname,start_idx,end_idx,shape")
    variables = sorted((_variable(row, file) for row in table.itertuples(index=False)), key=lambda v: v.start)
    end = 0
    for v in variables:
        if v.start != end:
            raise WslError(
                f"{file}: variable {v.name} starts at {v.start}, but the variables before it end at {end}; "
                "a layout covers a row without gaps or overlaps"
            )
        end = v.end
    if end != width:
        raise WslError(
            f"{file}: the variables cover {end} values of a row, but {weights_file} rows hold {width}; "
            "this layout is not that of these weights"
        )
    return variables


def _variable(row, file: Path) -> Variable:
    """One ``layout.csv`` row, checked: a ``<layer>/kernel`` or ``<layer>/bias`` whose slice fits its shape."""
    match = VARIABLE.fullmatch(row.varname)
    if not match:
        raise WslError(f"{file}: variable {row.varname!r} is not a Keras <layer>/kernel:0 or <layer>/bias:0")
    try:
        start, end, shape = int(row.start_idx), int(row.end_idx), ast.literal_eval(row.shape)
        shape = tuple(shape) if isinstance(shape, tuple) else (shape,)
        if not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(row.shape)
    except (ValueError, SyntaxError, TypeError):
        raise WslError(
            f"{file}: variable {row.varname}: start_idx {row.start_idx!r}, end_idx {row.end_idx!r}, shape "
            f"{row.shape!r} are not two integers and a shape like '(3, 3, 1, 16)'"
        ) from None
    if end - start != math.prod(shape):
        raise WslError(
            f"{file}: variable {row.varname} spans [{start}, {end}) ({end - start} values), but its shape {shape} "
            f"holds {math.prod(shape)}"
        )
    return Variable(row.varname, match["layer"], match["role"], start, end, shape)


def layers(variables: list[Variable], file: Path) -> list[tuple[Variable, Variable]]:
    """``(kernel, bias)`` per layer in forward order: the convs (4-D kernels), then the dense layers (2-D).

    Keras numbers the layers it names in the order they were added
    (``conv2d``, ``conv2d_1``, ...), so the order is the names' numeric one,
    never the order of the variables in a row. The shapes must chain: each
    conv reads the previous one's channels, the first dense layer the last
    conv's (global pooling), each further dense layer the previous one's units.
    """
    by_layer: dict[str, dict[str, Variable]] = {}
    for v in variables:
        if v.role in by_layer.setdefault(v.layer, {}):
            raise WslError(f"{file}: layer {v.layer} has two {v.role} variables")
        by_layer[v.layer][v.role] = v
    incomplete = [layer for layer, vs in by_layer.items() if set(vs) != {"kernel", "bias"}]
    if incomplete:
        raise WslError(f"{file}: layer {incomplete[0]} needs both a kernel and a bias variable")
    ranks = {layer: len(vs["kernel"].shape) for layer, vs in by_layer.items()}
    convs = sorted((layer for layer, r in ranks.items() if r == 4), key=_keras_order)
    denses = sorted((layer for layer, r in ranks.items() if r == 2), key=_keras_order)
    if not convs or not denses or len(convs) + len(denses) != len(ranks):
        raise WslError(
            f"{file}: kernel ranks {ranks} are not convs (4-D) followed by dense layers (2-D), "
            "the Small CNN Zoo's network"
        )
    layers = [(by_layer[layer]["kernel"], by_layer[layer]["bias"]) for layer in convs + denses]
    features = layers[0][0].shape[2]
    for kernel, bias in layers:
        conv = len(kernel.shape) == 4
        reads = kernel.shape[2] if conv else kernel.shape[0]
        if reads != features or (conv and kernel.shape[0] != kernel.shape[1]):
            expected = f"a square conv kernel [k, k, {features}, out]" if conv else f"a dense kernel [{features}, out]"
            raise WslError(
                f"{file}: variable {kernel.name} has shape {kernel.shape}, expected {expected}: "
                "each layer reads the channels or units of the one before"
            )
        features = kernel.shape[-1]
        if bias.shape != (features,):
            raise WslError(f"{file}: variable {bias.name} has shape {bias.shape}, expected ({features},)")
    return layers


def _keras_order(layer: str) -> tuple[str, int]:
    """``sequential/conv2d`` -> (``sequential/conv2d``, 0), ``sequential/conv2d_10`` -> (..., 10)."""
    base, _, number = layer.rpartition("_")
    return (base, int(number)) if number.isdigit() else (layer, 0)


def arch(layers: list[tuple[Variable, Variable]], side: int) -> Arch:
    """Strided valid convs without max-pool, global average pooling, dense layers: the zoo's network."""
    convs = tuple(Conv(k.shape[3], k.shape[0], PADDING, False, STRIDE) for k, _ in layers if len(k.shape) == 4)
    units = [k.shape[1] for k, _ in layers if len(k.shape) == 2]
    in_shape = (layers[0][0].shape[2], side, side)
    return Arch("cnn", in_shape, units[-1], convs, tuple(units[:-1]), global_pool=True)


def slots(layers: list[tuple[Variable, Variable]]) -> dict[str, tuple[Variable, tuple[int, ...]]]:
    """wsl parameter name -> (its Keras variable, the permutation of the Keras axes into wsl's layout)."""
    slots = {}
    for i, (kernel, bias) in enumerate(layers):
        slots[f"layers.{i}.weight"] = (kernel, _to_wsl(len(kernel.shape)))
        slots[f"layers.{i}.bias"] = (bias, (0,))
    return slots


def _to_wsl(rank: int) -> tuple[int, ...]:
    """Conv ``[kh, kw, in, out]`` -> ``[out, in, kh, kw]``; dense ``[in, out]`` -> ``[out, in]``."""
    return (3, 2, 0, 1) if rank == 4 else (1, 0)
