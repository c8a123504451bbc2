"""wsl.probes and wsl.generate: the probe, the weight-statistics baseline and the generation measures."""

import numpy as np
import pandas as pd
import pytest
import torch

from wsl import generate, probes
from wsl.augment import permute_neurons
from wsl.errors import WslError
from wsl.zoo.arch import Arch, cnn, init_params


def split(x: np.ndarray, y: np.ndarray) -> tuple[dict, dict]:
    """Rows 0-59 train, 60-79 val, 80-99 test."""
    cuts = {"train": slice(0, 60), "val": slice(60, 80), "test": slice(80, 100)}
    return {s: x[c] for s, c in cuts.items()}, {s: y[c] for s, c in cuts.items()}


def test_ridge_probe_recovers_a_linear_target():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 5))
    probe = probes.ridge_probe(*split(x, x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 4.0))
    assert probe["test"]["r2"] > 0.999 and probe["test"]["tau"] > 0.99 and probe["val"]["r2"] > 0.999


def test_ridge_probe_finds_nothing_in_features_unrelated_to_the_target():
    rng = np.random.default_rng(0)
    probe = probes.ridge_probe(*split(rng.normal(size=(100, 5)), rng.normal(size=100)))
    assert probe["test"]["r2"] < 0.2 and abs(probe["test"]["tau"]) < 0.3


@pytest.mark.parametrize("fit", [probes.ridge_probe, probes.boosted_probe])
def test_a_probe_chooses_its_regularisation_without_the_held_out_rows(fit):
    """Only the training rows choose alpha (or rounds): other validation rows leave the test score as it was."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 5))
    y = x @ np.array([1.0, 0.0, 0.5, 0.0, 0.0]) + rng.normal(size=100)
    features, targets = split(x, y)
    other = {**targets, "val": rng.normal(size=20) * 10}  # validation targets that would pick another alpha
    a, b = fit(features, targets), fit(features, other)
    assert a["test"] == b["test"] and a["val"] != b["val"]


def test_a_probe_on_one_training_model_says_it_needs_two():
    with pytest.raises(WslError, match="at least 2 training models"):
        probes.ridge_probe(*split(np.ones((100, 2)), np.ones(100)), groups=np.zeros(60))


def test_cross_validation_folds_keep_a_models_checkpoints_together():
    groups = np.repeat(np.arange(12), 3)  # 12 models, 3 checkpoints each
    for train, held in probes._folds(len(groups), groups):
        assert not set(groups[train]) & set(groups[held])


def test_r2_is_one_for_a_perfect_prediction_and_zero_for_the_mean():
    y = np.array([1.0, 2.0, 4.0])
    assert probes.r2_score(y, y) == 1.0
    assert probes.r2_score(y, np.full(3, y.mean())) == pytest.approx(0.0)


def test_weight_statistics_are_mean_variance_and_quantiles_per_tensor():
    w = torch.arange(10.0).view(2, 5)  # two rows of one tensor
    stats = probes.weight_statistics({"layers.0.weight": w, "layers.0.bias": -w})
    assert stats.shape == (2, 14)
    np.testing.assert_allclose(stats[0, :7], [2.0, 2.5, 0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(stats[1, 7:9], [-7.0, 2.5])


def test_the_generalisation_gap_target_is_train_minus_test_accuracy():
    models = pd.DataFrame({"train_acc": [0.9, 0.8], "test_acc": [0.7, 0.8], "epoch": [5, 10]})
    np.testing.assert_allclose(probes.probe_target(models, "gap"), [0.2, 0.0])
    np.testing.assert_array_equal(probes.probe_target(models, "epoch"), [5, 10])


def test_a_model_of_the_pool_is_at_distance_zero_from_it():
    pool = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    distances = generate.nearest_distance(torch.cat([pool[1:2], pool[1:2] + 1.0]), pool)
    assert distances[0] == 0.0 and distances[1] > 0


def random_cnns(n: int, seed: int) -> tuple[Arch, dict]:
    arch = cnn((1, 8, 8), 10)
    return arch, init_params(arch, ["kaiming_normal"] * n, torch.Generator().manual_seed(seed))


def test_a_pool_model_with_its_hidden_units_shuffled_is_no_novelty():
    arch, pool = random_cnns(5, seed=0)
    shuffled = permute_neurons(arch, pool, torch.Generator().manual_seed(1))
    assert generate.nearest_distance(generate.flatten(shuffled), generate.flatten(pool)).min() > 1.0
    np.testing.assert_allclose(generate.nearest_distance_aligned(arch, shuffled, pool), 0.0, atol=1e-6)


def test_aligning_hidden_units_never_makes_a_model_look_more_novel():
    arch, pool = random_cnns(6, seed=0)
    _, candidates = random_cnns(4, seed=1)
    plain = generate.nearest_distance(generate.flatten(candidates), generate.flatten(pool))
    assert (generate.nearest_distance_aligned(arch, candidates, pool) <= plain + 1e-9).all()


def test_kde_samples_are_seeded_and_shaped_like_the_embeddings():
    embeddings = np.random.default_rng(0).normal(size=(30, 4))
    first, again = generate.kde_sample(embeddings, 8, seed=1), generate.kde_sample(embeddings, 8, seed=1)
    assert first.shape == (8, 4)
    np.testing.assert_array_equal(first, again)
