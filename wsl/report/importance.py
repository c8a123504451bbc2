"""How much each searched parameter moved the objective, by Optuna's fANOVA and mean-decrease-impurity.

The caller's trials are replayed into an in-memory Optuna study, so the
report ranks parameters with the evaluators the Optuna dashboard uses,
without needing the sweep's journal. Both evaluators are seeded: the same
table always gives the same importances.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from wsl.metrics import OBJECTIVE
from wsl.sweep.config import Param


def parameter_importances(
    finished: pd.DataFrame, params: list[str], space: dict[str, Param], objective: str = OBJECTIVE
) -> dict[str, dict[str, float]]:
    """Build an Optuna study from finished rows and evaluate importances (deterministic: seeded evaluators).

    ``space``: the sweep's searched keys (``SweepConfig.searched()``); a param it lacks takes the values seen."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator

    params = sorted(params)  # optuna 5.0's mean-decrease-impurity evaluator mislabels params given in another order
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line per report
    try:
        study = _study(finished, params, space, objective)
        evaluators = {
            "fANOVA": FanovaImportanceEvaluator(seed=0),
            "mean decrease impurity": MeanDecreaseImpurityImportanceEvaluator(seed=0),
        }
        return {
            name: dict(optuna.importance.get_param_importances(study, evaluator=ev, params=params))
            for name, ev in evaluators.items()
        }
    finally:
        optuna.logging.set_verbosity(verbosity)


def _study(finished: pd.DataFrame, params: list[str], space: dict[str, Param], objective: str):
    """One complete Optuna trial per row, with the parameters that row has (a trial may predate a parameter)."""
    import optuna

    distributions = {p: _distribution(finished[p].dropna(), space.get(p, Param())) for p in params}
    study = optuna.create_study(direction="maximize")
    for _, row in finished.iterrows():
        present = {p: _as_choice(_plain(row[p]), distributions[p]) for p in params if pd.notna(row[p])}
        study.add_trial(
            optuna.trial.create_trial(
                params=present,
                distributions={p: distributions[p] for p in present},
                value=float(row[objective]),
            )
        )
    return study


def _distribution(values: pd.Series, spec: Param):
    """The parameter's search distribution: from ``sweep.yaml`` where given, widened to cover every value seen.

    Optuna rejects a trial whose value lies outside its distribution, and a
    table may outlive an edit of the space, hence the widening.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if spec.choices is not None or not pd.api.types.is_numeric_dtype(values) or values.dtype == bool:
        choices = spec.choices or sorted(values.unique().tolist(), key=str)
        return CategoricalDistribution([_plain(c) for c in choices])
    low, high = float(values.min()), float(values.max())
    if spec.low is not None:
        low, high = min(low, float(spec.low)), max(high, float(spec.high))
    log = spec.log and low > 0
    if spec.integer or pd.api.types.is_integer_dtype(values):
        return IntDistribution(int(math.floor(low)), int(math.ceil(high)), log=log)
    return FloatDistribution(low, high, log=log)


def _as_choice(value, distribution):
    """A categorical value as its distribution's choice: the table keeps a column of mixed choices
    (``tokens.width`` 32 or ``row``) as text, the sweep's space as they were written."""
    choices = getattr(distribution, "choices", None)
    return next((c for c in choices if str(c) == str(value)), value) if choices else value


def _plain(value):
    """numpy scalars -> Python scalars (Optuna checks choices by equality and JSON-serialises them)."""
    return value.item() if isinstance(value, np.generic) else value
