"""The search replay drives the real searcher and ASHA in simulated time, from curves a source gives."""

import numpy as np
import pandas as pd
import pytest
from ray.tune.schedulers.async_hyperband import _Bracket

from wsl.compose import load_config
from wsl.sweep import search
from wsl.sweep.config import SweepConfig
from wsl.sweep.replay import Setting, Surrogate, recorded, simulate, smoothed, warm_trials

MAX_T = 6


def sweep(*overrides):
    fixed = ["scheduler.max_t=6", "scheduler.grace_period=1", "scheduler.reduction_factor=2", "search.num_samples=16"]
    return load_config("sweep", [*fixed, "search.points_to_evaluate=[]", *overrides], SweepConfig)


def by_beta(config: dict, number: int):
    """A curve that rises to a level set by beta (low beta: better), one second an epoch."""
    level = 1 - config["loss.beta"]
    return {"objective": level * np.linspace(0.5, 1, MAX_T)}, np.ones(MAX_T)


def test_random_search_without_asha_runs_every_trial_to_max_t():
    epochs = simulate(sweep(), Setting("random", asha=False), by_beta, seed=0)
    assert len(epochs) == 16 * MAX_T and epochs.groupby("trial")["epoch"].max().eq(MAX_T).all()


def test_two_trials_at_a_time_take_half_the_simulated_time():
    epochs = simulate(sweep("search.max_concurrent=2"), Setting("random", asha=False), by_beta, seed=0)
    assert epochs["time_s"].max() == pytest.approx(16 * MAX_T / 2)


def test_asha_stops_trials_as_its_bracket_rule_says_in_arrival_order():
    epochs = simulate(sweep("search.max_concurrent=1"), Setting("random"), by_beta, seed=0)
    bracket = _Bracket(1, MAX_T, 2, 0)
    expected = {}
    for row in epochs.itertuples():  # one trial at a time: arrival order is trial by trial
        trial = type("T", (), {"trial_id": row.trial})()
        stop = bracket.on_result(trial, row.epoch, row.objective) == "STOP"
        if stop or row.epoch == MAX_T:
            expected[row.trial] = row.epoch
    assert epochs.groupby("trial")["epoch"].max().to_dict() == expected
    assert min(expected.values()) < MAX_T  # some were stopped


def test_tpe_under_asha_spends_fewer_trial_epochs_than_random_without_it():
    tpe = simulate(sweep(), Setting("optuna"), by_beta, seed=0)
    random = simulate(sweep(), Setting("random", asha=False), by_beta, seed=0)
    assert len(tpe) < len(random) and tpe["trial"].nunique() == 16


def test_a_setting_reaches_the_scheduler_and_searcher_it_makes():
    cfg = Setting("optuna", grace_period=2, reduction_factor=3, brackets=2, startup=8).sweep(sweep(), seed=5)
    asha = search.scheduler(cfg)
    assert [[rung for rung, _ in b._rungs] for b in asha._brackets] == [[6, 2], [6]]  # rungs at 2 and 6 epochs
    assert (cfg.search.seed, cfg.search.startup, cfg.scheduler.grace_period) == (5, 8, 2)


def test_a_warm_started_replay_starts_from_an_earlier_sweeps_trials():
    earlier = simulate(sweep(), Setting("optuna"), by_beta, seed=1)
    warm = warm_trials(sweep(), earlier)
    assert len(warm) == 16 and {t.state.name for t in warm} == {"COMPLETE", "PRUNED"}


def test_a_warm_start_proposes_the_low_beta_the_earlier_trials_found_good_from_its_first_trial():
    """Over 10 seeds, the first four proposals: TPE warm-started from an earlier sweep against TPE cold (whose
    first four are its random start-up draws, median beta about 0.22 on this log range)."""
    first4 = sweep("search.num_samples=4")
    lower = []
    for seed in range(10):
        warm = warm_trials(sweep(), simulate(sweep(), Setting("optuna"), by_beta, seed=100 + seed))
        cold = simulate(first4, Setting("optuna"), by_beta, seed=seed).groupby("trial").first()["loss.beta"]
        warmed = simulate(first4, Setting("optuna"), by_beta, seed=seed, warm=warm).groupby("trial").first()
        lower.append(warmed["loss.beta"].mean() < cold.mean())
    assert sum(lower) >= 9


