"""A sweep can start from earlier sweeps' trials: each told to its Optuna study as the sweep would tell it."""

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from wsl import table
from wsl.compose import load_config
from wsl.errors import WslError
from wsl.sweep import search, warmstart
from wsl.sweep.config import SweepConfig

OBJECTIVE = "0.5*rec_agreement + 0.5*probe_r2"


def sweep(*overrides):
    fixed = ["name=new", f"objective={OBJECTIVE}", "scheduler.max_t=3", "space.tokens.width.choices=[32,row]"]
    return load_config("sweep", [*fixed, *overrides], SweepConfig)


def earlier(root, name="old", objective=OBJECTIVE, trials=None, version=3, saved=None):
    """An earlier sweep's results as its recorder writes them: trials, per-epoch metrics, sweep.yaml."""
    base = {"loss.gamma": 0.05, "loss.beta": 0.1, "loss.probe_size": 256, "tokens.width": "32", "optim.lr": 1e-3}
    trials = trials or [
        ("done", "TERMINATED", 3, {}),
        ("cut", "STOPPED", 1, {"loss.beta": 0.5}),
        ("broke", "ERROR", 1, {}),
        ("wide", "TERMINATED", 3, {"loss.beta": 0.01}),  # below this space's beta range
        ("rows", "TERMINATED", 3, {"tokens.width": "row"}),
    ]
    directory = root / name
    directory.mkdir(parents=True)
    (directory / table.SWEEP_FILE).write_text(
        yaml.safe_dump({"version": version, "name": name, "objective": objective, **(saved or {})})
    )
    table.write(
        directory / table.TRIALS,
        [{"trial_id": t, "status": s, "epochs": n, **base, **values} for t, s, n, values in trials],
    )
    table.write(
        directory / table.EPOCHS,
        [
            {"trial_id": t, "epoch": e, "rec_agreement": 0.1 * e, "probe_r2": 0.2 * e, "rec_acc_ratio": 1.0}
            for t, _, n, _ in trials
            for e in range(1, n + 1)
        ],
    )
    return directory


def by_state(found, state):
    return [t for t in found.trials if t.state == state]


def test_a_trial_that_reached_max_t_is_complete_with_its_objective_there(tmp_path):
    earlier(tmp_path)
    found = warmstart.seeds(sweep("search.warm_start=old"), tmp_path)
    complete = by_state(found, TrialState.COMPLETE)
    assert [t.value for t in complete] == pytest.approx([0.45, 0.45])  # 0.5 * 0.3 + 0.5 * 0.6 at epoch 3
    assert {t.params["tokens.width"] for t in complete} == {32, "row"}  # text column read as the choice


def test_a_stopped_trial_is_pruned_with_its_curve(tmp_path):
    earlier(tmp_path)
    (pruned,) = by_state(warmstart.seeds(sweep("search.warm_start=old"), tmp_path), TrialState.PRUNED)
    assert pruned.params["loss.beta"] == 0.5 and pruned.intermediate_values == {1: pytest.approx(0.15)}


def test_trials_outside_the_space_and_failed_ones_are_left_out_and_counted(tmp_path):
    earlier(tmp_path)
    found = warmstart.seeds(sweep("search.warm_start=old"), tmp_path)
    assert (len(found.trials), found.outside, found.unfinished) == (3, 1, 1)
    assert "3 trials (2 complete, 1 pruned)" in found.summary() and "1 with values outside" in found.summary()


def test_a_longer_earlier_trial_is_valued_at_this_sweeps_max_t_and_a_shorter_one_is_pruned(tmp_path):
    earlier(tmp_path)
    short = warmstart.seeds(sweep("search.warm_start=old", "scheduler.max_t=2"), tmp_path)
    assert [t.value for t in by_state(short, TrialState.COMPLETE)] == pytest.approx([0.3, 0.3])
    long = warmstart.seeds(sweep("search.warm_start=old", "scheduler.max_t=4"), tmp_path)
    assert by_state(long, TrialState.COMPLETE) == [] and len(by_state(long, TrialState.PRUNED)) == 3


def test_a_fixed_value_of_the_new_space_leaves_out_trials_that_ran_another(tmp_path):
    earlier(tmp_path)
    found = warmstart.seeds(
        sweep("search.warm_start=old", "~space.tokens.width", "+space.tokens.width={value:row}"), tmp_path
    )
    assert len(found.trials) == 1 and found.outside == 3


def test_globs_match_several_sweeps_but_never_the_new_one(tmp_path):
    earlier(tmp_path, "run-a")
    earlier(tmp_path, "run-b")
    earlier(tmp_path, "new")
    found = warmstart.seeds(sweep("search.warm_start=run-*"), tmp_path)
    assert found.sweeps == ["run-a", "run-b"] and len(found.trials) == 6


def test_another_objective_is_refused_naming_the_sweep(tmp_path):
    earlier(tmp_path, objective="0.5*rec_acc_ratio + 0.5*probe_r2")
    with pytest.raises(WslError, match="sweep 'old' was judged by other objectives"):
        warmstart.seeds(sweep("search.warm_start=old"), tmp_path)


def test_a_sweep_judged_on_the_test_models_cannot_seed_a_warm_start(tmp_path):
    """Version 2 and before computed the objective on the test models: told to TPE, they would steer it."""
    earlier(tmp_path, version=2)
    with pytest.raises(WslError, match="sweep 'old' was written before version 3: its objective is on the zoo's test"):
        warmstart.seeds(sweep("search.warm_start=old"), tmp_path)


def test_the_first_line_names_another_zoo_and_base_config_the_seeded_trials_ran_on(tmp_path):
    """Kept (a warm start across zoos measured a gain), but said; searched keys (optim.lr) are no difference."""
    train = {"optim": {"lr": 3e-3}, "model": {"d_model": 96}}
    earlier(tmp_path, saved={"zoo": "zoos/shapes-cnn", "train": train})
    summary = warmstart.seeds(sweep("search.warm_start=old"), tmp_path).summary()
    assert summary.endswith("; old ran on zoo zoos/shapes-cnn, base config model.d_model=96")


def test_the_first_line_says_when_the_seeded_trials_ran_as_this_sweep_runs(tmp_path):
    earlier(tmp_path, saved={"zoo": sweep().zoo})
    summary = warmstart.seeds(sweep("search.warm_start=old"), tmp_path).summary()
    assert summary.endswith("all on this sweep's zoo and base training config")


def test_a_pattern_that_matches_nothing_is_refused(tmp_path):
    earlier(tmp_path)
    with pytest.raises(WslError, match="'olde' matches no earlier sweep .* sweeps there: old"):
        warmstart.seeds(sweep("search.warm_start=[old,olde]"), tmp_path)


def test_random_search_cannot_be_warm_started():
    with pytest.raises(WslError, match="needs search.algorithm=optuna"):
        sweep("search.warm_start=old", "search.algorithm=random")


def test_the_sweeps_searcher_proposes_from_the_seeded_study(tmp_path):
    earlier(tmp_path)
    cfg = sweep("search.warm_start=old", "search.points_to_evaluate=[]")
    journal = tmp_path / "new.journal"
    warmstart.seed_study(search.study_storage(journal), cfg.name, warmstart.seeds(cfg, tmp_path).trials)
    alg = search.searcher(cfg, journal)
    alg.set_search_properties(None, None, search.tune_space(cfg))
    alg.suggest("t0")
    study = optuna.load_study(study_name="new", storage=search.study_storage(journal))
    assert [t.state for t in study.trials][:3] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert len(study.trials) == 4 and study.trials[-1].state == TrialState.RUNNING
