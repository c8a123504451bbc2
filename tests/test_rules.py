"""Promotion rules: best epoch, last epoch at max_t, and a race on fresh seeds, on hand-computed cases."""

import pandas as pd
import pytest

from wsl.sweep.rules import fresh_seeds, race, rank, seeds_needed

MAX_T = 3


def epochs(curves: dict[str, list[float]]) -> pd.DataFrame:
    """One row per trial and epoch (1, 2, ...) from each trial's objectives."""
    rows = [(t, e, v) for t, curve in curves.items() for e, v in enumerate(curve, start=1)]
    return pd.DataFrame(rows, columns=["trial_id", "epoch", "objective"])


# a: a lucky spike at epoch 2; b: steady, best at its end; c: stopped by ASHA at epoch 2, highest last value
SWEEP = epochs({"a": [0.5, 0.9, 0.6], "b": [0.5, 0.7, 0.8], "c": [0.6, 0.85]})


def test_best_takes_each_trials_maximum_over_its_epochs():
    assert rank(SWEEP, "best", MAX_T).to_dict() == {"a": 0.9, "c": 0.85, "b": 0.8}


def test_last_takes_the_last_epoch_of_trials_that_reached_max_t_only():
    assert rank(SWEEP, "last", MAX_T).to_dict() == {"b": 0.8, "a": 0.6}


def test_best_and_last_pick_different_trials():
    assert rank(SWEEP, "best", MAX_T).index[0] == "a" and rank(SWEEP, "last", MAX_T).index[0] == "b"


def test_last_falls_back_to_every_trials_last_epoch_when_none_reached_max_t():
    assert rank(SWEEP, "last", 5).to_dict() == {"c": 0.85, "b": 0.8, "a": 0.6}


def test_race_ranks_its_candidates_like_last():
    assert rank(SWEEP, "race", MAX_T).to_dict() == rank(SWEEP, "last", MAX_T).to_dict()


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="one of best, last, race"):
        rank(SWEEP, "mean", MAX_T)


class Runs:
    """A deterministic ``run_round``: a fixed value per (trial, seed); it records its calls."""

    def __init__(self, values: dict[tuple[str, int], float]):
        self.values, self.calls = values, []

    def __call__(self, trials: list[str], seed: int) -> dict[str, float]:
        self.calls.append((list(trials), seed))
        return {t: self.values[t, seed] for t in trials}


# seed 1: w 0.6, x 0.9, y 0.5, z 0.7 -> w, y out; seed 2: x 0.6, z 0.9 -> means x 0.75, z 0.8: z wins
FOUR = {("w", 1): 0.6, ("x", 1): 0.9, ("y", 1): 0.5, ("z", 1): 0.7, ("x", 2): 0.6, ("z", 2): 0.9}


def test_race_halves_each_round_on_a_new_seed_and_picks_the_expected_winner():
    runs = Runs(FOUR)
    winner, values = race(["w", "x", "y", "z"], runs, [1, 2])
    assert winner == "z"
    assert runs.calls == [(["w", "x", "y", "z"], 1), (["x", "z"], 2)]
    assert values == {"w": [0.6], "x": [0.9, 0.6], "y": [0.5], "z": [0.7, 0.9]}


def test_race_keeps_the_better_half_rounded_up_by_mean_over_its_seeds():
    # three candidates, two seeds a round: means u 0.55, v 0.75, t 0.65 -> v, t go on; then t 0.9 beats v 0.4
    values = {("u", 1): 0.5, ("u", 2): 0.6, ("v", 1): 0.9, ("v", 2): 0.6, ("t", 1): 0.7, ("t", 2): 0.6}
    values |= {("v", 3): 0.4, ("v", 4): 0.4, ("t", 3): 0.9, ("t", 4): 0.9}
    runs = Runs(values)
    winner, fresh = race(["u", "v", "t"], runs, [1, 2, 3, 4], per_round=2)
    assert (winner, fresh[winner]) == ("t", [0.7, 0.6, 0.9, 0.9])
    assert [seed for _, seed in runs.calls] == [1, 2, 3, 4] and runs.calls[2][0] == ["v", "t"]


def test_a_candidates_sweep_figure_does_not_enter_its_race_mean():
    # "a" leads the sweep (0.95 vs 0.8) and runs 0.6 on a fresh seed, "b" 0.65: with their sweep figures in
    # the means, "a" would win (0.775 vs 0.725); on fresh values alone "b" does
    sweep = epochs({"a": [0.5, 0.6, 0.95], "b": [0.5, 0.7, 0.8]})
    candidates = list(rank(sweep, "race", MAX_T).index)
    winner, values = race(candidates, Runs({("a", 4): 0.6, ("b", 4): 0.65}), [4])
    assert candidates == ["a", "b"] and winner == "b" and values == {"a": [0.6], "b": [0.65]}


def test_a_single_candidate_wins_without_runs():
    runs = Runs({})
    assert race(["a"], runs, []) == ("a", {"a": []}) and runs.calls == []


def test_race_refuses_to_run_out_of_seeds():
    with pytest.raises(ValueError, match="needs 2"):
        race(["w", "x", "y", "z"], Runs(FOUR), [1])


def test_seeds_needed_is_per_round_times_the_halving_rounds():
    assert [seeds_needed(k) for k in (1, 2, 3, 4, 5)] == [0, 1, 2, 2, 3] and seeds_needed(3, per_round=2) == 4


def test_fresh_seeds_skips_the_seeds_trials_ran():
    assert fresh_seeds([0, 2, 5], 4) == [1, 3, 4, 6]
    assert fresh_seeds([], 2) == [0, 1]


def test_a_candidate_whose_figure_is_undefined_goes_out_of_the_race_first():
    """NaN (an undefined metric) ranks last, as in ``rank``: it never survives a round on sorting's whim."""
    values = {("a", 1): float("nan"), ("b", 1): 0.2, ("c", 1): 0.1, ("b", 2): 0.3, ("c", 2): 0.9}
    runs = Runs(values)
    winner, _ = race(["a", "b", "c"], runs, [1, 2])
    assert runs.calls[1][0] == ["b", "c"] and winner == "c"