def test_asha_stops_the_trials_a_hand_computed_example_says():
    """Rungs at epochs 1, 2, 4 (grace 1, reduction factor 2, max_t 6); a trial stops at a rung when its value
    is below the median of those recorded there before it. Curves: (1 - beta) * [0.5, 0.6, 0.7, 0.8, 0.9, 1.0].

    beta 0.5: first at every rung, runs on. 0.2: 0.40 > 0.25, 0.48 > 0.30, 0.64 > 0.40: runs on.
    0.8: 0.10 < median(0.25, 0.40): stopped at 1. 0.1: 0.45 > 0.25, 0.54 > 0.39, 0.72 > 0.52: runs on.
    0.6: 0.20 < median(0.25, 0.40, 0.10, 0.45) = 0.325: stopped at 1.
    0.3: 0.35 > 0.25 at epoch 1, then 0.42 < median(0.30, 0.48, 0.54) = 0.48: stopped at 2.
    """
    betas = [0.5, 0.2, 0.8, 0.1, 0.6, 0.3]
    proposals = [{"loss.beta": beta} for beta in betas]
    epochs = simulate(sweep("search.max_concurrent=1"), Setting("random"), by_beta, seed=0, proposals=proposals)
    assert epochs.groupby("trial")["epoch"].max().tolist() == [6, 6, 1, 6, 1, 2]


def test_a_smoothed_objective_is_the_best_so_far_or_the_mean_of_the_last_three_epochs():
    values = np.array([0.5, 0.2, 0.3, 0.1])
    assert [smoothed(values, how) for how in ("last", "best", "mean3")] == pytest.approx([0.1, 0.5, 0.2])


def test_asha_and_the_searcher_see_the_smoothed_objective():
    def dipping(config, number):  # rises, dips at the rung epoch 2, recovers
        return {"objective": np.array([0.5, 0.1, 0.6, 0.7, 0.8, 0.9]) * (1 - config["loss.beta"])}, np.ones(MAX_T)

    epochs = simulate(sweep(), Setting("random", smoothing="best"), dipping, seed=0)
    best_so_far = epochs.groupby("trial")["objective"].cummax()
    assert np.allclose(epochs["seen"], best_so_far) and not np.allclose(epochs["seen"], epochs["objective"])


def test_tpe_options_change_proposals_after_the_random_start_up_only():
    first = lambda epochs: epochs.groupby("trial").first()["loss.beta"].to_numpy()  # noqa: E731
    plain = first(simulate(sweep(), Setting("optuna", startup=4), by_beta, seed=0))
    independent = first(  # Optuna 5's TPE is multivariate unless told otherwise
        simulate(sweep(), Setting("optuna", startup=4, tpe=(("multivariate", False),)), by_beta, seed=0)
    )
    assert (plain[:4] == independent[:4]).all() and (plain[4:] != independent[4:]).any()


def test_the_same_seed_replays_the_same_sweep():
    a = simulate(sweep(), Setting("optuna"), by_beta, seed=3)
    b = simulate(sweep(), Setting("optuna"), by_beta, seed=3)
    pd.testing.assert_frame_equal(a, b)


def record(betas, seeds=(0,), noise=0.0, seconds=lambda i: 2.0):
    rng = np.random.default_rng(0)
    rows = []
    for i, beta in enumerate(betas):
        for seed in seeds:
            curve = by_beta({"loss.beta": beta}, 0)[0]["objective"]
            curve = curve + noise * rng.standard_normal(MAX_T)
            rows += [
                {
                    "config_id": i,
                    "seed": seed,
                    "epoch": e + 1,
                    "objective": curve[e],
                    "time_s": seconds(i),
                    "config.loss.beta": beta,
                    "config.tokens.width": "row" if i % 2 else "32",
                    "config.loss.gamma": 0.05,
                    "config.loss.probe_size": 256,
                    "config.optim.lr": 1e-3,
                }
                for e in range(MAX_T)
            ]
    return pd.DataFrame(rows)


def test_the_surrogate_predicts_held_out_configs():
    betas = np.geomspace(0.05, 1.0, 40)
    model = Surrogate(record(betas), sweep().params())
    error = np.abs(model.held_out()[:, 0, -1] - (1 - betas))  # each predicted by a fit without it
    assert np.median(error) < 0.03  # trees do not extrapolate: the ends of the range are worse


def test_the_surrogate_curve_is_not_led_by_seconds_that_vary_with_another_key():
    """Epoch seconds (tens) dwarf objectives (below 1): a joint fit would split on what sets the seconds."""
    betas = np.random.default_rng(1).permutation(np.geomspace(0.05, 1.0, 40))
    model = Surrogate(record(betas, seconds=lambda i: 5.0 + 40.0 * (i % 2)), sweep().params())
    error = np.abs(model.held_out()[:, 0, -1] - (1 - betas))
    assert np.median(error) < 0.03


