"""The multi-objective ASHA: Ray's ASHA whose rungs rank results by non-dominated sorting and an epsilon-net.

Checked by hand, against Ray's ASHA on one objective, against Syne Tune's
MOASHA (whose shipped decisions read an order as per-result priorities: see
the tests named ``syne_tune``), driven as Tune drives a scheduler, and in a
real Tune run.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import ray
from ray import tune
from ray._private.authentication_test_utils import reset_auth_token_state
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket as RayBracket
from syne_tune.optimizer.schedulers.asha import Bracket as SyneBracket
from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA
from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import MOPriority
from syne_tune.optimizer.schedulers.multiobjective.non_dominated_priority import (
    compute_epsilon_net,
    nondominated_sort,
    pareto_efficient,
)

from wsl.pareto import hypervolume
from wsl.sweep.moasha import MultiObjectiveASHA, priority_order, rung_decision

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
METRICS = ["agreement", "r2"]


def trial(trial_id: str) -> SimpleNamespace:
    """What a scheduler reads of a Tune trial (Ray's and Syne Tune's alike): its id."""
    return SimpleNamespace(trial_id=trial_id)


def result(epoch: int, values, metrics=METRICS) -> dict:
    return {"training_iteration": epoch, **dict(zip(metrics, map(float, values)))}


def feed(scheduler, arrivals, metrics=METRICS) -> list[str]:
    """Each arrival ``(trial_id, epoch, values [k])`` to ``on_trial_result``, and a stopped trial's result to
    ``on_trial_complete`` too, as Tune calls them; the decisions."""
    decisions = []
    for trial_id, epoch, values in arrivals:
        decision = scheduler.on_trial_result(None, trial(trial_id), result(epoch, values, metrics))
        if decision == STOP:
            scheduler.on_trial_complete(None, trial(trial_id), result(epoch, values, metrics))
        decisions.append(decision)
    return decisions


def arrivals(seed: int, trials: int = 40, max_t: int = 9) -> list[tuple[str, int, np.ndarray]]:
    """Every epoch of ``trials`` trials, interleaved as asynchronous workers report them: each trial starts at a
    random time and takes random seconds an epoch. Values trade the two objectives off (points around a quarter
    circle, rising with epochs, noisy); the second is on an R²-like scale (x5, shifted down)."""
    rng = np.random.default_rng(seed)
    events = []
    for i in range(trials):
        angle, level, clock = rng.uniform(0, np.pi / 2), rng.uniform(0.3, 1.0), rng.uniform(0, trials)
        for epoch in range(1, max_t + 1):
            clock += rng.exponential(1.0)
            agreement, r2 = level * (1 - 0.5**epoch) * np.array([np.cos(angle), np.sin(angle)]) + rng.normal(0, 0.02, 2)
            events.append((clock, f"t{i}", epoch, np.array([agreement, 5 * r2 - 2])))
    events.sort(key=lambda event: event[0])
    return [(trial_id, epoch, values) for _, trial_id, epoch, values in events]


def scaled(points: np.ndarray) -> np.ndarray:
    """Points in units of each objective's range (the spread's scale)."""
    span = np.ptp(points, axis=0)
    return (points - points.min(axis=0)) / np.where(span > 0, span, 1.0)


def syne_order(minimised: np.ndarray) -> np.ndarray:
    """Syne Tune's ``nondominated_sort`` as its docstrings describe it: fronts by ``pareto_efficient``, each in
    the order of ``compute_epsilon_net`` (which returns each item's rank in that order: argsort gives the order)."""
    remaining, order = np.arange(len(minimised)), []
    while remaining.size:
        efficient = pareto_efficient(minimised[remaining])
        front = remaining[efficient]
        order += front[np.argsort(compute_epsilon_net(minimised[front], dim=0))].tolist()
        remaining = remaining[~efficient]
    return np.array(order)


def test_stops_the_results_a_hand_computed_example_says():
    """Rungs at epochs 1 and 3 (grace 1, reduction factor 3, max_t 9). With m results at a rung, a new one
    continues when at most (m - 1) / 3 are ahead of it: none for m = 1, 2, 3; one for m = 4, 5, 6.
    Order: non-dominated rank, then within a front the point best on agreement, then the farthest from those
    taken, distances in units of each objective's range on the rung (agreement, R²) [both maximised].

    rung 1: t1 (.70, .10) first: continue.
            t2 (.50, -1.5): t1 dominates it: stop.
            t3 (.40, .40): front {t1, t3}, t1 best on agreement goes first; one ahead, m = 2: stop.
            t4 (.90, .20): dominates t1; front {t4, t3}, t4 first: continue.
            t5 (.10, .50): front {t4, t3, t5}; ranges .8 and 2.0 give t4 (1, .85), t3 (.375, .95), t5 (0, 1);
              from t4, t5 is 1.01 away and t3 .63: t4, t5, t3; one ahead, m = 4: continue.
            t6 (.85, .30): on the front, at (.9375, .90) scaled: .08 from t4; order t4, t5, then t3
              (.38 from t5) before t6; three ahead, m = 5: stop. It crowds t4.
            t7 (.95, .45): dominates all but t5; front {t7, t5}, t7 first: continue.
    rung 3: t1 (.75, .20) first: continue. t4 (.92, .25) dominates it: continue.
            t5 (.15, .60): front {t4, t5}, t4 first; one ahead, m = 2: stop.
    t1's epoch 2 reaches no new rung: continue.
    """
    sequence = [
        ("t1", 1, (0.70, 0.10), CONTINUE),
        ("t2", 1, (0.50, -1.50), STOP),
        ("t1", 2, (0.72, 0.15), CONTINUE),
        ("t3", 1, (0.40, 0.40), STOP),
        ("t1", 3, (0.75, 0.20), CONTINUE),
        ("t4", 1, (0.90, 0.20), CONTINUE),
        ("t5", 1, (0.10, 0.50), CONTINUE),
        ("t6", 1, (0.85, 0.30), STOP),
        ("t4", 3, (0.92, 0.25), CONTINUE),
        ("t5", 3, (0.15, 0.60), STOP),
        ("t7", 1, (0.95, 0.45), CONTINUE),
    ]
    scheduler = MultiObjectiveASHA(METRICS, max_t=9)
    decisions = feed(scheduler, [(trial_id, epoch, values) for trial_id, epoch, values, _ in sequence])
    assert decisions == [expected for *_, expected in sequence]


def test_with_m_results_at_a_rung_a_new_one_continues_with_at_most_m_minus_1_over_rf_ahead():
    continuing = []
    for m in range(1, 8):
        rivals = np.repeat(np.arange(1.0, m + 1)[:, None], 2, axis=1)  # on a diagonal: one result per front
        ahead = [a for a in range(m + 1) if rung_decision(rivals, np.full(2, m + 0.5 - a), reduction_factor=3)]
        continuing.append(ahead)
    assert continuing == [[0], [0], [0], [0, 1], [0, 1], [0, 1], [0, 1, 2]]


def test_a_result_equal_to_a_recorded_one_takes_its_place():
    """As Ray continues a value equal to its cutoff."""
    assert rung_decision(np.array([[0.5, 0.5]]), np.array([0.5, 0.5]), reduction_factor=3)
    assert not rung_decision(np.array([[0.5, 0.5]]), np.array([0.5, 0.49]), reduction_factor=3)


def test_spread_is_measured_in_each_objectives_range_on_the_rung():
    """A front from the best R² (S) to the best agreement (E); M1 is halfway in R² (range 10) but near E in
    agreement (range 1), M2 near S in R² but halfway in agreement. Scaled, M2 is farther from S and E than M1
    (.50 against .40); in raw units M1 is (4.0 against .51), and the R² range alone would decide."""
    points = np.array([[0.0, 0.0], [-10.0, 1.0], [-6.0, 0.98], [-0.1, 0.5]])  # S, E, M1, M2 as (R², agreement)
    assert priority_order(points).tolist() == [0, 1, 3, 2]
    assert np.argsort(compute_epsilon_net(-points, dim=0)).tolist() == [0, 1, 2, 3]  # Syne Tune's, raw units


def test_shifting_or_stretching_an_objective_changes_no_decision():
    sequence = arrivals(seed=3)
    rescaled = [(trial_id, epoch, values * [1.0, 100.0] + [0.0, -7.0]) for trial_id, epoch, values in sequence]
    decisions = feed(MultiObjectiveASHA(METRICS, max_t=9), sequence)
    assert feed(MultiObjectiveASHA(METRICS, max_t=9), rescaled) == decisions
    assert decisions.count(STOP) > len(decisions) / 10


def test_a_trial_reporting_nan_continues_and_changes_no_other_decision():
    """Every fourth trial reports NaN for R² (diverged): it continues, and every other trial is decided as in the
    same arrivals without it: a result with a NaN is left out of every ranking (Ray's ``nanpercentile``)."""
    sequence = arrivals(seed=4)
    diverged = {f"t{i}" for i in range(0, 40, 4)}
    with_nan = [(t, e, np.array([v[0], np.nan]) if t in diverged else v) for t, e, v in sequence]
    decisions = feed(MultiObjectiveASHA(METRICS, max_t=9), with_nan)
    assert {d for (t, e, _), d in zip(with_nan, decisions, strict=True) if t in diverged and e < 9} == {CONTINUE}
    others = [(t, e, v) for t, e, v in sequence if t not in diverged]
    assert [d for (t, *_), d in zip(with_nan, decisions, strict=True) if t not in diverged] == feed(
        MultiObjectiveASHA(METRICS, max_t=9), others
    )


def test_a_result_lacking_a_metric_or_the_time_is_passed_over():
    scheduler = MultiObjectiveASHA(METRICS, max_t=9)
    assert scheduler.on_trial_result(None, trial("A"), {"training_iteration": 1, "agreement": 0.9}) == CONTINUE
    assert scheduler.on_trial_result(None, trial("A"), {"agreement": 0.9, "r2": 0.9}) == CONTINUE
    assert feed(scheduler, [("B", 1, (0.1, 0.1)), ("C", 1, (0.05, 0.05))]) == [CONTINUE, STOP]


def test_a_result_at_max_t_stops_the_trial():
    scheduler = MultiObjectiveASHA(METRICS, max_t=9)
    assert feed(scheduler, [("A", 8, (0.9, 0.9)), ("A", 9, (1.0, 1.0))]) == [CONTINUE, STOP]


@pytest.mark.parametrize(
    ("grace_period", "max_t", "reduction_factor", "brackets"),
    [(1, 9, 3, 1), (1, 81, 3, 3), (2, 50, 2, 4), (1, 10, 4, 2)],
)
def test_milestones_are_rays(grace_period, max_t, reduction_factor, brackets):
    scheduler = MultiObjectiveASHA(METRICS, max_t, grace_period, reduction_factor, brackets)
    ours = [[milestone for milestone, _ in bracket.rungs] for bracket in scheduler._brackets]
    rays = [[m for m, _ in RayBracket(grace_period, max_t, reduction_factor, s)._rungs] for s in range(brackets)]
    assert ours == rays


def test_a_trials_bracket_is_drawn_from_its_id_with_rays_softmax_odds():
    """Rungs per bracket 5, 4, 3 (max_t 81, rf 3): Ray's odds e^0 : e^-1 : e^-2."""
    first, second = (MultiObjectiveASHA(METRICS, max_t=81, brackets=3) for _ in range(2))
    ids = [f"{i:05d}_{i % 7}" for i in range(6000)]
    drawn = [first._brackets.index(first._bracket(trial_id)) for trial_id in ids]
    assert drawn == [second._brackets.index(second._bracket(trial_id)) for trial_id in ids]
    odds = np.exp([0.0, -1.0, -2.0])
    assert np.bincount(drawn) / len(ids) == pytest.approx(odds / odds.sum(), abs=0.02)


def test_a_metric_or_mode_from_the_tune_config_is_refused():
    scheduler = MultiObjectiveASHA(METRICS, max_t=9)
    assert not scheduler.set_search_properties("agreement", "max")
    assert scheduler.set_search_properties(None, None)


def test_hypervolume_is_the_area_maximised_points_dominate_above_the_reference():
    """Boxes from (0, 0) to (1, 3), (2, 2) and (3, 1): 3 + 2 + 1; a NaN row and one below the reference add none."""
    points = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [np.nan, 9.0], [-1.0, 5.0]])
    assert hypervolume(points, np.zeros(2)) == pytest.approx(6.0)
    assert hypervolume(points[3:], np.zeros(2)) == 0.0


