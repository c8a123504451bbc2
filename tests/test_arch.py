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


@pytest.mark.parametrize("name", ARCHES)
def test_forward_matches_reference_module_per_model(name):
    arch = ARCHES[name]
    params = population(arch)
    x = torch.randn(5, *arch.in_shape, generator=torch.Generator().manual_seed(1))
    logits = forward(arch, params, x, ACTS)
    for m, act in enumerate(ACTS):
        reference = as_module(arch, {k: v[m] for k, v in params.items()}, act)
        torch.testing.assert_close(logits[m], reference(x), rtol=1e-4, atol=1e-5)


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
