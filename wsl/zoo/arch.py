"""Zoo architectures and one batched forward pass for a whole population.

An ``Arch`` describes a small CNN (conv-pool-act blocks, then fully connected
layers, as in the public model zoos) or an MLP. A CNN may stride its convs
and average its last conv's output over space before the fully connected
layers (``global_pool``: the Small CNN Zoo's Conv2D(stride 2) x 3,
GlobalAveragePooling2D, Dense). Its parameters are named
``layers.<i>.weight`` / ``layers.<i>.bias`` in forward order; conv weights are
``[out, in, k, k]``, linear weights ``[out, in]``.

A *population* is N models of one architecture held as stacked tensors: a dict
``name -> Tensor[N, *shape]``. ``forward`` runs all N models in one pass, each
on its own inputs (``[N, B, C, H, W]``) or on shared ones (``[B, C, H, W]``),
and returns logits ``[N, B, classes]``. Gradients of a summed per-model loss
w.r.t. the stacked tensors are each model's own gradients, so training,
evaluation and the autoencoder's behavioral loss all use this one function.

Convolutions take one of two exact routes. Small layers (the zoo CNNs on 8x8
or 12x12 inputs) become a dense matrix per model gathered from the kernel
(``[N, out_pixels, in_pixels]``) and run as one ``bmm``: on a CPU that is
several times faster than a grouped convolution for kernels this small.
Large layers use ``conv2d`` with ``groups=N``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsl.errors import WslError

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "leakyrelu": F.leaky_relu,
    "selu": F.selu,  # the Small CNN Zoo's training code accepts it beside relu, tanh and sigmoid
}
INITS = ("uniform", "normal", "kaiming_uniform", "kaiming_normal")
DENSE_LIMIT = 1 << 18  # entries of one model's dense conv matrix; above it, grouped conv


@dataclass(frozen=True)
class Conv:
    """One conv block: Conv2d(out_channels, kernel, padding, stride) -> [MaxPool2d(2)] -> act."""

    out_channels: int
    kernel: int
    padding: int = 0
    pool: bool = True
    stride: int = 1

    def to_dict(self) -> dict:
        """The fields; ``stride`` only when it is not 1, so older specs read and write exactly as before."""
        d = vars(self).copy()
        if self.stride == 1:
            del d["stride"]
        return d


@dataclass(frozen=True)
class Arch:
    """A zoo architecture. ``in_shape`` is (channels, height, width).

    ``global_pool``: the first linear layer reads the last conv block's output
    averaged over space (``[C]``) instead of flattened (``[C * H * W]``).
    """

    family: str
    in_shape: tuple[int, int, int]
    num_classes: int
    convs: tuple[Conv, ...] = ()
    hidden: tuple[int, ...] = ()
    global_pool: bool = False
    layers: tuple[Layer, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.family not in ("cnn", "mlp"):
            raise WslError(f"unknown architecture family {self.family!r}; known: cnn, mlp")
        if self.family == "mlp" and self.convs:
            raise WslError("an mlp architecture has no convs; use family 'cnn'")
        if self.global_pool and not self.convs:
            raise WslError("global_pool averages a conv block's output over space; it needs convs (family 'cnn')")
        bad = [c for c in self.convs if c.stride < 1]
        if bad:
            raise WslError(f"conv {bad[0]} has stride {bad[0].stride}; a stride is a positive integer")
        object.__setattr__(self, "layers", tuple(_build_layers(self)))

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Ordered ``name -> shape`` of one model's parameters."""
        shapes = {}
        for i, layer in enumerate(self.layers):
            shapes[f"layers.{i}.weight"] = layer.weight_shape
            shapes[f"layers.{i}.bias"] = (layer.out_features,)
        return shapes

    @property
    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes.values())

    def to_dict(self) -> dict:
        """A JSON-able spec; ``global_pool`` only when set, so older specs read and write exactly as before."""
        d = {
            "family": self.family,
            "in_shape": list(self.in_shape),
            "num_classes": self.num_classes,
            "convs": [c.to_dict() for c in self.convs],
            "hidden": list(self.hidden),
        }
        if self.global_pool:
            d["global_pool"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Arch:
        try:
            return cls(
                family=d["family"],
                in_shape=tuple(d["in_shape"]),
                num_classes=int(d["num_classes"]),
                convs=tuple(Conv(**c) for c in d.get("convs", ())),
                hidden=tuple(int(h) for h in d.get("hidden", ())),
                global_pool=bool(d.get("global_pool", False)),
            )
        except (KeyError, TypeError) as e:
            raise WslError(f"architecture spec {d!r} is malformed: {e}") from None


@dataclass(frozen=True)
class Layer:
    """One weight layer as the forward pass and the tokenizer see it.

    ``in_hw`` is the input's spatial size for conv layers (0 for linear);
    ``pool`` says whether a 2x2 max-pool follows; ``global_pool`` (linear only)
    that the input is averaged over space first; ``last`` marks the logits layer.
    """

    kind: str  # "conv" | "linear"
    weight_shape: tuple[int, ...]
    padding: int = 0
    pool: bool = False
    in_hw: int = 0
    last: bool = False
    stride: int = 1
    global_pool: bool = False

    @property
    def out_features(self) -> int:
        return self.weight_shape[0]


def _build_layers(arch: Arch) -> list[Layer]:
    c, h, w = arch.in_shape
    if h != w:
        raise WslError(f"in_shape {arch.in_shape} must be square (channels, size, size)")
    layers = []
    for conv in arch.convs:
        shape = (conv.out_channels, c, conv.kernel, conv.kernel)
        layers.append(Layer("conv", shape, conv.padding, conv.pool, h, stride=conv.stride))
        h = (h + 2 * conv.padding - conv.kernel) // conv.stride + 1
        h = h // 2 if conv.pool else h
        c = conv.out_channels
        if h < 1:
            raise WslError(f"architecture {arch.convs} shrinks a {arch.in_shape} input to nothing")
    features = c if arch.global_pool else c * h * h
    for j, width in enumerate((*arch.hidden, arch.num_classes)):
        layers.append(Layer("linear", (width, features), global_pool=arch.global_pool and j == 0))
        features = width
    layers[-1] = replace(layers[-1], last=True)
    return layers


def cnn(in_shape: Sequence[int], num_classes: int, channels=(8, 6, 4), kernels=(3, 3, 2), hidden=(20,)) -> Arch:
    """The public zoos' CNN-s pattern: conv-pool-act, conv-pool-act, conv-act, fc-act, fc.

    With padding 1 on an 8x8 input (digits) it flattens to 36 features, like
    CNN-s does on 28x28 with padding 0.
    """
    pad = 1 if in_shape[-1] < 16 else 0
    convs = tuple(Conv(o, k, pad, pool=i < len(channels) - 1) for i, (o, k) in enumerate(zip(channels, kernels)))
    return Arch("cnn", tuple(in_shape), num_classes, convs, tuple(hidden))


def mlp(in_shape: Sequence[int], num_classes: int, hidden=(32, 16)) -> Arch:
    return Arch("mlp", tuple(in_shape), num_classes, (), tuple(hidden))


def init_params(arch: Arch, inits: Sequence[str], generator: torch.Generator) -> dict[str, Tensor]:
    """Fresh weights for ``len(inits)`` models, each with its own init scheme.

    Schemes (fan_in = inputs per output unit): ``uniform`` U(+-1/sqrt(fan_in))
    (PyTorch's default), ``normal`` N(0, 1/fan_in), ``kaiming_uniform``
    U(+-sqrt(6/fan_in)), ``kaiming_normal`` N(0, 2/fan_in). Biases are always
    U(+-1/sqrt(fan_in)).
    """
    unknown = sorted(set(inits) - set(INITS))
    if unknown:
        raise WslError(f"unknown init {unknown[0]!r}; known: {', '.join(INITS)}")
    n = len(inits)
    params = {}
    for name, shape in arch.param_shapes.items():
        fan_in = math.prod(arch.layers[int(name.split(".")[1])].weight_shape[1:])
        u = torch.rand((n, *shape), generator=generator) * 2 - 1
        g = torch.randn((n, *shape), generator=generator)
        if name.endswith("bias"):
            params[name] = u / math.sqrt(fan_in)
            continue
        scale = {
            "uniform": (u, 1 / math.sqrt(fan_in)),
            "normal": (g, 1 / math.sqrt(fan_in)),
            "kaiming_uniform": (u, math.sqrt(6 / fan_in)),
            "kaiming_normal": (g, math.sqrt(2 / fan_in)),
        }
        params[name] = torch.stack([scale[i][0][m] * scale[i][1] for m, i in enumerate(inits)])
    return params


def forward(
    arch: Arch,
    params: dict[str, Tensor],
    x: Tensor,
    activations: str | Sequence[str],
    dropout: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Logits ``[N, B, classes]`` of N stacked models.

    x: ``[N, B, C, H, W]`` (each model its own batch) or ``[B, C, H, W]`` (shared).
    activations: one name for all models, or one per model.
    dropout: per-model drop probability ``[N]`` (training), or None (evaluation).
    """
    n = params["layers.0.weight"].shape[0]
    if x.dim() == 4:
        x = x.expand(n, *x.shape)
    act = _activation(activations, n)
    h = x
    for i, layer in enumerate(arch.layers):
        w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
        if layer.kind == "conv":
            h = _conv(h, w, b, layer)
        else:
            h = h.mean((-2, -1)) if layer.global_pool else h.flatten(2)  # [N, B, C] or [N, B, C * H * W]
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if layer.last:
            return h
        h = act(h)
        if dropout is not None:
            h = _dropout(h, dropout, generator)
    raise AssertionError("unreachable: the last layer returns")


def _activation(activations: str | Sequence[str], n: int):
    """A function applying each model's activation to ``[N, ...]`` features."""
    names = [activations] * n if isinstance(activations, str) else list(activations)
    unknown = sorted(set(names) - set(ACTIVATIONS))
    if unknown:
        raise WslError(f"unknown activation {unknown[0]!r}; known: {', '.join(ACTIVATIONS)}")
    if len(names) != n:
        raise ValueError(f"{len(names)} activations for {n} models")
    if len(set(names)) == 1:
        return ACTIVATIONS[names[0]]
    runs = _runs(names)
    if len(runs) == len(set(names)):
        # Each activation is one contiguous run of models (a batch sorted by activation):
        # slices and one cat, no gather/scatter copies of the feature tensor.
        return lambda h: torch.cat([ACTIVATIONS[a](h[lo:hi]) for a, lo, hi in runs])
    groups = [(ACTIVATIONS[a], torch.tensor([i for i, m in enumerate(names) if m == a])) for a in sorted(set(names))]

    def apply(h: Tensor) -> Tensor:
        out = torch.empty_like(h)
        for fn, idx in groups:
            out[idx] = fn(h[idx])
        return out

    return apply


def _runs(names: list[str]) -> list[tuple[str, int, int]]:
    """Maximal runs of equal names as ``(name, start, stop)``."""
    runs = []
    for i, name in enumerate(names):
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1], i + 1)
        else:
            runs.append((name, i, i + 1))
    return runs