@pytest.mark.parametrize("reduction_factor", [2, 4])
def test_on_one_objective_it_decides_as_rays_asha_with_the_higher_quantile(monkeypatch, reduction_factor):
    """Ray's ASHA, its cutoff taken at a recorded value (numpy's ``higher`` quantile) instead of interpolated,
    NaN results included. Reduction factors 2 and 4 put Ray's quantile at 1/2 and 3/4: no rounding."""

    def higher(self, recorded):
        return np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100, method="higher") if recorded else None

    monkeypatch.setattr(RayBracket, "cutoff", higher)
    rng = np.random.default_rng(reduction_factor)
    sequence = [(t, e, v[:1] if rng.uniform() > 0.05 else np.full(1, np.nan)) for t, e, v in arrivals(1, max_t=16)]
    rays = ASHAScheduler(metric="x", mode="max", max_t=16, reduction_factor=reduction_factor)
    ours = MultiObjectiveASHA(["x"], max_t=16, reduction_factor=reduction_factor)
    stopped, early = set(), 0
    for trial_id, epoch, values in sequence:
        if trial_id in stopped:
            continue
        if epoch == 1:
            rays.on_trial_add(None, trial(trial_id))
        decision = feed(rays, [(trial_id, epoch, values)], ["x"])
        assert feed(ours, [(trial_id, epoch, values)], ["x"]) == decision
        if decision == [STOP]:
            stopped.add(trial_id)
            early += epoch < 16
    assert early > 10


