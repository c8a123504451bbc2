"""One training run: reports DESIGN.md's metrics every epoch, learns, checkpoints, resumes."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from wsl import metrics
from wsl.config import OptimConfig, TokenConfig, TrainConfig
from wsl.data import behavior, prepare
from wsl.errors import WslError
from wsl.evaluate import reconstruction
from wsl.generate import generation_population
from wsl.losses import LossConfig
from wsl.model import ModelConfig
from wsl.run import CHECKPOINT, load_run
from wsl.train import train
from wsl.zoo.store import load_zoo

RECONSTRUCTION = ("rec_acc", "rec_acc_ratio", "rec_agreement")
EPOCH_METRICS = {
    "loss",
    "loss_struct",
    "loss_contrast",
    "loss_behav",
    "val_loss_struct",
    "rec_acc",
    "rec_acc_ratio",
    "rec_agreement",
    "probe_r2",
    "probe_tau",
    "epoch",
    "time_s",
}


def config(path, out, **loss):
    return TrainConfig(
        zoo=str(path),
        out=str(out),
        device="cpu",
        generate=4,
        model=ModelConfig(d_model=32, layers=1, heads=2, latent_dim=8),
        optim=OptimConfig(epochs=2, batch_size=16, lr=1e-3),
        loss=LossConfig(probe_size=32, **loss),
    )


@pytest.fixture(scope="module")
def run(small_zoo_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "a"
    reports = []
    final = train(config(small_zoo_path, out), reports.append)
    return out, reports, final


def test_reports_every_design_metric_once_per_epoch(run):
    _, reports, _ = run
    assert [r["epoch"] for r in reports] == [1, 2]
    assert all(set(r) == EPOCH_METRICS for r in reports)


def test_every_name_a_run_reports_is_listed_in_wsl_metrics(run):
    _, reports, final = run
    assert set(reports[-1]) == set(metrics.EPOCH) and set(final) == {*metrics.EPOCH, *metrics.END}


def test_final_metrics_add_baseline_and_generation(run):
    _, _, final = run
    assert {"baseline_r2", "baseline_tau", "gen_acc", "gen_novelty", "noise_acc", "avg_acc"} <= set(final)
    assert 0 <= final["gen_acc"] <= 1 and final["gen_novelty"] > 0


def test_final_metrics_probe_the_extra_targets_epoch_and_generalisation_gap(run):
    _, _, final = run
    extra = {"probe_r2_epoch", "probe_tau_epoch", "probe_r2_gap", "probe_tau_gap"}
    assert extra <= set(final)
    assert all(np.isfinite(final[k]) for k in extra)


def test_structural_loss_falls(run):
    _, reports, _ = run
    assert reports[-1]["loss_struct"] < reports[0]["loss_struct"]


def test_beta_one_skips_the_behavioral_branch(small_zoo_path, tmp_path):
    reports = []
    train(config(small_zoo_path, tmp_path / "b", beta=1.0), reports.append)
    assert all(pd.isna(r["loss_behav"]) for r in reports)


def test_a_memo_computes_the_behavioral_targets_once_per_probe_set(small_zoo_path, tmp_path):
    data, memo = prepare(load_zoo(small_zoo_path), 32, "cpu"), {}
    cfg = config(small_zoo_path, tmp_path)
    first = behavior(data, cfg.loss, cfg.seed, memo)
    again = behavior(data, cfg.loss, cfg.seed, memo)
    other = behavior(data, replace(cfg.loss, probe_size=16), cfg.seed, memo)
    assert again.targets is first.targets
    assert torch.equal(first.targets, behavior(data, cfg.loss, cfg.seed).targets)
    assert other.targets.shape[1] == 16 and len(memo) == 2


def test_resume_continues_after_the_last_checkpoint(run, small_zoo_path):
    out, _, _ = run
    cfg = config(small_zoo_path, out)
    cfg.optim.epochs = 3
    reports = []
    train(cfg, reports.append, resume=True)
    assert [r["epoch"] for r in reports] == [3]
    assert torch.load(out / CHECKPOINT, weights_only=True)["epoch"] == 3


def test_resume_refuses_a_checkpoint_of_another_autoencoder(run, small_zoo_path):
    out, _, _ = run
    cfg = config(small_zoo_path, out)
    cfg.model.latent_dim = 4  # the run was trained at 8
    before = (out / CHECKPOINT).read_bytes()
    with pytest.raises(WslError, match="model.latent_dim=8, not 4"):
        train(cfg, lambda metrics: None, resume=True)
    assert (out / CHECKPOINT).read_bytes() == before


@pytest.mark.parametrize(
    "overrides, key",
    [({"gamma": 1.5}, "loss.gamma"), ({"beta": -0.1}, "loss.beta"), ({"probe_size": 0}, "loss.probe_size")],
)
def test_out_of_range_values_are_named(overrides, key):
    with pytest.raises(WslError, match=key):
        TrainConfig(loss=LossConfig(**overrides))


def test_token_width_below_one_is_named():
    with pytest.raises(WslError, match="tokens.width"):
        TrainConfig(tokens=TokenConfig(width=0))


def test_generation_stays_within_the_best_models_activation_function():
    """The weights do not say which activation a network runs: generating across several would break it."""
    models = pd.DataFrame(
        {
            "test_acc": [0.90, 0.95, 0.50, 0.97, 0.80, 0.85, 0.96],
            "activation": ["relu", "tanh", "tanh", "relu", "tanh", "relu", "gelu"],
        }
    )
    top, act = generation_population(models, np.array([0, 1, 2, 3, 4, 5]))
    assert act == "relu" and list(top) == [3, 0]


def test_epoch_losses_average_over_the_steps_taken(small_zoo_path, tmp_path):
    """A last batch of one model is skipped (no contrastive pair), so it must not count in the mean.

    With each component divided by its first value, the first step's total is exactly 1: with one step an
    epoch, epoch 1's mean is 1 (it was 0.5 while the skipped batch was counted).
    """
    rows = len(prepare(load_zoo(small_zoo_path), 32, "cpu").rows["train"])
    cfg = config(small_zoo_path, tmp_path / "one-step")
    cfg.optim = OptimConfig(epochs=1, batch_size=rows - 1)
    reports = []
    train(cfg, reports.append)
    assert reports[0]["loss"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def finished(small_zoo_path, tmp_path_factory):
    """A run left as it ended (the ``run`` fixture is resumed by another test)."""
    cfg = config(small_zoo_path, tmp_path_factory.mktemp("runs") / "finished")
    cfg.generate, cfg.optim.epochs = 0, 1
    reports = []
    train(cfg, reports.append)
    return Path(cfg.out), reports


def test_a_finished_run_reloads_from_its_directory_alone(finished, small_zoo_path):
    out, reports = finished
    reloaded = load_run(out, "cpu")
    fitted = prepare(load_zoo(small_zoo_path), 32, "cpu").norm
    assert torch.equal(reloaded.norm.mean, fitted.mean) and torch.equal(reloaded.norm.std, fitted.std)
    assert reloaded.epoch == reports[-1]["epoch"] and reloaded.cfg.model.latent_dim == 8
    assert reconstruction(reloaded.model, reloaded.data()) == {k: reports[-1][k] for k in RECONSTRUCTION}


def test_a_checkpoint_of_the_first_format_reloads_by_refitting_from_its_zoo(finished, tmp_path):
    out, reports = finished
    state = torch.load(out / CHECKPOINT, weights_only=True)
    old = {k: v for k, v in state.items() if k not in ("version", "arch", "token_width", "normalizer")}
    (tmp_path / "old").mkdir()
    torch.save(old, tmp_path / "old" / CHECKPOINT)
    reloaded = load_run(tmp_path / "old", "cpu")
    assert reconstruction(reloaded.model, reloaded.data()) == {k: reports[-1][k] for k in RECONSTRUCTION}


def test_a_checkpoint_of_the_first_format_without_its_zoo_says_what_to_do(finished, tmp_path):
    out, _ = finished
    state = torch.load(out / CHECKPOINT, weights_only=True)
    state["config"]["zoo"] = str(tmp_path / "gone")
    old = {k: v for k, v in state.items() if k not in ("version", "arch", "token_width", "normalizer")}
    torch.save(old, tmp_path / CHECKPOINT)
    with pytest.raises(WslError, match="holds no normaliser.*gone, which does not exist"):
        load_run(tmp_path, "cpu")


def test_a_directory_without_a_checkpoint_is_no_run(tmp_path):
    with pytest.raises(WslError, match="not a run directory"):
        load_run(tmp_path)
