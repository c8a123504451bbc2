"""Who proposes trials and who stops them: Optuna (TPE) and ASHA, as Ray Tune objects.

The one thing we change in Ray's ``OptunaSearch``: a trial that ASHA stopped
at an early rung is told to the Optuna study as *pruned* (with the
values it reported, up to the rung's), not as *complete* with its truncated value.
Stock Ray reports it complete, so TPE learns that "objective after 2 epochs"
is a final outcome and ranks those configs among the worst, or, when the
metric rises slowly, compares them with fully trained ones on an unequal
footing. Optuna's TPE knows what a pruned trial is: it ranks it by the
last step it reached, then by its value there.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from wsl import table
from wsl.metrics import OBJECTIVE
from wsl.sweep.config import Param, SweepConfig


class PrunedAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tells the study a trial stopped before ``max_t`` was pruned."""

    def __init__(self, *args, max_t: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_t = max_t

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        epochs = (result or {}).get("training_iteration", self.max_t)
        if error or result is None or not table.stopped_early(epochs, self.max_t) or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        trial = self._ot_trials[trial_id]
        # Tune passes the result that made ASHA stop the trial to on_trial_complete only, never to
        # on_trial_result: report it, so the study ranks the trial by its value at the rung it reached.
        trial.report(result[self.metric], result["training_iteration"])
        self._ot_study.tell(trial, state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)


def tune_space(cfg: SweepConfig) -> dict:
    """The sweep space as Ray Tune sampling domains, keyed by dotted config path."""
    return {key: _domain(p) for key, p in cfg.params().items()}


def _domain(p: Param):
    kind = p.kind("")
    if kind == "fixed":
        return p.value
    if kind == "choice":
        return tune.choice(list(p.choices))
    if p.integer:
        return (tune.lograndint if p.log else tune.randint)(int(p.low), int(p.high) + 1)
    return (tune.loguniform if p.log else tune.uniform)(p.low, p.high)


def study_storage(path: Path) -> optuna.storages.JournalStorage:
    """A journal file that optuna-dashboard opens; appends are file-locked, safe for one driver."""
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def searcher(cfg: SweepConfig, journal: Path):
    """The search algorithm named by ``search.algorithm``, limited to ``search.max_concurrent`` trials."""
    s = cfg.search
    if s.algorithm == "random":
        return tune.search.BasicVariantGenerator(
            points_to_evaluate=cfg.points() or None, max_concurrent=s.max_concurrent, random_state=s.seed
        )
    return ConcurrencyLimiter(optuna_searcher(cfg, study_storage(journal)), s.max_concurrent)


def optuna_searcher(cfg: SweepConfig, storage=None, sampler=None):
    """Ray's ``OptunaSearch`` (TPE, seeded) on the sweep's objective; the pruned-aware one for ``optuna``.

    ``storage``: where the study lives (None: in memory); ``sampler``: another
    Optuna sampler (the search replay draws random configs with ``RandomSampler``).
    """
    s = cfg.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created ..." is noise next to LiveView
    kwargs = dict(
        metric=OBJECTIVE,
        mode="max",
        points_to_evaluate=cfg.points() or None,
        sampler=sampler or tpe_sampler(cfg),
        study_name=cfg.name,
        storage=storage,
    )
    if s.algorithm == "optuna":
        return PrunedAwareOptunaSearch(max_t=cfg.scheduler.max_t, **kwargs)
    return OptunaSearch(**kwargs)


def tpe_sampler(cfg: SweepConfig, **options) -> optuna.samplers.TPESampler:
    """TPE seeded with ``search.seed``, ``search.startup`` random trials first (at least one per concurrent slot:
    the first batch is drawn before any result); ``options``: further ``TPESampler`` arguments."""
    s = cfg.search
    return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=max(s.startup, s.max_concurrent), **options)


def scheduler(cfg: SweepConfig):
    """ASHA on the objective, rungs from ``grace_period`` up to ``max_t`` epochs; or none (FIFO)."""
    s = cfg.scheduler
    if s.kind == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=OBJECTIVE,
        mode="max",
        max_t=s.max_t,
        grace_period=s.grace_period,
        brackets=s.brackets,
        reduction_factor=s.reduction_factor,
    )
