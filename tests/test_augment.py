"""Augmented views change the weights but not what the models compute."""

import pytest
import torch

from wsl.augment import erase, multiplicative_noise, permute_neurons, two_views
from wsl.errors import WslError
from wsl.tokens import Normalizer, layout, tokenize
from wsl.zoo.arch import cnn, forward, init_params, mlp

ARCHES = {
    "cnn-digits": cnn((1, 8, 8), 10),
    "cnn-28": cnn((1, 28, 28), 10),
    "mlp": mlp((1, 8, 8), 10),
}
INITS = ["uniform", "normal", "kaiming_uniform", "kaiming_normal"]


def population(arch, seed=0):
    return init_params(arch, INITS, torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", ARCHES)
@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
def test_permuting_neurons_preserves_the_function(name, activation):
    arch = ARCHES[name]
    params = population(arch)
    x = torch.randn(6, *arch.in_shape, generator=gen(1))
    permuted = permute_neurons(arch, params, gen(2))
    torch.testing.assert_close(
        forward(arch, permuted, x, activation), forward(arch, params, x, activation), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("name", ARCHES)
def test_permuting_neurons_changes_every_hidden_layer_but_not_the_logits_rows(name):
    arch = ARCHES[name]
    params = population(arch)
    permuted = permute_neurons(arch, params, gen(2))
    last = len(arch.layers) - 1
    for i in range(last):
        assert not torch.equal(permuted[f"layers.{i}.weight"], params[f"layers.{i}.weight"])
    assert torch.equal(permuted[f"layers.{last}.bias"], params[f"layers.{last}.bias"])


def test_each_model_gets_its_own_permutation():
    arch = ARCHES["mlp"]
    params = {k: v[:1].expand(64, *v.shape[1:]) for k, v in population(arch).items()}
    biases = permute_neurons(arch, params, gen(3))["layers.0.bias"]
    assert biases.unique(dim=0).shape[0] > 1


def test_permuted_weights_are_a_reordering_of_the_originals():
    arch = ARCHES["cnn-digits"]
    params = population(arch)
    permuted = permute_neurons(arch, params, gen(4))
    for name in params:
        assert torch.equal(permuted[name].flatten(1).sort(1).values, params[name].flatten(1).sort(1).values)


def test_multiplicative_noise_scales_values_and_keeps_padding_zero():
    arch = ARCHES["cnn-digits"]
    lay = layout(arch, 7)
    tokens = tokenize(population(arch), lay)
    noisy = multiplicative_noise(tokens, 0.1, gen())
    assert noisy[:, ~lay.mask].eq(0).all()
    ratio = noisy[:, lay.mask] / tokens[:, lay.mask]
    assert 0.08 < ratio.std().item() < 0.12
    assert torch.equal(multiplicative_noise(tokens, 0.0, gen()), tokens)


def test_erase_with_p_zero_changes_nothing():
    arch = ARCHES["mlp"]
    lay = layout(arch, 7)
    tokens = tokenize(population(arch), lay)
    assert torch.equal(erase(tokens, lay.mask, 0.0, generator=gen()), tokens)


@pytest.mark.parametrize("frac_range", [(0.02, 0.33), (0.25, 0.25), (0.0, 1.0)])
def test_erase_with_p_one_zeroes_one_span_of_the_allowed_size_in_every_model(frac_range):
    arch = ARCHES["cnn-digits"]
    lay = layout(arch, 7)
    tokens = tokenize(population(arch), lay)
    erased = erase(tokens, lay.mask, 1.0, frac_range, generator=gen())
    real = erased[:, lay.mask]  # [N, R], real values in token order
    count = real.shape[1]
    for row in real.eq(0):
        zeroed = row.nonzero().squeeze(1)
        assert frac_range[0] * count <= zeroed.numel() <= frac_range[1] * count
        if zeroed.numel():
            assert zeroed[-1] - zeroed[0] + 1 == zeroed.numel()  # contiguous
    assert erased[:, ~lay.mask].eq(0).all()


def test_erase_hits_about_a_fraction_p_of_models():
    arch = ARCHES["mlp"]
    lay = layout(arch, 7)
    tokens = tokenize(init_params(arch, ["uniform"] * 400, gen()), lay)
    hit = erase(tokens, lay.mask, 0.5, generator=gen(1)).ne(tokens).any(2).any(1)
    assert 0.4 < hit.float().mean().item() < 0.6


def test_erase_rejects_a_probability_outside_zero_one():
    with pytest.raises(WslError, match="erase probability"):
        erase(torch.zeros(1, 2, 3), torch.ones(2, 3, dtype=torch.bool), 1.5, generator=gen())


def test_two_views_differ_from_each_other_and_from_the_original():
    arch = ARCHES["cnn-digits"]
    lay = layout(arch, 16)
    params = population(arch)
    a, b = (view.augmented for view in two_views(arch, params, lay, gen()))
    original = tokenize(params, lay)
    assert a.shape == b.shape == original.shape
    assert not torch.equal(a, b)
    assert not torch.equal(a, original) and not torch.equal(b, original)
    assert a[:, ~lay.mask].eq(0).all() and b[:, ~lay.mask].eq(0).all()


def test_two_views_are_reproducible_from_the_seed():
    arch = ARCHES["mlp"]
    lay = layout(arch, 16)
    params = population(arch)
    first, second = two_views(arch, params, lay, gen(5)), two_views(arch, params, lay, gen(5))
    assert all(torch.equal(x, y) for a, b in zip(first, second, strict=True) for x, y in zip(a, b, strict=True))
    other = two_views(arch, params, lay, gen(6))
    assert not torch.equal(first[0].augmented, other[0].augmented)


def test_two_views_can_work_in_normalized_space():
    arch = ARCHES["mlp"]
    lay = layout(arch, 16)
    params = population(arch)
    norm = Normalizer.fit(tokenize(params, lay), lay)
    a, _ = two_views(arch, params, lay, gen(), noise=0.0, erase_p=0.0, normalizer=norm)
    raw, _ = two_views(arch, params, lay, gen(), noise=0.0, erase_p=0.0)
    torch.testing.assert_close(a.augmented, norm.normalize(raw.augmented, lay))
    torch.testing.assert_close(a.clean, a.augmented)


def test_two_views_reject_a_layout_for_another_architecture():
    with pytest.raises(WslError, match="layout was built for"):
        two_views(ARCHES["mlp"], population(ARCHES["mlp"]), layout(ARCHES["cnn-digits"], 8), gen())
