"""A sweep replayed in simulated time: the real searcher and ASHA, learning curves from a record.

A real sweep on 2 CPU cores takes half an hour, and one sweep's outcome is a
single noisy draw: no setting of the search can be told from another that
way. Here the same Ray objects a sweep runs (``OptunaSearch`` or our
pruned-aware one, ``ASHAScheduler``) are driven as Tune drives them, but a
trial's epochs come from a *curve source*, a function from a proposed config
to its objective and seconds at every epoch (a surrogate fitted on recorded
runs, or a recorded sweep itself), and the clock is simulated: thousands of
trials in seconds.

The loop is Tune's, reduced to what the searcher and the scheduler see: up to
``search.max_concurrent`` trials run at once; each epoch's result goes to
ASHA first, and then either to the searcher's ``on_trial_result`` (continue) or,
with that same result, to its ``on_trial_complete`` (stopped, or at ``max_t``).

A source answers with the curves of named metrics; the sweep's objectives are
weighed from them as a sweep weighs them from its epochs (``objective_curves``),
so one source replays a weighted-sum sweep and a multi-objective one (its
searcher told every objective, its ASHA the multi-objective one) alike.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial
from ray.tune.schedulers import TrialScheduler
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold, cross_val_predict

from wsl import table
from wsl.metrics import OBJECTIVE
from wsl.sweep import search, warmstart
from wsl.sweep.config import SweepConfig

Curve = tuple[dict[str, np.ndarray], np.ndarray]
"""A trial's metrics (name -> [max_t]: ``objective``, or those the objectives weigh) and its seconds [max_t],
at epochs 1..max_t."""
CurveSource = Callable[[dict, int], Curve]
"""(proposed config as dotted key -> value, trial number) -> its curve."""


@dataclass(frozen=True)
class Setting:
    """One way to search: who proposes, and whether ASHA stops trials (with which rungs); None: the sweep's."""

    algorithm: str = "optuna"  # optuna (pruned-aware) | optuna-stock | optuna-untold (see _Untold) | random
    asha: bool = True
    grace_period: int | None = None
    reduction_factor: int | None = None
    brackets: int | None = None
    startup: int | None = None  # TPE's random start-up trials
    samples: int | None = None  # trials in the sweep (search.num_samples)
    smoothing: str = "last"  # what ASHA and the searcher see each epoch: last | best (so far) | mean3 (last 3)
    tpe: tuple[tuple[str, object], ...] = ()  # further TPESampler options, e.g. (("multivariate", True),)

    def sweep(self, cfg: SweepConfig, seed: int) -> SweepConfig:
        """``cfg`` searched this way, with ``seed`` for the searcher and for ASHA's bracket draws."""
        s = cfg.scheduler
        scheduler = replace(
            s,
            kind="asha" if self.asha else "fifo",
            grace_period=self.grace_period or s.grace_period,
            reduction_factor=self.reduction_factor or s.reduction_factor,
            brackets=self.brackets or s.brackets,
        )
        if cfg.multi_objective and self.smoothing != "last":
            raise ValueError(f"smoothing={self.smoothing!r}: a multi-objective sweep reports each epoch's figures")
        algorithm = "optuna-stock" if self.algorithm in ("random", "optuna-untold") else self.algorithm
        searched = replace(
            cfg.search,
            algorithm=algorithm,
            seed=seed,
            startup=self.startup or cfg.search.startup,
            num_samples=self.samples or cfg.search.num_samples,
        )
        return replace(cfg, search=searched, scheduler=scheduler)


