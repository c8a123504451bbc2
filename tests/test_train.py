"""One training run: reports DESIGN.md's metrics every epoch, learns, checkpoints, resumes."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from wsl import evaluate, metrics
from wsl.compose import load_config
from wsl.config import EvalConfig, OptimConfig, TokenConfig, TrainConfig
from wsl.data import behavior, prepare
from wsl.errors import WslError
from wsl.evaluate import copy_baselines, epoch_inputs, final_rows, originals, probe_rows, reconstruction
from wsl.generate import generation_population
from wsl.losses import LossConfig
from wsl.model import ModelConfig
from wsl.run import CHECKPOINT, load_run
from wsl.train import epoch_order, train
from wsl.zoo.arch import forward
from wsl.zoo.store import load_zoo
from wsl.zoo.tasks import Task, load_task

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
    assert all(set(r) >= EPOCH_METRICS for r in reports)


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
    cfg.loss.resample = False  # a fixed probe set per run: its targets are what the memo keeps
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
    data = reloaded.data()
    rec = reconstruction(reloaded.model, data, working_acc=0.5, held=originals(data, "val"))
    assert {k: rec[k] for k in RECONSTRUCTION} == {k: reports[-1][k] for k in RECONSTRUCTION}


def test_a_checkpoint_of_the_first_format_reloads_by_refitting_from_its_zoo(finished, tmp_path):
    out, reports = finished
    state = torch.load(out / CHECKPOINT, weights_only=True)
    old = {k: v for k, v in state.items() if k not in ("version", "arch", "token_width", "normalizer")}
    (tmp_path / "old").mkdir()
    torch.save(old, tmp_path / "old" / CHECKPOINT)
    reloaded = load_run(tmp_path / "old", "cpu")
    data = reloaded.data()
    rec = reconstruction(reloaded.model, data, working_acc=0.5, held=originals(data, "val"))
    assert {k: rec[k] for k in RECONSTRUCTION} == {k: reports[-1][k] for k in RECONSTRUCTION}


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


def test_every_epoch_sees_its_own_batch_order_and_a_resumed_run_the_same_one():
    rows = np.arange(100)
    orders = [epoch_order(rows, seed=0, epoch=e) for e in (1, 2, 3)]
    assert all(not np.array_equal(a, b) for a, b in ((orders[0], orders[1]), (orders[1], orders[2])))
    assert np.array_equal(epoch_order(rows, seed=0, epoch=2), orders[1])  # depends on (seed, epoch) alone
    assert sorted(orders[2]) == list(rows)


def test_reconstruction_is_reported_apart_for_working_and_broken_originals(run):
    _, reports, _ = run
    last = reports[-1]
    assert 0 <= last["rec_agreement_working"] <= 1 and 0 <= last["rec_agreement_broken"] <= 1
    assert last["orig_acc_broken"] < 0.5  # broken: below eval.working_acc
    assert -1 <= last["rec_acc_corr"] <= 1


def test_the_baselines_stand_on_the_probes_rows_all_and_later(small_zoo_path, run):
    """The test zoo's checkpoints are at epochs 0, 1, 3: later rows (epoch >= 5 by default) do not exist."""
    _, reports, final = run
    assert np.isfinite([final[f"{b}_r2"] for b in ("baseline", "boost", "meta")]).all()
    assert np.isnan([reports[-1]["probe_r2_later"], final["baseline_r2_later"], final["boost_r2_later"]]).all()


def test_later_rows_are_checkpoints_at_or_after_the_later_epoch(small_zoo_path):
    data = prepare(load_zoo(small_zoo_path), 32, "cpu")
    rows = probe_rows(data, later_epoch=1)["_later"]
    epochs = data.zoo.models["epoch"].to_numpy()
    assert all((epochs[r] >= 1).all() and len(r) for r in rows.values())
    assert sum(map(len, rows.values())) == (epochs >= 1).sum()