def test_the_surrogate_times_epochs_from_runs_on_an_idle_machine_only():
    frame = record(np.geomspace(0.05, 1.0, 40), seconds=lambda i: 2.0 if i % 4 else 50.0)
    frame["shared"] = frame["time_s"] > 10  # every 4th run shared its cores with other jobs
    model = Surrogate(frame, sweep().params())
    seconds = np.stack([model.mean(config)[1] for config in model.configs])  # the shared configs' too
    assert seconds == pytest.approx(np.full_like(seconds, 2.0))


def test_the_surrogate_noise_is_the_seed_to_seed_spread_of_the_repeats():
    model = Surrogate(record(np.geomspace(0.05, 1.0, 10), seeds=(0, 1), noise=0.1), sweep().params())
    assert model.noise.shape == (10, 1, MAX_T) and model.noise.std() == pytest.approx(0.1, abs=0.03)


def test_the_surrogate_answers_a_proposal_with_a_curve_and_its_seconds():
    model = Surrogate(record(np.geomspace(0.05, 1.0, 40)), sweep().params())
    proposal = {"loss.beta": 0.2, "tokens.width": "row", "loss.gamma": 0.05, "loss.probe_size": 256, "optim.lr": 1e-3}
    curves, seconds = model.source(0, noise=False)(proposal, 0)
    assert curves["objective"][-1] == pytest.approx(0.8, abs=0.1) and seconds == pytest.approx([2.0] * MAX_T)


def test_a_recorded_sweep_replays_its_finished_trials_only():
    """An errored trial's curve ends where it broke: replayed, it would run on to max_t on invented epochs."""
    trials = pd.DataFrame(
        {"trial_id": ["a", "b", "c"], "status": ["TERMINATED", "ERROR", "STOPPED"], "loss.beta": [0.1, 0.2, 0.3]}
    )
    epochs = pd.DataFrame(
        {
            "trial_id": ["a"] * MAX_T + ["b", "b", "c"],
            "epoch": [*range(1, MAX_T + 1), 1, 2, 1],
            "objective": [0.5] * MAX_T + [0.4, 0.45, 0.2],
            "time_s": 1.0,
        }
    )
    configs, curve = recorded(trials, epochs, ["loss.beta"], MAX_T)
    assert configs == [{"loss.beta": 0.1}, {"loss.beta": 0.3}]
    assert curve(configs[1], 1)[0]["objective"].tolist() == [0.2] * MAX_T  # c's curve, padded after ASHA stopped it


def two_objectives(config: dict, number: int):
    """Agreement rises to a level set by beta (low: better), R² to one set by gamma (high: better): a trade-off."""
    rise = np.linspace(0.5, 1, MAX_T)
    agreement, r2 = (1 - config["loss.beta"]) * rise, config["loss.gamma"] * 2 * rise
    return {"rec_agreement": agreement, "probe_r2": r2}, np.ones(MAX_T)


def test_a_multi_objective_replay_stops_trials_as_the_multi_objective_asha_says_in_arrival_order():
    cfg = sweep("search.max_concurrent=1", "objective=[rec_agreement,probe_r2]")
    epochs = simulate(cfg, Setting("random"), two_objectives, seed=0)
    asha, expected = search.scheduler(cfg), {}
    for row in epochs.itertuples():  # one trial at a time: arrival order is trial by trial
        trial = type("T", (), {"trial_id": f"t{row.trial}"})()
        result = {"training_iteration": row.epoch, "rec_agreement": row.rec_agreement, "probe_r2": row.probe_r2}
        if asha.on_trial_result(None, trial, result) == "STOP" or row.epoch == MAX_T:
            asha.on_trial_complete(None, trial, result)
            expected[row.trial] = row.epoch
    assert epochs.groupby("trial")["epoch"].max().to_dict() == expected
    assert min(expected.values()) < MAX_T and "seen" not in epochs  # some were stopped; both objectives told


def test_a_weighted_sum_sweep_weighs_its_objective_from_the_metrics_a_source_gives():
    epochs = simulate(sweep("objective=0.5*rec_agreement+0.5*probe_r2"), Setting("optuna"), two_objectives, seed=0)
    assert np.allclose(epochs["objective"], 0.5 * epochs["rec_agreement"] + 0.5 * epochs["probe_r2"])
    assert np.allclose(epochs["seen"], epochs["objective"])


def test_a_multi_objective_replay_warm_starts_a_study_with_both_objectives():
    cfg = sweep("objective=[rec_agreement,probe_r2]")
    earlier = simulate(cfg, Setting("optuna"), two_objectives, seed=1)
    complete = [t for t in warm_trials(cfg, earlier) if t.state.name == "COMPLETE"]
    finals = earlier[earlier["epoch"] == MAX_T].sort_values("trial")[["rec_agreement", "probe_r2"]].to_numpy()
    assert np.allclose([t.values for t in complete], finals)