def simulate(
    cfg: SweepConfig,
    setting: Setting,
    source: CurveSource,
    seed: int,
    proposals: list[dict] | None = None,
    warm: list[FrozenTrial] | None = None,
) -> pd.DataFrame:
    """One sweep of ``cfg`` searched by ``setting``; its epochs in the order they arrived.

    ``proposals``: configs to start in this order instead of asking the
    searcher (a recorded sweep's, to check ASHA's decisions against it).
    ``warm``: earlier trials put in the searcher's study first (``search.warm_start``; ``warm_trials``).
    Columns: ``trial`` (start order), ``epoch``, the source's metrics, each
    objective column (``SweepConfig.objectives``; ``objective`` alone for one),
    ``seen`` (one objective: what ASHA and the searcher were told, ``setting.smoothing``
    of it; several are told as they are), ``time_s`` (simulated seconds since the
    sweep started), ``stopped`` (the trial's last epoch, by ASHA or at max_t), and
    the trial's config as dotted keys.
    """
    cfg = setting.sweep(cfg, seed)
    np.random.seed(seed)  # ASHA draws each trial's bracket with numpy's global generator
    alg = _Proposals(proposals) if proposals is not None else _searcher(cfg, setting, seed, warm or [])
    scheduler = search.scheduler(cfg)
    max_t, clock, rows = cfg.scheduler.max_t, [], []
    total = cfg.search.num_samples if proposals is None else len(proposals)
    running: dict[int, dict] = {}
    started = 0
    now = 0.0
    while started < total or running:
        while len(running) < cfg.search.max_concurrent and started < total:
            trial = SimpleNamespace(trial_id=f"t{started}")
            config = alg.suggest(trial.trial_id)
            metrics, seconds = source(config, started)
            curves = {**metrics, **objective_curves(cfg, metrics)}
            running[started] = {"trial": trial, "config": config, "curves": curves, "seconds": seconds}
            scheduler.on_trial_add(None, trial)
            heapq.heappush(clock, (now + seconds[0], started, 1))
            started += 1
        now, number, epoch = heapq.heappop(clock)
        run = running[number]
        figures = {name: float(curve[epoch - 1]) for name, curve in run["curves"].items()}
        seen = {c: smoothed(run["curves"][c][:epoch], setting.smoothing) for c in cfg.objectives()}
        result = {"training_iteration": epoch, **seen}
        decision = scheduler.on_trial_result(None, run["trial"], result)
        last = decision == TrialScheduler.STOP or not table.stopped_early(epoch, max_t)
        if last:
            scheduler.on_trial_complete(None, run["trial"], result)
            alg.on_trial_complete(run["trial"].trial_id, result)
            del running[number]
        else:
            alg.on_trial_result(run["trial"].trial_id, result)
            heapq.heappush(clock, (now + run["seconds"][epoch], number, epoch + 1))
        rows.append(
            {
                "trial": number,
                "epoch": epoch,
                **figures,
                **({} if cfg.multi_objective else {"seen": seen[OBJECTIVE]}),
                "time_s": now,
                "stopped": last,
                **run["config"],
            }
        )
    return pd.DataFrame(rows)


def objective_curves(cfg: SweepConfig, metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``cfg``'s objective columns -> [max_t], from a source's metric curves: a column the source gives is taken
    as it is (a surrogate of a record's ``objective``); any other is weighed from the metrics it names."""
    weights = cfg.objectives()
    return {c: metrics[c] if c in metrics else sum(w * metrics[m] for m, w in weights[c].items()) for c in weights}


def smoothed(objective: np.ndarray, how: str) -> float:
    """The figure a trial reports after ``len(objective)`` epochs: its ``last`` one, its ``best`` so far, or
    the ``mean3`` of its last three (fewer at first)."""
    if how == "best":
        return float(objective.max())
    if how == "mean3":
        return float(objective[-3:].mean())
    return float(objective[-1])


def _searcher(cfg: SweepConfig, setting: Setting, seed: int, warm: list[FrozenTrial]):
    sampler = optuna.samplers.RandomSampler(seed=seed) if setting.algorithm == "random" else None
    if setting.tpe and sampler is None:
        sampler = search.tpe_sampler(cfg, **dict(setting.tpe))
    storage = optuna.storages.InMemoryStorage()
    # the searcher loads this study, as a real sweep's does
    warmstart.seed_study(storage, cfg.name, warm, objectives=len(cfg.objectives()))
    alg = search.optuna_searcher(cfg, storage=storage, sampler=sampler)
    if setting.algorithm == "optuna-untold":
        alg = _Untold(alg, cfg.scheduler.max_t)
    alg.set_search_properties(None, None, search.tune_space(cfg))
    return alg


class _Untold:
    """A searcher whose study is never told of a trial ASHA stopped: the trial stays RUNNING there. One of the
    ways to tell a multi-objective study of a stopped trial compared on the replay (``benchmarks/front_search.py``);
    a sweep tells it pruned (``search.PrunedAwareOptunaSearch``)."""

    def __init__(self, searcher, max_t: int):
        self.searcher, self.max_t = searcher, max_t

    def set_search_properties(self, metric, mode, config) -> bool:
        return self.searcher.set_search_properties(metric, mode, config)

    def suggest(self, trial_id: str) -> dict:
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict) -> None:
        if not table.stopped_early(result["training_iteration"], self.max_t):
            self.searcher.on_trial_complete(trial_id, result)


def warm_trials(cfg: SweepConfig, epochs: pd.DataFrame) -> list[FrozenTrial]:
    """A simulated sweep's trials (``simulate``'s epochs) as ``search.warm_start`` would tell them to ``cfg``."""
    fixed, searched = cfg.fixed(), list(cfg.searched())  # fixed keys are not in simulate's rows
    trials = []
    told = ["seen"] if not cfg.multi_objective else list(cfg.objectives())  # the objectives it recorded
    for _, rows in epochs.groupby("trial", sort=True):
        curve = {e: tuple(v) for e, v in zip(rows["epoch"], rows[told].to_numpy(), strict=True)}
        values = {**fixed, **rows.iloc[0][searched].to_dict()}
        trial = warmstart.as_trial(cfg, values, curve)
        trials += [trial] if trial is not None else []
    return trials


class _Proposals:
    """A searcher that proposes given configs in order and learns nothing."""

    def __init__(self, configs: list[dict]):
        self.configs = iter(configs)

    def suggest(self, trial_id: str) -> dict:
        return next(self.configs)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: dict) -> None:
        pass


