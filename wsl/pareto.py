"""Pareto fronts of maximised objectives: non-dominated ranks and hypervolume, from ``moocore``.

A multi-objective sweep answers with a front, not a single best: the trials no
other trial beats on every objective at once. Every reader of one (the
recorder's ``pareto_rank`` column, ``wsl results --pareto``, promotion, the
report, the live view) asks this module, so "dominated" means one thing.
All objectives are maximised (wsl's objectives are scores); points are
``[n, k]`` arrays, one row per trial, one column per objective.
"""

from __future__ import annotations

import moocore
import numpy as np


def ranks(points: np.ndarray) -> np.ndarray:
    """Each row's non-dominated rank ``[n]`` (0: on the front; 1: on the front once those are removed; ...).
    Equal rows share a rank; a row with a NaN has none (NaN)."""
    points = np.asarray(points, dtype=float)
    out = np.full(len(points), np.nan)
    finite = np.isfinite(points).all(axis=1)
    if finite.any():
        out[finite] = moocore.pareto_rank(points[finite], maximise=True)
    return out


def on_front(points: np.ndarray) -> np.ndarray:
    """Whether each row is on the front ``[n]`` (equal rows on it all are; rows with a NaN are not)."""
    return ranks(points) == 0


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """The volume the rows dominate above ``reference`` ``[k]`` (a point every objective beats); rows with a NaN
    or not above the reference on every objective add nothing. 0 for no such row."""
    points = np.asarray(points, dtype=float).reshape(-1, len(reference))
    above = points[np.isfinite(points).all(axis=1) & (points > reference).all(axis=1)]
    if not len(above):
        return 0.0
    return float(moocore.hypervolume(above, ref=np.asarray(reference, dtype=float), maximise=True))