def test_resampled_behavioral_inputs_are_new_every_step_with_the_originals_outputs(small_zoo_path):
    data = prepare(load_zoo(small_zoo_path), 32, "cpu")
    behav = behavior(data, LossConfig(probe_size=8, resample=True, probe_pool=100), seed=0)
    batch = data.rows["train"][:4]
    originals = {k: v[batch] for k, v in data.zoo.weights.items()}
    (x1, t1), (x2, _) = behav.step(data, batch, originals), behav.step(data, batch, originals)
    assert x1.shape[0] == 8 and not torch.equal(x1, x2)
    assert any(torch.equal(x1[0], image) for image in data.task.x_train[:100])  # drawn from the pool
    torch.testing.assert_close(t1, forward(data.zoo.arch, originals, x1, list(data.activations[batch])))


def test_a_run_with_resampled_behavioral_inputs_trains(small_zoo_path, tmp_path):
    cfg = config(small_zoo_path, tmp_path / "resampled")
    cfg.loss.resample, cfg.generate, cfg.optim.epochs = True, 0, 1
    reports = []
    train(cfg, reports.append)
    assert np.isfinite(reports[0]["loss_behav"]) and reports[0]["loss_behav"] > 0


def test_a_pooled_contrastive_head_reads_the_embedding(small_zoo_path, tmp_path):
    cfg = config(small_zoo_path, tmp_path / "pooled")
    cfg.model.pooled_head, cfg.tokens.width, cfg.generate, cfg.optim.epochs = True, "row", 0, 1
    reports = []
    train(cfg, reports.append)
    run = load_run(cfg.out, "cpu")
    assert run.model.head[0].in_features == cfg.model.latent_dim and run.lay.num_tokens == 48
    assert np.isfinite(reports[0]["loss_contrast"])


@pytest.mark.parametrize("width", ["row", 7])
def test_a_token_width_is_a_number_or_row(width):
    assert TrainConfig(tokens=TokenConfig(width=width)).tokens.width == width


def test_a_token_width_of_another_word_is_named():
    with pytest.raises(WslError, match="tokens.width='wide'"):
        TrainConfig(tokens=TokenConfig(width="wide"))


def test_a_warm_start_trains_on_structure_alone_first(small_zoo_path, tmp_path):
    cfg = config(small_zoo_path, tmp_path / "warm")
    cfg.loss.warmup_epochs, cfg.generate = 1, 0
    reports = []
    train(cfg, reports.append)
    assert np.isnan(reports[0]["loss_behav"]) and np.isfinite(reports[1]["loss_behav"])


def test_what_a_run_reports_each_epoch_does_not_depend_on_the_test_models(small_zoo_path, tmp_path):
    """Per-epoch figures are validation figures: other test models (weights and accuracies) change none."""
    from conftest import with_other_test_models

    zoo = load_zoo(small_zoo_path)
    cfg = replace(config(small_zoo_path, tmp_path / "a"), generate=0)
    cfg.optim.epochs = 1
    reports = {}
    for name, z in (("a", zoo), ("b", with_other_test_models(zoo))):
        reports[name] = []
        train(replace(cfg, out=str(tmp_path / name)), reports[name].append, zoo=z)
    a, b = (pd.DataFrame(reports[name]).drop(columns="time_s") for name in ("a", "b"))
    assert a.equals(b)  # NaN equal to NaN (no later rows in this zoo)


def test_the_end_of_a_run_reports_the_test_models_under_test_names(run, small_zoo_path):
    _, reports, final = run
    assert not any(k.startswith("test_") for k in reports[-1])
    data = prepare(load_zoo(small_zoo_path), 32, "cpu")
    copies = copy_baselines(data, originals(data, "test"), 0.5)
    assert {k: final[f"test_{k}"] for k in copies} == copies
    assert {k: reports[-1][k] for k in copies} == copy_baselines(data, originals(data, "val"), 0.5) != copies