@pytest.mark.parametrize("k", [2, 3])
def test_order_is_syne_tunes_nondominated_sort_used_as_documented(k):
    """Fronts by Syne Tune's ``pareto_efficient`` (it minimises), each in its epsilon-net order from the point best
    on the first objective, on the points scaled to their range; with ties (values rounded) and single points."""
    rng = np.random.default_rng(k)
    for n in list(range(1, 12)) + [40, 80]:
        points = np.round(rng.normal(size=(n, k)) * [1.0, 5.0, 0.2][:k], 1)
        assert priority_order(points).tolist() == syne_order(-scaled(points)).tolist()


class PositionPriority(MOPriority):
    """Per-result priorities as Syne Tune's ``Bracket`` reads them: each result's position in ``syne_order`` of the
    scaled rung. Keeps the newest result's position (last row: the new one)."""

    def priority_unsafe(self, objectives: np.ndarray) -> np.ndarray:
        order = syne_order(-scaled(-objectives))
        self.position = int(np.flatnonzero(order == len(objectives) - 1)[0])
        return np.argsort(order)


def test_decisions_are_syne_tunes_positions_cut_where_rays_asha_cuts():
    """Syne Tune's ``Bracket`` with its sort used as documented places each new result where we do; with n results
    at the rung it continues positions up to n / rf, where Ray's quantile gives (n - 2) / rf, as we do."""
    priority = PositionPriority()
    for seed in range(3):
        syne, ours = SyneBracket(1, 9, 3, 0, priority), MultiObjectiveASHA(METRICS, max_t=9)
        rung_sizes = {1: 0, 3: 0}
        for trial_id, epoch, values in arrivals(seed):
            if epoch not in rung_sizes:
                continue
            theirs = syne.on_result(trial_id, epoch, {m: -v for m, v in zip(METRICS, values)})
            decision = ours.on_trial_result(None, trial(trial_id), result(epoch, values))
            rung_sizes[epoch] += 1
            n = rung_sizes[epoch]
            if n > 1:
                assert theirs == (CONTINUE if priority.position <= n / 3 else STOP)
                assert decision == (CONTINUE if priority.position <= (n - 2) / 3 else STOP)


