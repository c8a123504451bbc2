"""Promotion: a promoted row holds the source trial's config, the validation figure that picked it and, per
metric the final runs reported, mean, spread and (test figures) a 95% interval over seeds no trial ran; bad
counts are refused before anything is read."""

from pathlib import Path

import pandas as pd
import pytest

from wsl.config import TrainConfig
from wsl.errors import WslError
from wsl.sweep.config import SweepConfig
from wsl.sweep.promote import aggregate, final_config, pick, pick_front, promote, promoted_config, trial_seeds

SOURCE = pd.Series(
    {
        "sweep": "s",
        "trial_id": "t1",
        "zoo": "zoos/digits-cnn",
        "loss.beta": 0.1,
        "objective": 0.7,
        "status": "TERMINATED",
    }
)  # a row of a version-1 sweep: its zoo column named the default, not the zoo the trials ran on
CFG = promoted_config(SOURCE, TrainConfig(zoo="zoos/elsewhere"), epochs=12, out=Path("out"))


def final(seed: int, generate: bool) -> dict:
    """What ``wsl.train.train`` returns at the end of a run (made-up values)."""
    metrics = {
        "seed": seed,
        "epoch": 12,
        "rec_acc": 0.8 + seed / 100,
        "rec_acc_ratio": 0.95 + seed / 100,
        "rec_agreement": 0.5,
        "probe_r2": 0.4,
        "probe_tau": 0.3,
        "val_loss_struct": 0.1,
        "probe_r2_epoch": 0.2,
        "probe_tau_epoch": 0.2,
        "probe_r2_gap": 0.1,
        "probe_tau_gap": 0.1,
        "baseline_r2": 0.6,
        "baseline_tau": 0.5,
        "test_objective": 0.4 + seed / 10,
        "test_rec_acc": 0.8,
    }
    if generate:
        metrics.update(gen_acc=0.7, gen_novelty=3.0, noise_acc=0.6, noise_novelty=3.0, avg_acc=0.1, avg_novelty=1.0)
    return metrics


def test_a_promoted_row_keeps_the_trials_config_and_links_back():
    row = aggregate(SOURCE, CFG, [final(0, True), final(1, True)], Path("out"), Path("promoted.yaml"))
    assert row["loss.beta"] == 0.1 and row["source_trial"] == "t1" and row["status"] == "PROMOTED"
    assert row["trial_id"] == "t1-promoted" and row["seeds"] == 2 and row["epochs"] == 12


def test_a_promoted_row_names_the_zoo_and_budget_it_ran_with():
    row = aggregate(SOURCE, CFG, [final(0, False)], Path("out"), Path("promoted.yaml"))
    assert row["zoo"] == "zoos/elsewhere" and row["optim.epochs"] == 12


def test_a_promoted_row_holds_mean_and_sample_spread_over_seeds():
    row = aggregate(SOURCE, CFG, [final(0, True), final(1, True)], Path("out"), Path("promoted.yaml"))
    assert row["rec_acc_ratio"] == pytest.approx(0.955) and row["rec_acc_ratio_std"] == pytest.approx(0.01 / 2**0.5)
    assert row["gen_acc"] == pytest.approx(0.7) and row["noise_novelty_std"] == 0.0


def test_a_promoted_row_gives_a_95_percent_t_interval_of_its_test_figures():
    """Three seeds at 0.4, 0.5, 0.6: std 0.1, half-width t(0.975, 2) * 0.1 / sqrt(3) = 4.303 * 0.0577."""
    row = aggregate(SOURCE, CFG, [final(s, False) for s in (0, 1, 2)], Path("out"), Path("promoted.yaml"))
    assert row["test_objective"] == pytest.approx(0.5) and row["test_objective_std"] == pytest.approx(0.1)
    assert row["test_objective_ci95"] == pytest.approx(0.24841, abs=1e-5)
    assert "rec_acc_ratio_ci95" not in row  # validation figures get no interval: they picked nothing here


def test_a_promoted_row_names_its_seeds_and_the_figure_that_picked_it():
    source = pd.Series({**SOURCE, "pick_value": 0.91})
    row = aggregate(source, CFG, [final(3, False), final(4, False)], Path("out"), Path("promoted.yaml"))
    assert row["promoted_seeds"] == "3,4" and row["pick_value"] == 0.91


def test_the_seeds_trials_ran_are_never_promoted_seeds():
    trials = pd.DataFrame({"trial_id": ["a", "b", "a-promoted"], "status": ["TERMINATED", "STOPPED", "PROMOTED"]})
    trials["seed"] = [0, 2, 1]
    assert trial_seeds(trials, SweepConfig()) == {0, 2}