def test_a_run_with_eval_test_off_computes_no_test_figure(small_zoo_path, tmp_path):
    cfg = replace(config(small_zoo_path, tmp_path / "off"), generate=0)
    cfg.optim.epochs = 1
    cfg.eval = replace(cfg.eval, test=False)
    final = train(cfg, lambda metrics: None)
    assert set(final) == set(metrics.EPOCH)


def test_a_copied_training_model_agrees_with_its_original_as_computed_by_hand(small_zoo_path):
    """The copy baselines on the test zoo, recomputed here from the models' predictions."""
    data = prepare(load_zoo(small_zoo_path), 32, "cpu")
    held, train_rows = final_rows(data, "test"), final_rows(data, "train")
    acc = data.zoo.models["test_acc"].to_numpy()

    def predictions(row):
        params = {k: v[row : row + 1] for k, v in data.zoo.weights.items()}
        return forward(data.lay.arch, params, data.task.x_test, [data.activations[row]]).argmax(-1)[0]

    agree = np.array([[(predictions(h) == predictions(t)).double().mean().item() for t in train_rows] for h in held])
    best = agree[:, acc[train_rows].argmax()]
    closest = agree[np.arange(len(held)), np.abs(acc[held][:, None] - acc[train_rows][None]).argmin(1)]
    working = acc[held] >= 0.5
    got = copy_baselines(data, originals(data, "test"), 0.5)
    assert got["copy_best_agreement_working"] == pytest.approx(best[working].mean())
    assert got["copy_closest_agreement_working"] == pytest.approx(closest[working].mean())
    assert got["copy_oracle_agreement_working"] == pytest.approx(agree.max(1)[working].mean())
    assert got["copy_oracle_agreement_working"] >= got["copy_best_agreement_working"]


def test_a_resumed_run_reports_what_an_uninterrupted_one_does(small_zoo_path, tmp_path):
    """Batch order, augmentations and the resampled behavioral inputs all draw per epoch: epoch 2 after a
    resume from epoch 1 is epoch 2 of a run that never stopped."""
    cfg = replace(config(small_zoo_path, tmp_path / "whole"), generate=0)
    cfg.optim.epochs, cfg.eval.test = 2, False
    whole, first, rest = [], [], []
    train(cfg, whole.append)
    train(replace(cfg, out=str(tmp_path / "cut"), optim=replace(cfg.optim, epochs=1)), first.append)
    train(replace(cfg, out=str(tmp_path / "cut")), rest.append, resume=True)
    assert cfg.loss.resample and [r["epoch"] for r in rest] == [2]
    a, b = (pd.DataFrame(r).drop(columns="time_s") for r in (whole[1:], rest))
    assert a.equals(b)


def test_the_originals_run_once_a_run_and_each_epoch_runs_only_the_reconstructions(
    small_zoo_path, tmp_path, monkeypatch
):
    """Two epochs: the validation originals are run once (their predictions never change), the training
    models once (the copy baselines), the reconstructions every epoch."""
    data = prepare(load_zoo(small_zoo_path), 32, "cpu")
    val_weights = {k: v[final_rows(data, "val")] for k, v in data.zoo.weights.items()}
    calls = []
    real = evaluate._predictions

    def counted(arch, params, activations, x, **kw):
        calls.append(all(torch.equal(params[k], val_weights[k]) for k in params))
        return real(arch, params, activations, x, **kw)

    monkeypatch.setattr(evaluate, "_predictions", counted)
    cfg = replace(config(small_zoo_path, tmp_path), generate=0, optim=OptimConfig(epochs=2, batch_size=16))
    cfg.eval.test = False
    train(cfg, lambda metrics: None)
    assert calls.count(True) == 1 and len(calls) == 2 + 2


