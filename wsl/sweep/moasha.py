"""A multi-objective ASHA: Ray's asynchronous successive halving, each rung ranked by non-dominated sorting.

Ray's ``ASHAScheduler`` ranks a rung by one number. With several objectives
(all maximised: wsl's objectives are scores) a rung's results are vectors,
and no single order is right; this scheduler keeps everything of Ray's
(milestones, recording, stopping at ``max_t``, NaN handling) and replaces
only that ranking, by the order ``priority_order`` gives:

1. **Non-dominated rank** (``wsl.pareto.ranks``, from ``moocore``): the results no other
   beats on every objective first, then those only these beat, and so on.
2. **Within a rank, an epsilon-net** (MOASHA's tie-break: Salinas et al.,
   NAS workshop at ICLR 2021; Syne Tune's ``NonDominatedPriority``): start
   from the result best on the first metric, then repeatedly take the one
   farthest from all taken so far. ASHA keeps a *prefix* of this order, and
   a farthest-point prefix spreads over the front by construction (each
   prefix covers the front within twice the best possible radius).
   NSGA-II's crowding distance scores each point by its two neighbours only:
   two near-equal points in an empty stretch of the front both score high,
   and a prefix keeps both while dropping a region; its boundary points all
   tie at infinity. The first metric picks between two results that only one
   can follow (list the objective that matters most first).
3. **Distances in units of each objective's range on the rung** (the results
   ranked, the newcomer included): objectives differ in scale (agreement in
   [0, 1], R² down to large negative values), and raw distances would measure
   spread along the widest objective only. Scaled, a decision does not change
   when an objective is shifted or stretched (as dominance does not).

**The cutoff.** Ray continues a new value when it is at least the rung's
``1 - 1/rf`` quantile of the ``m`` values recorded before it, interpolating
between two recorded values; the quantile sits ``(m - 1) / rf`` places from
the top. An order has no values to interpolate between, so here the new
result continues when at most ``(m - 1) / rf`` recorded results are ahead of
it: with ``n = m + 1`` results including the new one, positions ``0 ..
floor((n - 2) / rf)`` continue (rf = 3: the first of 2, 3 or 4; the first two
of 5 to 7; ...). On one objective this is Ray's rule with numpy's ``higher``
quantile: the same decision as Ray's wherever Ray's cutoff falls on a recorded
value (up to rounding in Ray's quantile position); in the gap where Ray interpolates between two recorded values this
stops, where Ray continues the gap's upper part. A result equal to a recorded
one takes the better of their places (Ray continues a value equal to its
cutoff). The first result at a rung continues.

**Brackets.** A trial's bracket is drawn with Ray's odds (softmax over the
brackets' numbers of rungs), but from a hash of its trial id rather than
numpy's global generator: the same trial always lands in the same bracket,
so a sweep is reproducible and ``restore`` can put a resumed trial's results
back into the bracket they were recorded in.
"""

from __future__ import annotations

import hashlib

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from wsl import pareto


def priority_order(points: np.ndarray) -> np.ndarray:
    """The order ``[n]`` (indices into ``points``, best first) of a rung's results ``points [n, k]`` (finite,
    maximised): non-dominated rank first, then, within a rank, the epsilon-net of the points scaled to the
    rung's range per objective. Ties between equal distances go to the lower index (the earlier arrival)."""
    points = np.asarray(points, dtype=float)
    if not len(points):
        return np.zeros(0, dtype=int)
    span = np.ptp(points, axis=0)
    scaled = (points - points.min(axis=0)) / np.where(span > 0, span, 1.0)
    ranks = pareto.ranks(points)
    fronts = (np.flatnonzero(ranks == rank) for rank in np.unique(ranks))
    return np.concatenate([front[_epsilon_net(scaled[front])] for front in fronts])