def test_syne_tunes_nondominated_sort_reads_epsilon_net_ranks_as_an_order():
    """A front of three (maximised): P0 in the middle, P1 best on the first objective, P2 on the second. The
    epsilon-net takes P1, then the farthest P2, then P0: ``compute_epsilon_net`` returns each point's rank in that
    order, [2, 0, 1], and ``nondominated_sort`` indexes the front with it as if it were the order: P2, P0, P1.
    The crowded middle point goes before an extreme. We (and Syne Tune's own functions, used as documented) say
    P1, P2, P0. (Any order of one or two points is its own inverse: only fronts of three or more are hit.)"""
    points = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    assert compute_epsilon_net(-points, dim=0).tolist() == [2, 0, 1]
    assert nondominated_sort(-points, dim=0) == [2, 0, 1]
    assert priority_order(points).tolist() == syne_order(-points).tolist() == [1, 2, 0]


def syne_decisions(sequence) -> list[str]:
    """Syne Tune's MOASHA (maximising, rungs as ours) on arrivals ``(trial_id, epoch, values [2])``."""
    scheduler = MOASHA({}, METRICS, do_minimize=False, max_t=9, grace_period=1, reduction_factor=3)
    for trial_id in dict.fromkeys(trial_id for trial_id, _, _ in sequence):
        scheduler.on_trial_add(trial(trial_id))
    return [scheduler.on_trial_result(trial(trial_id), result(e, values)) for trial_id, e, values in sequence]