def test_eval_inputs_is_one_fixed_subset_of_the_test_inputs_whatever_the_epoch_or_seed(small_zoo_path):
    task = prepare(load_zoo(small_zoo_path), 32, "cpu").task
    x, y = epoch_inputs(task, 50)
    assert x.shape == (50, *task.x_test.shape[1:]) and y.shape == (50,)
    index = [int((task.x_test == row).flatten(1).all(1).nonzero()[0]) for row in x]
    assert index == sorted(set(index)) and torch.equal(y, task.y_test[index])  # drawn without replacement, in order
    torch.manual_seed(1)  # a run's seed does not move the subset
    assert torch.equal(epoch_inputs(task, 50)[0], x)
    assert epoch_inputs(task, len(task.x_test) + 1)[0] is task.x_test and epoch_inputs(task, None)[0] is task.x_test


def test_the_default_eval_inputs_keep_a_small_task_whole_and_cut_a_cifar_sized_one():
    default = load_config("train", [], TrainConfig).eval.inputs
    assert default == EvalConfig().inputs == 1000
    digits = load_task("digits")
    assert epoch_inputs(digits, default)[0] is digits.x_test  # 539 test inputs: the default zoo's runs are unchanged
    images = torch.randn(10_000, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    cifar_sized = Task(
        "random", images, torch.zeros(10_000, dtype=torch.long), images, torch.zeros(10_000, dtype=torch.long), 10
    )
    assert len(epoch_inputs(cifar_sized, default)[0]) == 1000


def test_a_run_on_a_subset_reports_it_every_epoch_and_the_whole_test_set_at_the_end(small_zoo_path, tmp_path):
    """Two seeds at eval.inputs=40: their epochs' originals run on the same 40 inputs, and the end of the run
    (the test figures) is what a run on every input reports."""
    base = replace(config(small_zoo_path, tmp_path / "a"), generate=0, optim=OptimConfig(epochs=1, batch_size=16))
    base.eval = replace(base.eval, baselines=False)
    finals, seen = {}, []
    real = evaluate.originals

    def recorded(data, split, inputs=None):
        held = real(data, split, inputs)
        seen.append((split, held.x))
        return held

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate, "originals", recorded)
        patch.setattr("wsl.train.originals", recorded)
        for name, seed, inputs in (("sub0", 0, 40), ("sub1", 1, 40), ("all", 0, None)):
            cfg = replace(base, out=str(tmp_path / name), seed=seed, eval=replace(base.eval, inputs=inputs))
            finals[name] = train(cfg, lambda metrics: None)
    (v0, x0), _, (v1, x1), (t1, xt), (va, xa), _ = seen
    assert (v0, v1, t1, va) == ("val", "val", "test", "val") and len(x0) == 40 and torch.equal(x0, x1)
    assert len(xt) == len(xa) > 40
    test = [k for k in finals["all"] if k.startswith("test_rec") or k.startswith("test_copy")]
    assert test and {k: finals["sub0"][k] for k in test} == pytest.approx(
        {k: finals["all"][k] for k in test}, nan_ok=True
    )


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "64"])
def test_eval_inputs_out_of_range_is_named(value):
    with pytest.raises(WslError, match=r"eval\.inputs"):
        TrainConfig(eval=EvalConfig(inputs=value))


def test_predictions_in_blocks_of_models_and_inputs_are_those_of_all_at_once(small_zoo_path):
    """Blocks bound the evaluation's memory; each model's predictions are what it predicts run alone."""
    data = prepare(load_zoo(small_zoo_path), 32, "cpu")
    acts, x = list(data.activations), data.task.x_test
    whole = evaluate._predictions(data.lay.arch, data.zoo.weights, acts, x, models=len(acts), inputs=len(x))
    blocks = evaluate._predictions(data.lay.arch, data.zoo.weights, acts, x, models=7, inputs=50)
    alone = forward(data.lay.arch, {k: v[5:6] for k, v in data.zoo.weights.items()}, x, acts[5:6]).argmax(-1)
    assert torch.equal(whole, blocks) and torch.equal(blocks[5:6], alone)
