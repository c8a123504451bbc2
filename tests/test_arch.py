"""The batched forward pass is N independent copies of the reference nn.Module."""

import pytest
import torch
import torch.nn.functional as F

from wsl.errors import WslError
from wsl.zoo import arch as arch_module
from wsl.zoo.arch import Arch, Conv, as_module, cnn, forward, init_params, mlp

ARCHES = {
    "cnn-digits": cnn((1, 8, 8), 10),
    "cnn-shapes": cnn((1, 12, 12), 10),
    "cnn-s-28": Arch("cnn", (1, 28, 28), 10, (Conv(8, 5), Conv(6, 5), Conv(4, 2, pool=False)), (20,)),
    "mlp": mlp((1, 8, 8), 10),
}
ACTS = ["tanh", "relu", "sigmoid", "gelu"]
INITS = ["uniform", "normal", "kaiming_uniform", "kaiming_normal"]


def population(arch, seed=0):
    return init_params(arch, INITS, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "acts",
    [ACTS, ["relu", "relu", "tanh", "tanh"], ["relu", "tanh", "relu", "tanh"]],
    ids=["distinct", "in-runs", "interleaved"],  # an activation's models in one slice, or gathered from several
)
@pytest.mark.parametrize("name", ARCHES)
def test_forward_matches_reference_module_per_model(name, acts):
    arch = ARCHES[name]
    params = population(arch)
    x = torch.randn(5, *arch.in_shape, generator=torch.Generator().manual_seed(1))
    logits = forward(arch, params, x, acts)
    for m, act in enumerate(acts):
        reference = as_module(arch, {k: v[m] for k, v in params.items()}, act)
        torch.testing.assert_close(logits[m], reference(x), rtol=1e-4, atol=1e-5)


def test_models_grouped_by_activation_get_the_gradients_they_get_interleaved():
    arch = ARCHES["cnn-digits"]
    acts, group = ["relu", "tanh", "relu", "tanh"], [0, 2, 1, 3]
    x = torch.randn(6, *arch.in_shape, generator=torch.Generator().manual_seed(3))

    def grads(order):
        params = {k: v[order].clone().requires_grad_() for k, v in population(arch).items()}
        logits = forward(arch, params, x, [acts[m] for m in order])
        loss = sum((m + 1) * F.cross_entropy(logits[i], torch.arange(6)) for i, m in enumerate(order))
        return torch.autograd.grad(loss, list(params.values()))

    for interleaved, grouped in zip(grads([0, 1, 2, 3]), grads(group)):
        torch.testing.assert_close(grouped, interleaved[group], rtol=1e-5, atol=1e-6)


def test_dense_and_grouped_convolutions_agree(monkeypatch):
    arch = ARCHES["cnn-digits"]
    params = population(arch)
    x = torch.randn(3, *arch.in_shape)
    dense = forward(arch, params, x, "relu")
    monkeypatch.setattr(arch_module, "DENSE_LIMIT", 0)
    torch.testing.assert_close(forward(arch, params, x, "relu"), dense, rtol=1e-4, atol=1e-5)


def test_pooling_is_the_same_with_and_without_autograd():
    arch = ARCHES["cnn-digits"]
    params = population(arch)
    x = torch.randn(3, *arch.in_shape, generator=torch.Generator().manual_seed(2))
    tracked = forward(arch, {k: v.clone().requires_grad_() for k, v in params.items()}, x, "relu")
    assert torch.equal(tracked.detach(), forward(arch, params, x, "relu"))


def test_each_model_gets_only_its_own_gradient():
    arch = ARCHES["cnn-digits"]
    params = {k: v.requires_grad_() for k, v in population(arch).items()}
    logits = forward(arch, params, torch.randn(4, 6, *arch.in_shape), "tanh")
    grads = torch.autograd.grad(F.cross_entropy(logits[2], torch.arange(6)), list(params.values()))
    for g in grads:
        assert g[[0, 1, 3]].abs().sum() == 0
        assert g[2].abs().sum() > 0


def test_dropout_zero_is_the_identity():
    arch = ARCHES["mlp"]
    params = population(arch)
    x = torch.randn(5, *arch.in_shape)
    torch.testing.assert_close(forward(arch, params, x, "relu", torch.zeros(4)), forward(arch, params, x, "relu"))


def test_dropout_drops_per_model_rate():
    arch = ARCHES["mlp"]
    params = population(arch)
    x = torch.randn(64, *arch.in_shape)
    p = torch.tensor([0.0, 0.0, 0.5, 0.5])
    out = forward(arch, params, x, "relu", p, torch.Generator().manual_seed(0))
    clean = forward(arch, params, x, "relu")
    assert torch.allclose(out[:2], clean[:2], atol=1e-6)
    assert not torch.allclose(out[2:], clean[2:], atol=1e-3)


def test_unknown_activation_is_named():
    arch = ARCHES["mlp"]
    with pytest.raises(WslError, match="swish"):
        forward(arch, population(arch), torch.randn(2, *arch.in_shape), "swish")


def test_unknown_init_is_named():
    with pytest.raises(WslError, match="xavier"):
        init_params(ARCHES["mlp"], ["xavier"], torch.Generator())


