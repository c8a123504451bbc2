"""Who proposes trials and who stops them: Optuna (TPE, or NSGA-II) and ASHA, as Ray Tune objects.

The one thing we change in Ray's ``OptunaSearch``: a trial that ASHA stopped
at an early rung is told to the Optuna study as *pruned* (with the
values it reported, up to the rung's), not as *complete* with its truncated value.
Stock Ray reports it complete, so TPE learns that "objective after 2 epochs"
is a final outcome and ranks those configs among the worst, or, when the
metric rises slowly, compares them with fully trained ones on an unequal
footing. Optuna's TPE knows what a pruned trial is: it ranks it by the
last step it reached, then by its value there.

A sweep with several objectives is told to Optuna as a multi-objective study
(its TPE, or NSGA-II) and stopped by ``MultiObjectiveASHA``. A multi-objective
study holds no intermediate values (``Trial.report`` raises in one), so there a
stopped trial is told pruned without values: TPE counts it among the worse
configs, as it counts a pruned trial that reached no later step.
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
from wsl.sweep.moasha import MultiObjectiveASHA


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
        if not isinstance(self.metric, list):
            # Tune passes the result that made ASHA stop the trial to on_trial_complete only, never to
            # on_trial_result: report it, so the study ranks the trial by its value at the rung it reached.
            trial.report(result[self.metric], result["training_iteration"])
        self._ot_study.tell(trial, state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)


class RestoreRungs(tune.Callback):
    """Rebuilds a multi-objective ASHA's rungs from the sweep's epochs table when the sweep (re)starts.

    Tune saves its searcher's state for ``--resume`` but not its scheduler's:
    a resumed sweep's ASHA starts with empty rungs, and the first trial to
    reach each rung would pass it unopposed. The epochs table holds every result
    the rungs saw. ``setup`` runs in the driver before any trial reports, on a
    fresh sweep (no table: nothing to restore) and on every resume; Tune pickles
    this callback with the scheduler, so the two stay one object after a restore.
    """

    def __init__(self, scheduler: MultiObjectiveASHA, directory: Path, columns: list[str]):
        self.scheduler, self.directory, self.columns = scheduler, directory, columns

    def setup(self, **info) -> None:
        epochs = table.read_epochs(self.directory)
        if epochs is None:
            return
        curves: dict[str, dict[int, dict[str, float]]] = {}
        for row in epochs[["trial_id", "epoch", *self.columns]].to_dict("records"):
            curves.setdefault(row["trial_id"], {})[int(row["epoch"])] = {c: row[c] for c in self.columns}
        self.scheduler.restore(curves)


def rung_keepers(scheduler, directory: Path, columns: list[str]) -> list[tune.Callback]:
    """The callbacks that carry ``scheduler``'s state over a resume: ``RestoreRungs`` for a multi-objective
    ASHA; none for Ray's ASHA (Tune's own behaviour: it restarts empty) or FIFO."""
    return [RestoreRungs(scheduler, directory, columns)] if isinstance(scheduler, MultiObjectiveASHA) else []


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


def metric_and_mode(cfg: SweepConfig) -> tuple[str | list[str], str | list[str]]:
    """What Optuna and ASHA maximise: the objective column, or the list of them (a multi-objective sweep)."""
    columns = list(cfg.objectives())
    return (columns, ["max"] * len(columns)) if cfg.multi_objective else (OBJECTIVE, "max")


def searcher(cfg: SweepConfig, journal: Path):
    """The search algorithm named by ``search.algorithm``, limited to ``search.max_concurrent`` trials."""
    s = cfg.search
    if s.algorithm == "random":
        return tune.search.BasicVariantGenerator(
            points_to_evaluate=cfg.points() or None, max_concurrent=s.max_concurrent, random_state=s.seed
        )
    return ConcurrencyLimiter(optuna_searcher(cfg, study_storage(journal)), s.max_concurrent)


def optuna_searcher(cfg: SweepConfig, storage=None, sampler=None):
    """Ray's ``OptunaSearch`` (TPE or NSGA-II, seeded) on the sweep's objectives; the pruned-aware one for
    ``optuna`` and ``nsga2``.

    ``storage``: where the study lives (None: in memory); ``sampler``: another
    Optuna sampler (the search replay draws random configs with ``RandomSampler``).
    """
    s = cfg.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created ..." is noise next to LiveView
    metric, mode = metric_and_mode(cfg)
    if sampler is None:
        sampler = nsga2_sampler(cfg) if s.algorithm == "nsga2" else tpe_sampler(cfg)
    kwargs = dict(
        metric=metric,
        mode=mode,
        points_to_evaluate=cfg.points() or None,
        sampler=sampler,
        study_name=cfg.name,
        storage=storage,
    )
    if s.algorithm in ("optuna", "nsga2"):
        return PrunedAwareOptunaSearch(max_t=cfg.scheduler.max_t, **kwargs)
    return OptunaSearch(**kwargs)


def tpe_sampler(cfg: SweepConfig, **options) -> optuna.samplers.TPESampler:
    """TPE seeded with ``search.seed``, ``search.startup`` random trials first (at least one per concurrent slot:
    the first batch is drawn before any result); ``options``: further ``TPESampler`` arguments."""
    s = cfg.search
    return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=max(s.startup, s.max_concurrent), **options)


def nsga2_sampler(cfg: SweepConfig) -> optuna.samplers.NSGAIISampler:
    """NSGA-II seeded with ``search.seed``; a generation is ``search.startup`` trials (at least 2: parents pair)."""
    s = cfg.search
    return optuna.samplers.NSGAIISampler(seed=s.seed, population_size=max(2, s.startup, s.max_concurrent))


def scheduler(cfg: SweepConfig):
    """ASHA on the objective (the multi-objective one on several), rungs from ``grace_period`` up to ``max_t``
    epochs; or none (FIFO)."""
    s = cfg.scheduler
    if s.kind == "fifo":
        return FIFOScheduler()
    if cfg.multi_objective:
        return MultiObjectiveASHA(
            metrics=list(cfg.objectives()),
            max_t=s.max_t,
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
            brackets=s.brackets,
        )
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=OBJECTIVE,
        mode="max",
        max_t=s.max_t,
        grace_period=s.grace_period,
        brackets=s.brackets,
        reduction_factor=s.reduction_factor,
    )