def _epsilon_net(points: np.ndarray) -> np.ndarray:
    """The farthest-point order ``[f]`` of ``points [f, k]``: the point best on the first objective, then each
    time the one whose distance to the nearest point already taken is largest."""
    order = [int(np.argmax(points[:, 0]))]
    nearest = np.linalg.norm(points - points[order[0]], axis=1)
    nearest[order[0]] = -np.inf
    while len(order) < len(points):
        farthest = int(np.argmax(nearest))
        order.append(farthest)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[farthest], axis=1))
        nearest[farthest] = -np.inf
    return np.array(order)


def rung_decision(recorded: np.ndarray, new: np.ndarray, reduction_factor: float) -> bool:
    """Whether a result ``new [k]`` arriving at a rung continues, given the results ``recorded [m, k]`` there
    before it: at most ``(m - 1) / reduction_factor`` of them ahead of it in ``priority_order`` (see the module
    docstring). Rows with a value that is not finite are left out (as Ray's ``nanpercentile``); a new result
    with one continues (as Ray's ``nan < cutoff`` is false), and so does the first finite one."""
    new = np.asarray(new, dtype=float)
    recorded = np.asarray(recorded, dtype=float).reshape(-1, len(new))
    rivals = recorded[np.isfinite(recorded).all(axis=1)]
    if not np.isfinite(new).all() or not len(rivals):
        return True
    points = np.vstack([rivals, new])
    order = priority_order(points)
    twins = np.flatnonzero((points == new).all(axis=1))  # the new result and any recorded one equal to it
    ahead = int(np.flatnonzero(np.isin(order, twins))[0])
    return ahead <= (len(rivals) - 1) / reduction_factor


class _Bracket:
    """One bracket's rungs, highest milestone first (Ray's layout and ``MAX_RUNGS`` formula): each maps a trial
    id to ``(time, values [k])``, the result that was recorded there and the time it was reported at."""

    def __init__(self, min_t: float, max_t: float, reduction_factor: float, s: int):
        self.reduction_factor = reduction_factor
        count = int(np.log(max_t / min_t) / np.log(reduction_factor) - s + 1)
        self.rungs = [(min_t * reduction_factor ** (k + s), {}) for k in reversed(range(count))]

    def on_result(self, trial_id: str, t: float, values: np.ndarray) -> str:
        """Ray's ``_Bracket.on_result`` with the multi-objective cutoff: the result is judged and recorded at the
        highest milestone it reached that the trial has no entry at yet. A re-report (the trial resumed from an
        earlier checkpoint and reports time ``t`` again) replaces the entry it made at ``t`` and is not judged
        again, as Ray does not judge a trial twice at a rung."""
        rung, again = self._rung(trial_id, t)
        if rung is None:
            return TrialScheduler.CONTINUE
        go_on = again or rung_decision([v for _, v in rung.values()], values, self.reduction_factor)
        rung[trial_id] = (t, values)
        return TrialScheduler.CONTINUE if go_on else TrialScheduler.STOP

    def record(self, trial_id: str, t: float, values: np.ndarray) -> None:
        """Record a result where ``on_result`` would, without judging it."""
        rung, _ = self._rung(trial_id, t)
        if rung is not None:
            rung[trial_id] = (t, values)

    def _rung(self, trial_id: str, t: float) -> tuple[dict | None, bool]:
        """The rung a result at time ``t`` goes to (None: none), and whether it re-reports an entry there."""
        for milestone, rung in self.rungs:
            entry = rung.get(trial_id)
            if entry is not None and entry[0] == t:
                return rung, True
            if entry is None and t >= milestone:
                return rung, False
        return None, False