def recorded(
    trials: pd.DataFrame, epochs: pd.DataFrame, keys: list[str], max_t: int, columns: list[str] = (OBJECTIVE,)
) -> tuple[list[dict], CurveSource]:
    """A sweep's finished trials (ran to max_t or stopped by ASHA), in the order they started: their configs
    and their curves. A trial that failed or was interrupted is left out: its curve ends where it broke off,
    not where a scheduler ended it, and padding it would invent epochs it never ran.

    The source answers trial ``n`` with its recorded ``columns`` (the sweep's
    objective columns) and the seconds between its reports (``reported_at``;
    ``time_s`` in tables without it); an epoch the sweep never ran (ASHA stopped
    the trial there) repeats its last one, so a replay under gentler stopping
    runs on, and shows as a different decision.
    """
    ran = trials[trials["trial_id"].isin(epochs["trial_id"]) & trials["status"].isin(table.FINISHED)]
    configs = [{k: row[k] for k in keys} for _, row in ran.iterrows()]
    curves = [epochs[epochs["trial_id"] == t].sort_values("epoch") for t in ran["trial_id"]]

    def curve(config: dict, number: int) -> Curve:
        c = curves[number]
        seconds = c["time_s"].to_numpy()
        if "reported_at" in c:  # arrival order is what ASHA saw: seconds between reports, checkpointing included
            reported = c["reported_at"].to_numpy()
            seconds = np.diff(reported, prepend=reported[0] - seconds[0])
        return {m: _padded(c[m].to_numpy(), max_t) for m in columns}, _padded(seconds, max_t)

    return configs, curve


def _forest_mean(forest: RandomForestRegressor, point: np.ndarray) -> np.ndarray:
    """``forest.predict`` of one point [features] -> [outputs], without joblib's per-tree overhead (50x faster)."""
    x = point.astype(np.float32)[None]
    return np.mean([tree.tree_.predict(x)[0, :, 0] for tree in forest.estimators_], axis=0)


def _padded(values: np.ndarray, length: int) -> np.ndarray:
    return np.concatenate([values, np.full(max(0, length - len(values)), values[-1])])