def test_syne_tunes_moasha_stops_a_result_that_dominates_its_whole_rung():
    """``MOASHA._Bracket.on_result`` takes ``NonDominatedPriority``'s output (an order: indices, best first) for
    per-result priorities and reads the last entry as the new result's: it is the index of the result placed
    last. D dominates A, B and C; the order is D, A, B, C = [3, 0, 1, 2]; Syne Tune reads 2 / 4 > 1/3 and stops
    D. D is first: we continue it (and so would Syne Tune's own rule, 0 / 4 <= 1/3)."""
    sequence = [("A", 1, (0.5, 0.5)), ("B", 1, (0.4, 0.4)), ("C", 1, (0.1, 0.1)), ("D", 1, (0.9, 0.9))]
    assert syne_decisions(sequence)[-1] == STOP
    assert feed(MultiObjectiveASHA(METRICS, max_t=9), sequence)[-1] == CONTINUE


def test_syne_tunes_moasha_continues_a_result_two_of_its_three_rivals_dominate():
    """Order B, C, D, A = [1, 2, 3, 0]: Syne Tune reads A's index 0 as D's priority and continues D, third of
    four. We stop it (two ahead, (3 - 1) / 3 < 2), and so would Syne Tune's own rule (2 / 4 > 1/3)."""
    sequence = [("A", 1, (0.1, 0.1)), ("B", 1, (0.9, 0.9)), ("C", 1, (0.8, 0.8)), ("D", 1, (0.5, 0.5))]
    assert syne_decisions(sequence)[-1] == CONTINUE
    assert feed(MultiObjectiveASHA(METRICS, max_t=9), sequence)[-1] == STOP


def test_syne_tunes_moasha_as_shipped_judges_whichever_result_its_sort_places_last():
    """On random arrivals Syne Tune's MOASHA continues a result exactly when the result its (shipped)
    ``nondominated_sort`` places last arrived among the first n / rf + 1 at the rung; we disagree with it on
    more than a third of its decisions."""
    differ = judged = 0
    for seed in range(3):
        sequence = [(t, e, v) for t, e, v in arrivals(seed) if e in (1, 3)]
        theirs, ours = syne_decisions(sequence), feed(MultiObjectiveASHA(METRICS, max_t=9), sequence)
        rungs = {1: [], 3: []}
        for (_, epoch, values), decision in zip(sequence, theirs, strict=True):
            rungs[epoch].append(-values)
            n = len(rungs[epoch])
            if n > 1:
                last_placed = nondominated_sort(np.array(rungs[epoch]), dim=0)[-1]
                assert decision == (CONTINUE if last_placed / n <= 1 / 3 else STOP)
        differ += sum(a != b for a, b in zip(theirs, ours, strict=True))
        judged += len(sequence)
    assert differ / judged > 1 / 3


