"""The searcher, driven the way Tune drives it: ASHA's stop arrives as on_trial_complete with the rung's result."""

from types import SimpleNamespace

import optuna
from optuna.distributions import FloatDistribution
from ray.tune.schedulers import TrialScheduler

from wsl import table
from wsl.metrics import OBJECTIVE
from wsl.sweep import search
from wsl.sweep.moasha import MultiObjectiveASHA
from wsl.sweep.search import PrunedAwareOptunaSearch


def searcher(max_t: int = 4) -> PrunedAwareOptunaSearch:
    alg = PrunedAwareOptunaSearch(
        space={"loss.beta": FloatDistribution(0.05, 1.0, log=True)}, metric=OBJECTIVE, mode="max", seed=0, max_t=max_t
    )
    alg.suggest("t0")
    return alg


def result(value: float, epoch: int) -> dict:
    return {OBJECTIVE: value, "training_iteration": epoch}


def test_a_trial_stopped_at_a_rung_is_pruned_with_its_value_there():
    alg = searcher()
    alg.on_trial_result("t0", result(0.1, 1))
    alg.on_trial_complete("t0", result(0.3, 2))  # Tune never passes this result to on_trial_result
    (trial,) = alg._ot_study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values == {1: 0.1, 2: 0.3}


def test_a_trial_that_ran_to_max_t_is_complete_with_its_last_value():
    alg = searcher(max_t=2)
    alg.on_trial_result("t0", result(0.1, 1))
    alg.on_trial_complete("t0", result(0.3, 2))
    (trial,) = alg._ot_study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.3


def test_a_trial_that_raised_is_failed_not_pruned():
    alg = searcher()
    alg.on_trial_result("t0", result(0.1, 1))
    alg.on_trial_complete("t0", None, error=True)
    (trial,) = alg._ot_study.trials
    assert trial.state == optuna.trial.TrialState.FAIL


def test_with_several_objectives_a_stopped_trial_is_pruned_without_values_and_a_full_one_complete():
    alg = PrunedAwareOptunaSearch(
        space={"loss.beta": FloatDistribution(0.05, 1.0, log=True)},
        metric=["rec_agreement", "probe_r2"],
        mode=["max", "max"],
        seed=0,
        max_t=4,
    )
    alg.suggest("stopped")
    alg.suggest("full")
    alg.on_trial_complete("stopped", {"rec_agreement": 0.5, "probe_r2": 0.1, "training_iteration": 2})
    alg.on_trial_complete("full", {"rec_agreement": 0.7, "probe_r2": 0.3, "training_iteration": 4})
    stopped, full = alg._ot_study.trials
    assert (stopped.state, stopped.values) == (optuna.trial.TrialState.PRUNED, None)
    assert (full.state, full.values) == (optuna.trial.TrialState.COMPLETE, [0.7, 0.3])


def test_a_resumed_multi_objective_asha_starts_from_the_rungs_its_epochs_table_holds(tmp_path):
    """Tune restores no scheduler state: without RestoreRungs the trial below would pass rung 1 unopposed."""
    rows = [
        {"trial_id": t, "epoch": 1, "rec_agreement": a, "probe_r2": r}
        for t, a, r in (("t1", 0.9, 0.9), ("t2", 0.8, 0.8), ("t3", 0.7, 0.7))
    ]
    table.write(tmp_path / table.EPOCHS, rows)
    asha = MultiObjectiveASHA(["rec_agreement", "probe_r2"], max_t=9, grace_period=1, reduction_factor=3)
    search.RestoreRungs(asha, tmp_path, ["rec_agreement", "probe_r2"]).setup()
    worse = SimpleNamespace(trial_id="t4")
    asha.on_trial_add(None, worse)
    result = {"training_iteration": 1, "rec_agreement": 0.1, "probe_r2": 0.1}
    assert asha.on_trial_result(None, worse, result) == TrialScheduler.STOP