def _dropout(h: Tensor, p: Tensor, generator: torch.Generator | None) -> Tensor:
    p = p.to(h.dtype).view(-1, *([1] * (h.dim() - 1)))
    keep = torch.rand(h.shape, generator=generator, device=h.device) >= p
    return h * keep / (1 - p)


def _conv(h: Tensor, w: Tensor, b: Tensor, layer: Layer) -> Tensor:
    """Conv (+ optional 2x2 max-pool) of ``[N, B, C, H, W]`` -> ``[N, B, O, H', W']``."""
    n, batch, c, hw, _ = h.shape
    o, k = w.shape[1], w.shape[-1]
    out_hw = (hw + 2 * layer.padding - k) // layer.stride + 1
    if o * out_hw * out_hw * c * hw * hw <= DENSE_LIMIT:
        index = _dense_index(c, hw, o, k, layer.padding, layer.pool, layer.stride)
        flat = torch.cat([w.new_zeros(n, 1), w.reshape(n, -1)], 1)
        dense = flat.index_select(1, index.to(w.device).reshape(-1)).view(n, *index.shape)  # [N, in, out]
        bias = b.repeat_interleave(dense.shape[-1] // o, 1).unsqueeze(1)
        y = torch.baddbmm(bias, h.reshape(n, batch, -1), dense)
        if layer.pool:
            side = out_hw // 2
            return _max4(y.view(n, batch, o, side * side, 4)).view(n, batch, o, side, side)
        return y.view(n, batch, o, out_hw, out_hw)
    y = F.conv2d(
        h.transpose(0, 1).reshape(batch, n * c, hw, hw),
        w.reshape(n * o, c, k, k),
        b.reshape(-1),
        stride=layer.stride,
        padding=layer.padding,
        groups=n,
    )
    if layer.pool:
        y = F.max_pool2d(y, 2)
    return y.view(batch, n, o, *y.shape[-2:]).transpose(0, 1)


def _max4(y: Tensor) -> Tensor:
    """Max over the last dim (a 2x2 pool window): ``amax`` without autograd (3.5x faster forward on CPU),
    ``max`` with it (its backward is one scatter, amax's is several full-size passes: 2.4x slower)."""
    return y.max(-1).values if torch.is_grad_enabled() and y.requires_grad else y.amax(-1)


@lru_cache(maxsize=64)
def _dense_index(c: int, hw: int, o: int, k: int, padding: int, pool: bool, stride: int) -> Tensor:
    """Where each entry of the dense ``[in_pixels, out_pixels]`` conv matrix comes from.

    Entry values are 1 + the index into the flattened kernel ``[o, c, k, k]``,
    or 0 for "no connection" (the caller prepends a zero). Found by convolving
    one-hot inputs with a kernel holding its own indices. With ``pool`` the
    output columns are ordered (channel, pooled pixel, 2x2 window position),
    so pooling is a max over the last 4 columns; rows or columns a floor-mode
    pool would drop are dropped here too.
    """
    ids = torch.arange(1, o * c * k * k + 1, dtype=torch.float64).view(o, c, k, k)
    one_hot = torch.eye(c * hw * hw, dtype=torch.float64).view(-1, c, hw, hw)
    index = F.conv2d(one_hot, ids, stride=stride, padding=padding).round().long()  # [in, o, H', W']
    if pool:
        side = index.shape[-1] // 2
        index = index[..., : 2 * side, : 2 * side]
        index = index.reshape(-1, o, side, 2, side, 2).permute(0, 1, 2, 4, 3, 5)
    return index.reshape(c * hw * hw, -1).contiguous()


def as_module(arch: Arch, params: dict[str, Tensor], activation: str, dropout: float = 0.0) -> nn.Sequential:
    """One model (unstacked params) as a plain ``nn.Sequential``, weights copied in.

    The reference implementation: what the batched ``forward`` must agree with,
    and what a user exports a decoded model to.
    """
    act = {
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "gelu": nn.GELU,
        "leakyrelu": nn.LeakyReLU,
        "selu": nn.SELU,
    }
    modules: list[nn.Module] = []
    weights: list[nn.Module] = []
    for layer in arch.layers:
        if layer.kind == "conv":
            o, c, k, _ = layer.weight_shape
            weights.append(nn.Conv2d(c, o, k, stride=layer.stride, padding=layer.padding))
            modules += [weights[-1]] + ([nn.MaxPool2d(2)] if layer.pool else [])
        else:
            if not any(isinstance(m, nn.Flatten) for m in modules):
                modules += [nn.AdaptiveAvgPool2d(1)] if layer.global_pool else []
                modules.append(nn.Flatten())
            weights.append(nn.Linear(layer.weight_shape[1], layer.weight_shape[0]))
            modules.append(weights[-1])
        if not layer.last:
            modules += [act[activation]()] + ([nn.Dropout(dropout)] if dropout else [])
    with torch.no_grad():
        for i, module in enumerate(weights):
            module.weight.copy_(params[f"layers.{i}.weight"])
            module.bias.copy_(params[f"layers.{i}.bias"])
    return nn.Sequential(*modules)