def tune_like(scheduler, curves: dict[str, np.ndarray], concurrent: int, seed: int) -> list[tuple]:
    """Tune's loop reduced to what a scheduler sees (as ``wsl.sweep.replay`` drives ASHA): up to ``concurrent``
    trials at once, in ``curves`` order (trial_id -> values ``[max_t, k]`` at epochs 1..max_t), epochs taking
    random seconds; each result to ``on_trial_result``, and a trial's last (stopped, or at max_t) to
    ``on_trial_complete``. The arrivals ``(trial_id, epoch, values, decision)`` in order."""
    rng = np.random.default_rng(seed)
    waiting, running, log = list(curves), {}, []
    now = 0.0
    while waiting or running:
        while waiting and len(running) < concurrent:
            trial_id = waiting.pop(0)
            scheduler.on_trial_add(None, trial(trial_id))
            running[trial_id] = (now + rng.exponential(1.0), 1)
        trial_id = min(running, key=lambda t: running[t][0])
        now, epoch = running.pop(trial_id)
        values = curves[trial_id][epoch - 1]
        decision = scheduler.on_trial_result(None, trial(trial_id), result(epoch, values))
        if decision == STOP:
            scheduler.on_trial_complete(None, trial(trial_id), result(epoch, values))
        else:
            running[trial_id] = (now + rng.exponential(1.0), epoch + 1)
        log.append((trial_id, epoch, values, decision))
    return log


def random_curves(seed: int, trials: int, max_t: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"trial_{i:03d}": rng.uniform(0, 1, 2) * np.linspace(0.5, 1, max_t)[:, None] for i in range(trials)}


def test_driven_as_tune_drives_it_it_stops_what_the_decision_function_says():
    """Four trials at a time, rungs at epochs 1 and 3 below max_t 9: at a rung the decision is
    ``rung_decision`` on the results recorded there before; at 9 a trial stops."""
    log = tune_like(MultiObjectiveASHA(METRICS, max_t=9), random_curves(0, 30, 9), concurrent=4, seed=0)
    rungs = {1: [], 3: []}
    for _, epoch, values, decision in log:
        if epoch in rungs:
            expected = CONTINUE if rung_decision(np.array(rungs[epoch]).reshape(-1, 2), values, 3) else STOP
            rungs[epoch].append(values)
        else:
            expected = STOP if epoch == 9 else CONTINUE
        assert decision == expected
    assert 0 < sum(decision == STOP and epoch < 9 for _, epoch, _, decision in log) < 30


def cut_sweep(cut: int = 150) -> tuple[dict, list, list]:
    """A sweep (60 trials, six at a time, max_t 27, three brackets) cut after ``cut`` results: the curves recorded
    until then (trial_id -> epoch -> {metric: value}), the arrivals after, and the decisions the sweep took on them."""
    log = tune_like(MultiObjectiveASHA(METRICS, max_t=27, brackets=3), random_curves(1, 60, 27), 6, seed=1)
    curves: dict[str, dict[int, dict[str, float]]] = {}
    for trial_id, epoch, values, _ in log[:cut]:
        curves.setdefault(trial_id, {})[epoch] = dict(zip(METRICS, values))
    return curves, [(t, e, v) for t, e, v, _ in log[cut:]], [decision for *_, decision in log[cut:]]


def test_a_scheduler_restored_from_the_recorded_curves_takes_the_next_decisions_the_original_took():
    """Each trial's bracket is found again from its id; a scheduler not restored decides otherwise."""
    curves, rest, original = cut_sweep()
    scheduler = MultiObjectiveASHA(METRICS, max_t=27, brackets=3)
    scheduler.restore(curves)
    assert feed(scheduler, rest) == original
    assert feed(MultiObjectiveASHA(METRICS, max_t=27, brackets=3), rest) != original