class MultiObjectiveASHA(FIFOScheduler):
    """ASHA over several maximised ``metrics``: Ray's ``ASHAScheduler`` (same arguments, milestones
    ``grace_period * reduction_factor**k`` below ``max_t``, a trial stopped at ``max_t``) whose rungs rank
    results by ``priority_order`` and keep those ``rung_decision`` lets through (see the module docstring).

    A result lacking ``time_attr`` or a metric is passed over (continue, nothing recorded), as in Ray. Nothing is
    kept of a trial but its rung entries (its bracket follows from its id): adding or removing one changes nothing.
    ``restore`` rebuilds the rungs of a resumed sweep: Tune does not save a scheduler's state (it never calls
    ``TrialScheduler.restore``, whose name this reuses with another argument).
    """

    def __init__(
        self,
        metrics: list[str],
        max_t: int,
        grace_period: int = 1,
        reduction_factor: float = 3,
        brackets: int = 1,
        time_attr: str = "training_iteration",
    ):
        if not metrics:
            raise ValueError("MultiObjectiveASHA needs at least one metric")
        if not 0 < grace_period <= max_t:
            raise ValueError(f"grace_period must be in (0, max_t = {max_t}], got {grace_period}")
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be above 1, got {reduction_factor}")
        if brackets < 1:
            raise ValueError(f"brackets must be at least 1, got {brackets}")
        super().__init__()
        self.metrics = list(metrics)
        self._metric = None  # Tune checks results for a scheduler's one metric (None: none); the searcher's are ours
        self._max_t = max_t
        self._time_attr = time_attr
        self._brackets = [_Bracket(grace_period, max_t, reduction_factor, s) for s in range(brackets)]
        sizes = np.array([len(b.rungs) for b in self._brackets])
        odds = np.exp(sizes - sizes.max())
        self._cumulative_odds = np.cumsum(odds / odds.sum())
        self._num_stopped = 0

    def set_search_properties(self, metric, mode, **spec) -> bool:
        """Refuses a metric or mode from ``tune.TuneConfig`` (False: Tune then says so), as Ray's ASHA does once
        it has its own: this scheduler's metrics, all maximised, are set when it is made."""
        return not metric and not mode

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        values = self._values(result)
        if values is None:
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t:
            action = TrialScheduler.STOP
        else:
            action = self._bracket(trial.trial_id).on_result(trial.trial_id, result[self._time_attr], values)
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        """Record a trial's last result (one at ``max_t`` reaches the top rung only this way), as Ray does."""
        values = self._values(result or {})
        if values is not None:
            self._bracket(trial.trial_id).record(trial.trial_id, result[self._time_attr], values)

    def restore(self, curves: dict[str, dict[int, dict[str, float]]]) -> None:
        """Rung state of a resumed sweep rebuilt from recorded results: trial_id -> epoch -> {metric: value}
        (the sweep's epochs table), replacing any state held. Each trial's results go, in epoch order, where
        ``on_trial_result`` and ``on_trial_complete`` would have recorded them; a later re-report of a trial at
        an epoch it has an entry for replaces that entry."""
        for bracket in self._brackets:
            for _, rung in bracket.rungs:
                rung.clear()
        for trial_id, curve in curves.items():
            bracket = self._bracket(trial_id)
            for epoch in sorted(curve):
                values = self._values({self._time_attr: epoch, **curve[epoch]})
                if values is not None:
                    bracket.record(trial_id, epoch, values)

    def debug_string(self) -> str:
        rungs = " | ".join(
            f"bracket {i}: " + ", ".join(f"{milestone:g}: {len(rung)}" for milestone, rung in bracket.rungs)
            for i, bracket in enumerate(self._brackets)
        )
        return f"Using MultiObjectiveASHA on {self.metrics}: num_stopped={self._num_stopped}; results at rungs: {rungs}"

    def _values(self, result: dict) -> np.ndarray | None:
        """The result's metrics ``[k]`` in ``self.metrics`` order (None -> NaN); None if it lacks one or the time."""
        if self._time_attr not in result or any(m not in result for m in self.metrics):
            return None
        return np.array([result[m] for m in self.metrics], dtype=float)

    def _bracket(self, trial_id: str) -> _Bracket:
        """The trial's bracket: Ray's softmax odds, drawn from a hash of the id (the same on every run and resume)."""
        digest = hashlib.sha256(str(trial_id).encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        index = int(np.searchsorted(self._cumulative_odds, draw, side="right"))
        return self._brackets[min(index, len(self._brackets) - 1)]
