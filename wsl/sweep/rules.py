"""Promotion rules: which trial of a sweep to promote, and the figure it is promoted with.

A sweep's highest objective is the maximum of many noisy figures, over trials
and, within a trial, over epochs. A maximum of noisy draws favours the lucky
over the good, and overstates what the winner reaches when it runs again: the
winner's curse. Where one run's seed noise is as large as the differences
between the top configs, it both picks worse configs than it could and
reports figures a re-run does not reach. The rules, shared by ``wsl promote``
and ``benchmarks/promotion_rules.py`` (which measures them on simulated sweeps):

- ``best``: the trial whose best epoch's objective is highest (the rule
  ``wsl promote`` began with); its figure is that epoch's: a maximum over
  epochs as well as over trials.
- ``last``: the trial whose objective at its last epoch is highest, among
  trials that reached ``max_t`` (a trial ASHA stopped was judged at a smaller
  budget than the promoted run gets); its figure is that last epoch's: one
  draw a trial, still a maximum over trials.
- ``race``: the top ``k`` by ``last`` race on fresh seeds (``race``):
  successive halving, each round every candidate still in runs a seed no
  trial ran, the better half by the mean of its fresh runs goes on. The
  winner's figure is the mean of its fresh runs only: the sweep's figure that
  made it a candidate never enters (the race's own rounds still chose it, so
  a little optimism remains). It costs extra runs at the trials' budget.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

import numpy as np
import pandas as pd

from wsl import table
from wsl.metrics import OBJECTIVE

RULES = ("best", "last", "race")
DEFAULT = "best"
"""``wsl promote``'s rule. Chosen on ``benchmarks/promotion_rules.py`` (40 replayed sweeps): ``best`` and
``last`` pick configs of the same true quality (paired p = 0.99) at no extra compute; a race of the top
3 picks better by 0.01 (p = 0.07, not significant) for about twice the final runs' compute. The
optimism is taken out of what is *reported* instead: the promoted figures are the final runs', on seeds
no trial ran (benchmarks/RESULTS.md, "Choosing on validation, reporting on test")."""
Trial = TypeVar("Trial", bound=Hashable)  # a trial's id: a sweep's ``trial_id``, or a simulated trial's number


def rank(epochs: pd.DataFrame, rule: str, max_t: int) -> pd.Series:
    """Each trial's score under ``rule``, best first (index ``trial_id``; ties in ``trial_id`` order).

    ``epochs``: one row per trial and epoch, columns ``trial_id``, ``epoch``,
    ``objective`` (the figure the sweep reported). ``best``: the maximum over
    its epochs. ``last`` and ``race`` (whose candidates are ranked like
    ``last``): the objective at its last epoch, only trials that reached
    ``max_t``; if none did, every trial's last epoch (the best judged at the
    longest budget the sweep ran).
    """
    if rule not in RULES:
        raise ValueError(f"promotion rule {rule!r}: one of {', '.join(RULES)}")
    if rule == "best":
        scores = epochs.groupby("trial_id")[OBJECTIVE].max()
    else:
        last = epochs.sort_values("epoch", kind="stable").groupby("trial_id").tail(1).set_index("trial_id")
        full = last[~table.stopped_early(last["epoch"], max_t)]
        scores = (full if len(full) else last)[OBJECTIVE].sort_index()
    return scores.sort_values(ascending=False, kind="stable")


def seeds_needed(k: int, per_round: int = 1) -> int:
    """How many fresh seeds a race of ``k`` candidates uses: ``per_round`` in each of its ceil(log2 k) rounds."""
    return per_round * math.ceil(math.log2(k)) if k > 1 else 0


def race(
    candidates: list[Trial],
    run_round: Callable[[list[Trial], int], dict[Trial, float]],
    seeds: Iterable[int],
    per_round: int = 1,
) -> tuple[Trial, dict[Trial, list[float]]]:
    """Successive halving on fresh seeds: the winner, and every candidate's fresh-seed values.

    Each round, every candidate still in runs ``per_round`` seeds: one call
    ``run_round(alive, seed) -> {trial: value}`` per seed, so a caller can run
    a call's runs in parallel; each seed comes next from ``seeds`` (fresh ones:
    ``fresh_seeds``; ``seeds_needed`` of them). Then the better half by mean
    fresh value (rounded up; ties: the earlier candidate) goes on, until one is
    left. Only fresh values are compared: a candidate's sweep figure is the
    selection's maximum, and would bring the winner's curse back. The winner's
    reported figure is the mean of its values.
    """
    if not candidates:
        raise ValueError("a race needs at least one candidate")
    values: dict[Trial, list[float]] = {trial: [] for trial in candidates}
    seeds = iter(seeds)
    alive = list(candidates)
    while len(alive) > 1:
        for _ in range(per_round):
            seed = next(seeds, None)
            if seed is None:
                raise ValueError(f"the race ran out of seeds: it needs {seeds_needed(len(candidates), per_round)}")
            result = run_round(list(alive), seed)
            for trial in alive:
                values[trial].append(float(result[trial]))
        alive = sorted(alive, key=lambda trial: _mean_or_worst(values[trial]), reverse=True)[
            : math.ceil(len(alive) / 2)
        ]
    return alive[0], values


def _mean_or_worst(values: list[float]) -> float:
    """A candidate's mean fresh figure; NaN (a run whose metric is undefined) ranks last, as in ``rank``."""
    mean = float(np.mean(values))
    return -math.inf if math.isnan(mean) else mean


def fresh_seeds(used: Iterable[int], n: int) -> list[int]:
    """The ``n`` smallest non-negative integers not in ``used``: seeds no trial ran, so a re-run is a new draw."""
    taken = set(used)
    return list(itertools.islice((seed for seed in itertools.count() if seed not in taken), n))
