"""The searcher, driven the way Tune drives it: ASHA's stop arrives as on_trial_complete with the rung's result."""

import optuna
from optuna.distributions import FloatDistribution

from wsl.metrics import OBJECTIVE
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