def test_arch_that_shrinks_input_to_nothing_is_rejected():
    with pytest.raises(WslError, match="shrinks"):
        Arch("cnn", (1, 8, 8), 10, (Conv(8, 5), Conv(6, 5)), ())


def test_unknown_family_is_rejected():
    with pytest.raises(WslError, match="resnet"):
        Arch("resnet", (1, 8, 8), 10)


@pytest.mark.parametrize("name", ARCHES)
def test_arch_survives_dict_round_trip(name):
    assert Arch.from_dict(ARCHES[name].to_dict()) == ARCHES[name]


def test_default_digits_cnn_flattens_to_36_features_like_public_cnn_s():
    assert ARCHES["cnn-digits"].param_shapes["layers.3.weight"] == (20, 36)


# The Small CNN Zoo's network: Conv2D(16, 3x3, stride 2, valid) x 3, GlobalAveragePooling2D, Dense(10).


def small_cnn(size: int) -> Arch:
    return Arch("cnn", (1, size, size), 10, tuple(Conv(16, 3, 0, False, stride=2) for _ in range(3)), (), True)


def torch_small_cnn(act: type[torch.nn.Module]) -> torch.nn.Sequential:
    """The same network written with plain torch.nn, independently of ``as_module``."""
    nn = torch.nn
    convs = [nn.Conv2d(1, 16, 3, stride=2), act(), nn.Conv2d(16, 16, 3, stride=2), act()]
    return nn.Sequential(
        *convs, nn.Conv2d(16, 16, 3, stride=2), act(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)
    )


def stacked(nets: list[torch.nn.Sequential]) -> dict[str, torch.Tensor]:
    """The weight-carrying modules' parameters as ``layers.<i>.weight/bias`` ``[N, *shape]``."""
    per_net = [[m for m in net if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)] for net in nets]
    return {
        f"layers.{i}.{kind}": torch.stack([getattr(mods[i], kind).detach() for mods in per_net])
        for i in range(len(per_net[0]))
        for kind in ("weight", "bias")
    }


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("dense_limit", [0, 1 << 30])  # grouped conv everywhere, then the dense route everywhere
def test_strided_global_pool_forward_matches_plain_torch(size, dense_limit, monkeypatch):
    monkeypatch.setattr(arch_module, "DENSE_LIMIT", dense_limit)
    torch.manual_seed(size)
    acts = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "gelu": torch.nn.GELU}
    nets = [torch_small_cnn(a) for a in acts.values()]
    arch = small_cnn(size)
    x = torch.randn(7, 1, size, size)
    logits = forward(arch, stacked(nets), x, list(acts))
    with torch.no_grad():
        for out, net in zip(logits, nets, strict=True):
            torch.testing.assert_close(out, net(x), rtol=1e-4, atol=1e-5)


def test_strided_global_pool_as_module_is_the_plain_torch_network():
    torch.manual_seed(0)
    net = torch_small_cnn(torch.nn.ReLU)
    params = {k: v[0] for k, v in stacked([net]).items()}
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(as_module(small_cnn(28), params, "relu")(x), net(x), rtol=1e-5, atol=1e-6)


def test_the_small_cnn_zoo_network_has_4970_parameters():
    arch = small_cnn(28)
    assert arch.num_params == 4970
    assert arch.param_shapes["layers.3.weight"] == (10, 16)
    assert [layer.stride for layer in arch.layers] == [2, 2, 2, 1]


def test_stride_and_global_pool_survive_the_dict_round_trip():
    arch = small_cnn(32)
    spec = arch.to_dict()
    assert spec["global_pool"] is True and all(c["stride"] == 2 for c in spec["convs"])
    assert Arch.from_dict(spec) == arch


@pytest.mark.parametrize("name", ARCHES)
def test_specs_without_stride_or_global_pool_are_written_and_read_as_before(name):
    spec = ARCHES[name].to_dict()
    assert "global_pool" not in spec and all("stride" not in c for c in spec["convs"])
    assert Arch.from_dict(spec).layers == ARCHES[name].layers


def test_global_pool_without_convs_is_rejected():
    with pytest.raises(WslError, match="global_pool.*needs convs"):
        Arch("cnn", (1, 8, 8), 10, (), (), True)


def test_a_stride_below_one_is_rejected():
    with pytest.raises(WslError, match="stride 0"):
        Arch("cnn", (1, 8, 8), 10, (Conv(4, 3, stride=0),))


@pytest.mark.parametrize("dense_limit", [0, 1 << 30])
def test_strided_global_pool_models_get_only_their_own_gradients(dense_limit, monkeypatch):
    monkeypatch.setattr(arch_module, "DENSE_LIMIT", dense_limit)
    arch = small_cnn(28)
    params = {k: v.requires_grad_() for k, v in population(arch).items()}
    logits = forward(arch, params, torch.randn(4, 6, *arch.in_shape), "tanh")
    grads = torch.autograd.grad(F.cross_entropy(logits[1], torch.arange(6)), list(params.values()))
    for g in grads:
        assert g[[0, 2, 3]].abs().sum() == 0
        assert g[1].abs().sum() > 0
