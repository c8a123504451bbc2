"""Tokens hold every weight exactly once, in SANE's order, and give them back exactly."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wsl.errors import WslError
from wsl.tokens import Normalizer, detokenize, layout, tokenize
from wsl.zoo.arch import Arch, Conv, cnn, init_params, mlp

ARCHES = {
    "cnn-digits": cnn((1, 8, 8), 10),
    "cnn-shapes": cnn((1, 12, 12), 10),
    "cnn-s-28": Arch("cnn", (1, 28, 28), 10, (Conv(8, 5), Conv(6, 5), Conv(4, 2, pool=False)), (20,)),
    "mlp": mlp((1, 8, 8), 10),
}
INITS = ["uniform", "normal", "kaiming_uniform", "kaiming_normal"]


def population(arch, seed=0):
    return init_params(arch, INITS, torch.Generator().manual_seed(seed))


def widest_row(arch):
    return max(math.prod(layer.weight_shape[1:]) + 1 for layer in arch.layers)


def widths(arch):
    return [1, 7, widest_row(arch), widest_row(arch) + 5, "row"]


@pytest.mark.parametrize("name", ARCHES)
def test_detokenize_inverts_tokenize_exactly_for_every_width(name):
    arch = ARCHES[name]
    params = population(arch)
    for width in widths(arch):
        back = detokenize(tokenize(params, layout(arch, width)), layout(arch, width))
        assert list(back) == list(arch.param_shapes)
        assert all(torch.equal(back[k], params[k]) for k in params)


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(sorted(ARCHES)),
    width=st.integers(1, 300),
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16]),
)
def test_round_trip_holds_for_any_width_seed_and_dtype(name, width, seed, dtype):
    arch = ARCHES[name]
    params = {k: v.to(dtype) for k, v in population(arch, seed).items()}
    lay = layout(arch, width)
    tokens = tokenize(params, lay)
    assert tokens.dtype == dtype
    back = detokenize(tokens, lay)
    assert all(torch.equal(back[k], params[k]) for k in params)


def test_each_row_is_a_neurons_weights_then_its_bias():
    arch = mlp((1, 2, 2), 3, hidden=(2,))
    params = population(arch)
    tokens = tokenize(params, layout(arch, widest_row(arch)))
    w, b = params["layers.0.weight"][1], params["layers.0.bias"][1]
    assert torch.equal(tokens[1, 1], torch.cat([w[1], b[1:2]]))


def test_conv_rows_flatten_the_kernel_over_in_k_k():
    arch = cnn((2, 8, 8), 10)
    params = population(arch)
    tokens = tokenize(params, layout(arch, widest_row(arch)))
    w, b = params["layers.0.weight"][0, 3], params["layers.0.bias"][0, 3]
    assert torch.equal(tokens[0, 3, : w.numel() + 1], torch.cat([w.flatten(), b[None]]))


def test_wide_rows_split_over_consecutive_zero_padded_tokens():
    arch = mlp((1, 2, 2), 3, hidden=(2,))  # rows of 5 then 3 values
    lay = layout(arch, 2)
    params = population(arch)
    tokens = tokenize(params, lay)
    assert lay.num_tokens == 2 * 3 + 3 * 2
    row = torch.cat([params["layers.0.weight"][0, 0], params["layers.0.bias"][0, :1]])
    assert torch.equal(tokens[0, :3].flatten()[:5], row)
    assert tokens[:, 2, 1].eq(0).all() and not lay.mask[2, 1]


def test_padding_is_zero_and_the_mask_counts_every_parameter_once():
    for arch in ARCHES.values():
        lay = layout(arch, 7)
        tokens = tokenize(population(arch), lay)
        assert lay.mask.sum() == arch.num_params
        assert tokens[:, ~lay.mask].eq(0).all()


def test_positions_count_tokens_globally_per_layer_and_within_layer():
    arch = mlp((1, 2, 2), 3, hidden=(2,))
    lay = layout(arch, 2)
    expected = [[t, 0, t] for t in range(6)] + [[6 + t, 1, t] for t in range(6)]
    assert lay.positions.tolist() == expected
    assert lay.max_positions == (12, 2, 6)


def test_gradients_flow_from_params_back_to_tokens():
    arch = ARCHES["cnn-digits"]
    lay = layout(arch, 16)
    tokens = tokenize(population(arch), lay).requires_grad_()
    loss = sum(v.square().sum() for v in detokenize(tokens, lay).values())
    (grad,) = torch.autograd.grad(loss, tokens)
    torch.testing.assert_close(grad, 2 * tokens.detach() * lay.mask)


@pytest.mark.parametrize("width", [0, -3, "col", 2.5, True])
def test_bad_width_is_a_user_error(width):
    with pytest.raises(WslError, match=f"token width {width!r}"):
        layout(ARCHES["mlp"], width)


@pytest.mark.parametrize("name", ARCHES)
def test_width_row_puts_one_neuron_in_one_token_with_its_index_in_the_position(name):
    arch = ARCHES[name]
    lay = layout(arch, "row")
    neurons = [layer.out_features for layer in arch.layers]
    assert lay.width == widest_row(arch) and lay.num_tokens == sum(neurons)
    expected = torch.cat([torch.arange(n) for n in neurons])
    assert torch.equal(lay.positions[:, 2], expected)


def test_tokens_of_the_wrong_shape_are_a_user_error():
    lay = layout(ARCHES["mlp"], 8)
    with pytest.raises(WslError, match="do not fit this layout"):
        detokenize(torch.zeros(2, lay.num_tokens, 9), lay)


def per_layer_stats(params, arch):
    """The normalizer's statistics computed straight from the weights."""
    means, stds = [], []
    for i in range(len(arch.layers)):
        w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
        values = torch.cat([w.flatten(1), b], 1).double()
        means.append(values.mean(1).mean())
        stds.append(values.var(1, correction=0).mean().sqrt())
    return torch.stack(means).float(), torch.stack(stds).float()