def test_a_promoted_run_takes_the_sweeps_budget_and_evaluation_not_the_trials():
    """A trial row records what trials alone run with (no test figures, no baselines, no generation)."""
    row = pd.Series({**SOURCE, "eval.test": False, "eval.baselines": False, "generate": 0, "optim.epochs": 3})
    cfg = promoted_config(row, TrainConfig(), epochs=30, out=Path("out"))
    assert (cfg.eval.test, cfg.eval.baselines, cfg.generate, cfg.optim.epochs) == (True, True, 32, 30)
    assert cfg.loss.beta == 0.1


# one trial per rule: "lucky" peaks at epoch 2, "steady" ends highest among those at max_t, "cut" stopped early
TRIALS = pd.DataFrame(
    {"trial_id": ["lucky", "steady", "cut"], "status": ["TERMINATED", "TERMINATED", "STOPPED"], "sweep": "s"}
)
EPOCHS = pd.DataFrame(
    {
        "trial_id": ["lucky"] * 3 + ["steady"] * 3 + ["cut"],
        "epoch": [1, 2, 3, 1, 2, 3, 1],
        "objective": [0.5, 0.9, 0.6, 0.5, 0.7, 0.8, 0.85],
    }
)


@pytest.mark.parametrize(("rule", "trial", "value"), [("best", "lucky", 0.9), ("last", "steady", 0.8)])
def test_pick_ranks_the_finished_trials_by_the_rule(rule, trial, value):
    (row,) = pick(TRIALS, EPOCHS, "objective", None, 1, rule, max_t=3).to_dict("records")
    assert (row["trial_id"], row["pick_value"]) == (trial, value)


def test_a_race_picks_one_trial(tmp_path):
    with pytest.raises(WslError, match="--rule race picks one trial"):
        promote(SweepConfig(), tmp_path, tmp_path / "promoted", rule="race", top_k=2)


def test_a_race_and_a_named_trial_are_one_choice_too_many(tmp_path):
    with pytest.raises(WslError, match="--trial t1 names the trial, --rule race picks one"):
        promote(SweepConfig(), tmp_path, tmp_path / "promoted", rule="race", trial="t1")


def test_a_final_run_reports_on_the_test_models_whatever_the_sweeps_training_config_says():
    base = TrainConfig()
    base.eval.test = False  # a sweep whose own training config switched the end of the run off
    assert final_config(SOURCE, base, epochs=30, out=Path("out")).eval.test is True


def test_runs_that_generate_nothing_promote_without_generation_columns():
    row = aggregate(SOURCE, CFG, [final(0, False), final(1, False)], Path("out"), Path("promoted.yaml"))
    assert "gen_acc" not in row and row["baseline_r2"] == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        ({"seeds": 0}, "--seeds 0"),
        ({"top_k": 0}, "--top-k 0"),
        ({"epochs": -1}, "--epochs -1"),
        ({"race_k": 0}, "--race-k 0"),
        ({"rule": "mean"}, "--rule 'mean' is unknown"),
    ],
)
def test_promote_refuses_a_count_below_one_before_reading_anything(tmp_path, option, flag):
    with pytest.raises(WslError, match=flag):
        promote(SweepConfig(), tmp_path / "no-such-sweep", tmp_path / "promoted", **option)


def test_a_token_width_read_back_as_text_promotes_as_a_number():
    row = pd.Series({**SOURCE, "tokens.width": "64"})
    assert promoted_config(row, TrainConfig(), epochs=1, out=Path("out")).tokens.width == 64


FRONT = pd.DataFrame(
    {
        "trial_id": ["a", "b", "c", "d", "e"],
        "status": ["TERMINATED", "TERMINATED", "TERMINATED", "TERMINATED", "STOPPED"],
        "pareto_rank": [0, 0, 0, 1, float("nan")],
        "rec_agreement_working": [0.90, 0.86, 0.70, 0.60, 0.99],
        "probe_r2": [0.20, 0.40, 0.60, 0.10, 0.99],
    }
)
OBJECTIVES = ["rec_agreement_working", "probe_r2"]


def test_a_multi_objective_sweep_promotes_its_front_kept_spread_when_cut():
    assert set(pick_front(FRONT, OBJECTIVES, None, None)["trial_id"]) == {"a", "b", "c"}
    # cut to two: the front's two ends (best on the first objective, then the farthest from it), not a and b
    assert list(pick_front(FRONT, OBJECTIVES, None, 2)["trial_id"]) == ["a", "c"]


def test_a_pick_promotes_the_front_trial_it_keeps_that_is_best_on_the_last_objective():
    chosen = pick_front(FRONT, OBJECTIVES, "rec_agreement_working >= 0.85", None)
    assert chosen["trial_id"].tolist() == ["b"] and chosen["pick_value"].tolist() == [0.40]


def test_a_pick_that_keeps_no_front_trial_is_refused():
    with pytest.raises(WslError, match="keeps none of the 3 trials on the front"):
        pick_front(FRONT, OBJECTIVES, "probe_r2 > 0.9", None)