class Surrogate:
    """Recorded runs -> a proposed config's learning curves and epoch seconds, plus the record's seed noise.

    ``record``: one row per recorded run and epoch (``benchmarks/record_curves.py``:
    ``config_id``, ``seed``, ``epoch``, the ``metrics`` (default ``objective``), ``time_s``, ``config.<key>``,
    and ``shared``: the run's seconds are inflated by other jobs on its cores; left out of the seconds' fit).
    A config is a point of the unit cube of the space: a range's position
    between its bounds (in log space for a log range), a choice one-hot. One
    random forest maps it to the mean curves over its seeds [metrics x max_t],
    all metrics at once (scores on one scale, so no metric chooses every
    split), another to its epoch seconds [max_t]: apart, since seconds (tens)
    fitted jointly with scores (below 1) would choose every split. A run drawn
    from it adds (``noise``) the difference of a randomly picked repeated
    config's two seeds over sqrt 2: the noise of one run, with its
    epoch-to-epoch shape and the metrics' correlation.
    """

    def __init__(self, record: pd.DataFrame, params: dict, seed: int = 0, metrics: tuple[str, ...] = (OBJECTIVE,)):
        self.params, self.seed, self.metrics = params, seed, list(metrics)
        runs = record.sort_values(["config_id", "seed", "epoch"])
        curves = runs.pivot_table(index=["config_id", "seed"], columns="epoch", values=self.metrics)[self.metrics]
        self.max_t = curves.shape[1] // len(self.metrics)
        complete = curves.dropna().groupby(level="config_id")
        self.ids = np.array(sorted(complete.groups))
        self.curves = self._shaped(complete.mean().loc[self.ids].to_numpy())  # [configs, metrics, max_t]
        first = runs.groupby("config_id").first()
        self.configs = [{key: table.cell(first.loc[i, f"config.{key}"]) for key in params} for i in self.ids]
        self.points = np.stack([self.features(c) for c in self.configs])  # [configs, features]
        pairs = [self._shaped(c.to_numpy()) for _, c in complete if len(c) >= 2]  # each [2, metrics, max_t]
        self.noise = (  # [pairs, metrics, max_t]
            np.stack([(c[1] - c[0]) / np.sqrt(2) for c in pairs]) if pairs else np.zeros((1, *self.curves.shape[1:]))
        )
        self.curve_model = self.regressor().fit(self.points, self.curves.reshape(len(self.ids), -1))
        timed = runs[~runs["shared"].fillna(False).astype(bool)] if "shared" in runs else runs
        seconds = timed.pivot_table(index="config_id", columns="epoch", values="time_s").reindex(self.ids)
        clean = seconds.notna().all(axis=1).to_numpy()  # [configs]: timed on an idle machine
        self.seconds_model = self.regressor().fit(self.points[clean], seconds.to_numpy()[clean])
        self._memo: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def _shaped(self, flat: np.ndarray) -> np.ndarray:
        """[..., metrics * max_t] (pandas' metric-major columns) -> [..., metrics, max_t]."""
        return flat.reshape(*flat.shape[:-1], len(self.metrics), self.max_t)

    def regressor(self) -> RandomForestRegressor:
        return RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=self.seed)

    def features(self, config: dict) -> np.ndarray:
        out = []
        for key, p in self.params.items():
            kind = p.kind(key)
            if kind == "choice":
                out += [float(config[key] == c) for c in p.choices]
            elif kind == "range":
                low, high, value = (p.low, p.high, config[key])
                if p.log:
                    low, high, value = np.log(low), np.log(high), np.log(value)
                out.append((value - low) / (high - low))
        return np.array(out)

    def mean(self, config: dict) -> Curve:
        """The expected curves and seconds of ``config``, each [max_t] (remembered: a replay asks again)."""
        curves, seconds = self._mean(config)
        return dict(zip(self.metrics, curves, strict=True)), seconds

    def _mean(self, config: dict) -> tuple[np.ndarray, np.ndarray]:
        """[metrics, max_t] and [max_t]."""
        key = tuple(sorted((k, str(v)) for k, v in config.items()))
        if key not in self._memo:
            point = self.features(config)
            curves = self._shaped(_forest_mean(self.curve_model, point))
            self._memo[key] = curves, _forest_mean(self.seconds_model, point)
        return self._memo[key]

    def held_out(self, folds: int = 10) -> np.ndarray:
        """[configs, metrics, max_t]: each recorded config's curves as predicted by a fit without it (k-fold)."""
        split = KFold(folds, shuffle=True, random_state=self.seed)
        flat = cross_val_predict(self.regressor(), self.points, self.curves.reshape(len(self.ids), -1), cv=split)
        return self._shaped(flat)

    def source(self, seed: int, noise: bool = True) -> CurveSource:
        """A curve source for ``simulate``: the mean curves plus one run's noise, drawn with ``seed``."""
        rng = np.random.default_rng(seed)

        def curve(config: dict, number: int) -> Curve:
            curves, seconds = self._mean(config)
            if noise:
                curves = curves + self.noise[rng.integers(len(self.noise))]
            return dict(zip(self.metrics, curves, strict=True)), seconds

        return curve