def test_normalizer_uses_mean_of_model_means_and_root_mean_of_model_variances():
    arch = ARCHES["cnn-digits"]
    params = population(arch)
    lay = layout(arch, 7)
    norm = Normalizer.fit(tokenize(params, lay), lay)
    mean, std = per_layer_stats(params, arch)
    torch.testing.assert_close(norm.mean, mean)
    torch.testing.assert_close(norm.std, std)


def test_normalizer_statistics_use_only_the_tokens_passed_in():
    arch = ARCHES["mlp"]
    lay = layout(arch, 7)
    tokens = tokenize(population(arch), lay)
    train = Normalizer.fit(tokens[:2], lay)
    tokens[2:] *= 100
    again = Normalizer.fit(tokens[:2], lay)
    assert torch.equal(train.mean, again.mean) and torch.equal(train.std, again.std)
    mean, std = per_layer_stats({k: v[:2] for k, v in population(arch).items()}, arch)
    torch.testing.assert_close(train.mean, mean)
    torch.testing.assert_close(train.std, std)


def test_normalized_tokens_are_standard_per_layer_with_zero_padding():
    arch = ARCHES["cnn-digits"]
    lay = layout(arch, 7)
    tokens = tokenize(population(arch), lay)
    normed = Normalizer.fit(tokens, lay).normalize(tokens, lay)
    assert normed[:, ~lay.mask].eq(0).all()
    first = normed[:, lay.positions[:, 1] == 0][:, lay.mask[lay.positions[:, 1] == 0]]
    assert abs(first.mean().item()) < 1e-5


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(ARCHES)), width=st.integers(1, 64), seed=st.integers(0, 2**31))
def test_denormalize_inverts_normalize(name, width, seed):
    arch = ARCHES[name]
    lay = layout(arch, width)
    tokens = tokenize(population(arch, seed), lay)
    norm = Normalizer.fit(tokens, lay)
    back = norm.denormalize(norm.normalize(tokens, lay), lay)
    torch.testing.assert_close(back, tokens, rtol=1e-6, atol=1e-7)
    assert back[:, ~lay.mask].eq(0).all()


def test_a_constant_layer_gets_unit_std_instead_of_dividing_by_zero():
    arch = ARCHES["mlp"]
    lay = layout(arch, 7)
    params = {k: torch.full_like(v, 0.5) if k.startswith("layers.1.") else v for k, v in population(arch).items()}
    norm = Normalizer.fit(tokenize(params, lay), lay)
    assert norm.std[1] == 1 and norm.mean[1] == 0.5


def test_normalizer_survives_a_plain_dict_round_trip():
    arch = ARCHES["mlp"]
    lay = layout(arch, 7)
    norm = Normalizer.fit(tokenize(population(arch), lay), lay)
    d = norm.to_dict()
    assert all(isinstance(v, list) and all(isinstance(x, float) for x in v) for v in d.values())
    again = Normalizer.from_dict(d)
    assert torch.equal(again.mean, norm.mean) and torch.equal(again.std, norm.std)


def test_a_malformed_normalizer_dict_is_a_user_error():
    with pytest.raises(WslError, match="normalizer"):
        Normalizer.from_dict({"mean": [0.0, 1.0]})


def test_a_normalizer_fit_in_chunks_of_models_equals_one_fit_on_all_at_once():
    """Each model's moments are its own, so fitting a few models at a time (to bound memory) changes no bit."""
    arch = ARCHES["cnn-digits"]
    lay = layout(arch, 7)
    tokens = tokenize(population(arch), lay)
    whole, chunked = Normalizer.fit(tokens, lay, chunk=len(tokens)), Normalizer.fit(tokens, lay, chunk=3)
    assert torch.equal(whole.mean, chunked.mean) and torch.equal(whole.std, chunked.std)