def test_restore_replaces_the_rung_state_a_scheduler_held():
    curves, rest, original = cut_sweep()
    scheduler = MultiObjectiveASHA(METRICS, max_t=27, brackets=3)
    feed(scheduler, rest)
    scheduler.restore(curves)
    assert feed(scheduler, rest) == original


def restored(rung: dict[str, tuple[float, float]]) -> MultiObjectiveASHA:
    """A scheduler restored from curves that reached epoch 1 only, with these values there."""
    scheduler = MultiObjectiveASHA(METRICS, max_t=9)
    scheduler.restore({trial_id: {1: dict(zip(METRICS, values))} for trial_id, values in rung.items()})
    return scheduler


def test_a_re_report_after_a_restore_is_not_judged_again():
    """X resumes from an earlier checkpoint and reports epoch 1 again, now behind every rival: it was judged at
    this rung already and continues, where a new trial with its values stops."""
    rung = {"Y": (0.9, 0.9), "W": (0.1, 0.1), "X": (0.2, 0.2)}
    assert feed(restored(rung), [("X", 1, (0.05, 0.05))]) == [CONTINUE]
    assert feed(restored(rung), [("V", 1, (0.05, 0.05))]) == [STOP]


def test_a_re_report_after_a_restore_replaces_the_trials_entry():
    """X reports epoch 1 again, now (.9, .9): Z then has X ahead of it among three rivals and stops; against X's
    old (.2, .2) it would lead."""
    rung = {"W1": (0.1, 0.1), "W2": (0.15, 0.15), "X": (0.2, 0.2)}
    assert feed(restored(rung), [("X", 1, (0.9, 0.9)), ("Z", 1, (0.5, 0.5))]) == [CONTINUE, STOP]
    assert feed(restored(rung), [("Z", 1, (0.5, 0.5))]) == [CONTINUE]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local one-CPU Ray, its HOME (where Ray writes its auth token) a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        patch.delenv("RAY_ADDRESS", raising=False)
        patch.setenv("RAY_AIR_NEW_OUTPUT", "0")
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        yield
        ray.shutdown()
        # Ray caches the token it read from this HOME in the process: a later Ray of this test run (another
        # HOME, another token) would present it and fail to start ("InvalidAuthToken")
        reset_auth_token_state()


def test_a_tune_run_stops_the_trials_the_decision_function_says(local_ray, tmp_path):
    """Six trials, one at a time, reporting ``synthetic`` over 9 iterations; rungs at 1 and 3. (Both functions
    are local: Ray pickles them whole, where a test module's function would have to be imported by the worker.)"""

    def synthetic(i: int, epoch: int) -> np.ndarray:
        """Trial i's two metrics at an epoch: a level of its own, plus noise of its own at each epoch."""
        return np.random.default_rng(i).uniform(0, 1, 2) + np.random.default_rng([i, epoch]).normal(0, 0.2, 2)

    def trainable(config):
        for epoch in range(1, 10):
            tune.report(dict(zip(METRICS, map(float, synthetic(config["i"], epoch)))))

    tuner = tune.Tuner(
        trainable,
        param_space={"i": tune.grid_search(list(range(6)))},
        tune_config=tune.TuneConfig(scheduler=MultiObjectiveASHA(METRICS, max_t=9), max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    ran = {r.config["i"]: r.metrics["training_iteration"] for r in tuner.fit()}
    rungs, expected = {1: [], 3: []}, {}
    for i in range(6):
        expected[i] = 9
        for epoch in rungs:
            go_on = rung_decision(np.array(rungs[epoch]).reshape(-1, 2), synthetic(i, epoch), 3)
            rungs[epoch].append(synthetic(i, epoch))
            if not go_on:
                expected[i] = epoch
                break
    assert ran == expected
    assert {1, 3, 9} <= set(expected.values())
