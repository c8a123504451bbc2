"""The three losses: what each compares, and that the behavioral one teaches the decoder."""

import pytest
import torch

from wsl.losses import LossConfig, LossScaler, behav_loss, combine, nt_xent, run_tokens, struct_loss
from wsl.model import Autoencoder, ModelConfig
from wsl.tokens import Normalizer, layout, tokenize
from wsl.zoo.arch import cnn, forward, init_params

ARCH = cnn((1, 8, 8), 10)


def zoo_tokens(n=6, width=16):
    params = init_params(ARCH, ["uniform", "kaiming_normal"] * (n // 2), torch.Generator().manual_seed(0))
    lay = layout(ARCH, width)
    raw = tokenize(params, lay)
    norm = Normalizer.fit(raw, lay)
    return params, lay, norm, norm.normalize(raw, lay)


def test_struct_loss_ignores_padding():
    _, lay, _, tokens = zoo_tokens()
    noisy_padding = tokens + (~lay.mask) * 5.0
    assert struct_loss(noisy_padding, tokens, lay.mask) == 0


def test_struct_loss_is_mean_squared_error_over_real_values():
    _, lay, _, tokens = zoo_tokens()
    assert struct_loss(tokens + lay.mask * 0.5, tokens, lay.mask).item() == pytest.approx(0.25)


def test_nt_xent_prefers_matching_pairs():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(8, 5, generator=gen)
    matched = nt_xent(a, a + 0.01 * torch.randn(8, 5, generator=gen), 0.1)
    shuffled = nt_xent(a, a[torch.randperm(8, generator=gen)], 0.1)
    assert matched < shuffled


def test_run_tokens_runs_the_models_the_tokens_describe():
    params, lay, norm, tokens = zoo_tokens()
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(run_tokens(tokens, lay, norm, x, "tanh"), forward(ARCH, params, x, "tanh"))


@pytest.mark.parametrize("distance", ["mse", "kl"])
def test_behav_loss_is_zero_for_identical_outputs_and_positive_otherwise(distance):
    cfg = LossConfig(distance=distance)
    logits = torch.randn(3, 7, 10)
    assert behav_loss(logits, logits, cfg).abs() < 1e-7
    assert behav_loss(logits, torch.randn(3, 7, 10), cfg) > 0


def test_behavioral_gradient_reaches_the_decoder():
    params, lay, norm, tokens = zoo_tokens()
    model = Autoencoder(
        ModelConfig(d_model=16, layers=1, heads=2, latent_dim=4), lay.width, lay.num_tokens, lay.max_positions
    )
    x = torch.randn(5, 1, 8, 8)
    rec, _ = model(tokens, lay.positions)
    loss = behav_loss(run_tokens(rec, lay, norm, x, "relu"), forward(ARCH, params, x, "relu"), LossConfig())
    loss.backward()
    assert model.dec_out.weight.grad.abs().sum() > 0
    assert model.enc_in.weight.grad.abs().sum() > 0


def test_beta_one_drops_the_behavioral_term():
    cfg = LossConfig(gamma=0.2, beta=1.0)
    total = combine(cfg, torch.tensor(1.0), torch.tensor(2.0), None)
    assert total.item() == pytest.approx(0.2 * 1 + 0.8 * 2)


def test_combine_weighs_as_s25():
    cfg = LossConfig(gamma=0.05, beta=0.1)
    total = combine(cfg, torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0))
    assert total.item() == pytest.approx(0.05 + 0.95 * (0.1 * 2 + 0.9 * 3))


def test_scaler_divides_by_first_value():
    scale = LossScaler(enabled=True)
    assert scale("a", torch.tensor(4.0)).item() == 1.0
    assert scale("a", torch.tensor(2.0)).item() == 0.5
    assert LossScaler(enabled=False)("a", torch.tensor(4.0)).item() == 4.0
