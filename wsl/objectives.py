"""A sweep's objective as data: what ``objective: "0.5*rec_agreement + 0.5*probe_r2"`` or a list of them means.

Each objective is a weighted sum of validation scores (``wsl.metrics.SCORES``), all maximised, and has a
column in the results table. Kept apart from the sweep's config so that the query layer (``wsl results``)
reads a sweep's objectives without importing torch or Ray.
"""

from __future__ import annotations

from wsl.errors import WslError
from wsl.metrics import OBJECTIVE, SCORES, TEST_PREFIX


def objectives(objective: str | list[str]) -> dict[str, dict[str, float]]:
    """``objective`` (as ``check_objective`` keeps it) as ``column -> {metric: weight}``."""
    terms = [objective] if isinstance(objective, str) else objective
    return dict(zip(objective_columns(terms), map(objective_weights, terms), strict=True))


def objective_columns(terms: list[str]) -> list[str]:
    """Where each objective is in a table: one objective is ``objective``; of several, a lone metric is its own
    column (``rec_agreement``) and a weighted sum is ``objective_<position>`` (``objective_2``), counted from 1."""
    if len(terms) == 1:
        return [OBJECTIVE]
    weights = [objective_weights(t) for t in terms]
    return [
        next(iter(w)) if len(w) == 1 and next(iter(w.values())) == 1.0 else f"{OBJECTIVE}_{i}"
        for i, w in enumerate(weights, start=1)
    ]


def objective_weights(objective: str) -> dict[str, float]:
    """``"0.5*rec_acc_ratio + 0.5*probe_r2"`` -> ``{"rec_acc_ratio": 0.5, "probe_r2": 0.5}``, checked."""
    out: dict[str, float] = {}
    for term in objective.replace(" ", "").split("+"):
        weight, _, metric = term.rpartition("*")
        if metric.startswith(TEST_PREFIX) and metric.removeprefix(TEST_PREFIX) in SCORES:
            raise WslError(
                f"objective {objective!r}: {metric!r} is a figure on the test models, which a sweep never sees "
                f"(it decides on the validation models); use {metric.removeprefix(TEST_PREFIX)!r}"
            )
        if metric not in SCORES:
            why = "a loss (lower is better) and the objective is maximised" if "loss" in metric else "unknown"
            choices = ", ".join(SCORES)
            raise WslError(f"objective {objective!r}: metric {metric!r} is {why}; choose from {choices}")
        try:
            out[metric] = float(weight or 1.0)
        except ValueError:
            raise WslError(f"objective {objective!r}: weight {weight!r} is not a number") from None
        if out[metric] <= 0:
            raise WslError(f"objective {objective!r}: weights must be > 0")
    return out
