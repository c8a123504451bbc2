"""Seed a new sweep's Optuna study with earlier sweeps' trials, read from their results tables.

TPE needs a few finished trials before it models anything (its start-up
trials are random draws); an earlier sweep on the same question already paid
for them. Each earlier trial becomes one Optuna trial of the new study, told
as the sweep itself would have told it:

- a trial that reached the new ``scheduler.max_t`` is *complete*, valued at
  its objective (or objectives) at epoch ``max_t`` (what a trial of this sweep reports last);
- a trial that ended before it (stopped by ASHA, or an earlier sweep's shorter
  ``max_t``) is *pruned*, with its objective at every epoch as intermediate values
  (a multi-objective study holds none: pruned alone);
- failed, interrupted and still-running trials are not told.

The objectives must be the same (a value of another objective would mislead
TPE), and on the same split (sweeps written before version 3 judged on the
test models: they cannot seed a sweep that must never see them); a trial
whose values the new space cannot hold (outside a range, not among the
choices, another fixed value) is left out and counted. The space's
distributions are the ones Ray's ``OptunaSearch`` builds, by its own conversion.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search.optuna import OptunaSearch

from wsl import table
from wsl.config import flatten
from wsl.errors import WslError
from wsl.objectives import objectives
from wsl.sweep import search
from wsl.sweep.config import SweepConfig


@dataclass
class Seeds:
    """The earlier trials a sweep starts from, and why the others were left out."""

    trials: list[FrozenTrial]
    sweeps: list[str]
    outside: int  # values the new space cannot hold
    unfinished: int  # failed, interrupted or running
    origins: list[str]  # where an earlier sweep ran otherwise than this one: its zoo, its base training config

    def summary(self) -> str:
        complete = sum(t.state == TrialState.COMPLETE for t in self.trials)
        return (
            f"warm start from {', '.join(self.sweeps)}: {len(self.trials)} trials "
            f"({complete} complete, {len(self.trials) - complete} pruned); left out: {self.outside} with values "
            f"outside this sweep's space, {self.unfinished} failed or unfinished; "
            + ("; ".join(self.origins) if self.origins else "all on this sweep's zoo and base training config")
        )


def distributions(cfg: SweepConfig) -> dict[str, BaseDistribution]:
    """The searched keys of ``cfg`` as the Optuna distributions Ray's OptunaSearch makes of them (by its own
    conversion: TPE keeps a seeded trial only where the distributions are equal)."""
    return OptunaSearch.convert_search_space(search.tune_space(cfg))


def earlier_sweeps(root: Path, patterns: list[str], exclude: str) -> list[Path]:
    """The sweep directories under ``root`` that ``patterns`` (names or globs) match, ``exclude`` aside."""
    names = sorted(p.name for p in root.iterdir() if table.exists(p, table.TRIALS)) if root.is_dir() else []
    found = []
    for pattern in patterns:
        matched = [n for n in fnmatch.filter(names, pattern) if n != exclude]
        if not matched:
            raise WslError(
                f"search.warm_start {pattern!r} matches no earlier sweep with a trials table under {root}; "
                f"sweeps there: {', '.join(names) or 'none'}"
            )
        found += [root / n for n in matched if root / n not in found]
    return found


def seeds(cfg: SweepConfig, root: Path) -> Seeds:
    """The trials of the sweeps ``cfg.search.warm_start`` names, as Optuna trials of ``cfg``'s study."""
    trials, outside, unfinished, sweeps, origins = [], 0, 0, [], []
    for directory in earlier_sweeps(root, cfg.search.warm_start, cfg.name):
        if table.metrics_split(directory) != "val":
            raise WslError(
                f"search.warm_start: sweep {directory.name!r} was written before version {table.VALIDATION_FROM}: "
                "its objective is on the zoo's test models, this sweep's on the validation models; seeding the "
                "study with it would let the test models steer the proposals. Warm-start from a newer sweep"
            )
        saved = _saved(directory)
        theirs = _objectives(saved, directory)
        if theirs != cfg.objectives():
            raise WslError(
                f"search.warm_start: sweep {directory.name!r} was judged by other objectives "
                f"({saved['objective']!r}) than this one ({cfg.objective!r}); a warm start needs the same objectives"
            )
        rows = table.read_trials(directory)
        curves = _curves(directory, theirs)
        sweeps.append(directory.name)
        origins += [note] if (note := _origin(directory.name, saved, cfg)) else []
        for _, row in rows.iterrows():
            if row["status"] == table.PROMOTED:
                continue
            curve = curves.get(row["trial_id"], {})
            if row["status"] not in table.FINISHED or not curve:
                unfinished += 1
                continue
            trial = as_trial(cfg, {key: table.cell(row.get(key)) for key in cfg.params()}, curve)
            outside += trial is None
            trials += [trial] if trial is not None else []
    return Seeds(trials, sweeps, outside, unfinished, origins)


def as_trial(cfg: SweepConfig, values: dict, curve: dict[int, tuple[float, ...]]) -> FrozenTrial | None:
    """A finished earlier trial (its values of ``cfg``'s keys, its objectives per epoch) as told to ``cfg``'s
    study: complete at ``max_t`` if it got there, else pruned; None if ``cfg``'s space cannot hold it."""
    space = distributions(cfg)
    params = {key: values[key] for key in space}
    if not _inside(params, space) or any(values[k] != v for k, v in cfg.fixed().items()):
        return None
    return _trial(params, space, curve, cfg.scheduler.max_t)


def seed_study(storage, name: str, trials: list[FrozenTrial], objectives: int = 1) -> None:
    """Create study ``name`` (maximising ``objectives`` values) in ``storage``, the one the sweep's searcher then
    loads, holding the earlier trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created ..." is noise beside the sweep's
    directions = ["maximize"] * objectives
    study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True)
    study.add_trials(trials)


def _saved(directory: Path) -> dict:
    """An earlier sweep's ``sweep.yaml`` as a plain dict."""
    path = directory / table.SWEEP_FILE
    try:
        tree = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise WslError(f"search.warm_start: cannot read {path}: {e}") from None
    if not isinstance(tree, dict):
        raise WslError(f"search.warm_start: {path} is not a sweep config")
    return tree


def _objectives(saved: dict, directory: Path) -> dict[str, dict[str, float]]:
    """The objectives an earlier sweep was judged by, from its ``sweep.yaml``."""
    if "objective" not in saved:
        raise WslError(f"search.warm_start: {directory / table.SWEEP_FILE} names no objective")
    return objectives(saved["objective"])


def _origin(name: str, saved: dict, cfg: SweepConfig) -> str | None:
    """What an earlier sweep ran on otherwise than ``cfg``: its zoo, and its base training config's values of
    keys ``cfg`` does not search (None when both are the same). Warm starts across zoos measured a gain
    (benchmarks/RESULTS.md), so they are allowed; the sweep's first line says so."""
    notes = [f"zoo {saved['zoo']}"] if saved.get("zoo", cfg.zoo) != cfg.zoo else []
    theirs, ours = flatten(saved.get("train") or {}), flatten(asdict(cfg.train))
    skip = {*cfg.params(), "zoo", "name", "out"}
    differ = sorted(k for k in ours if k not in skip and k in theirs and theirs[k] != ours[k])
    notes += [f"base config {', '.join(f'{k}={theirs[k]!r}' for k in differ)}"] if differ else []
    return f"{name} ran on {', '.join(notes)}" if notes else None


def _curves(directory: Path, objectives: dict[str, dict[str, float]]) -> dict[str, dict[int, tuple[float, ...]]]:
    """trial_id -> {epoch: its objectives} (epochs where all are finite), recomputed from the epoch metrics with
    the sweep's weights."""
    epochs = table.read_epochs(directory)
    if epochs is None:
        return {}
    values = np.stack([sum(w * epochs[m] for m, w in weights.items()) for weights in objectives.values()], axis=1)
    keep = np.isfinite(values).all(axis=1)
    ids, epoch = epochs["trial_id"].to_numpy()[keep], epochs["epoch"].astype(int).to_numpy()[keep]
    curves: dict[str, dict[int, tuple[float, ...]]] = {}
    for trial, e, v in zip(ids, epoch, values[keep].tolist(), strict=True):
        curves.setdefault(trial, {})[int(e)] = tuple(v)
    return curves


def _trial(params: dict, space: dict, curve: dict[int, tuple[float, ...]], max_t: int) -> FrozenTrial:
    """Complete, valued at ``max_t``, if the curve reaches it; else pruned with the curve up to ``max_t`` (a
    multi-objective study keeps no intermediate values: pruned alone)."""
    single = len(next(iter(curve.values()))) == 1
    if max_t in curve:
        before = {e: v[0] for e, v in curve.items() if e < max_t} if single else None
        return optuna.trial.create_trial(
            params=params, distributions=space, values=list(curve[max_t]), intermediate_values=before
        )
    steps = {e: v[0] for e, v in curve.items()} if single else None
    return optuna.trial.create_trial(
        params=params, distributions=space, state=TrialState.PRUNED, intermediate_values=steps
    )


def _inside(params: dict, space: dict[str, BaseDistribution]) -> bool:
    for key, dist in space.items():
        value = params[key]
        if isinstance(dist, CategoricalDistribution):
            if value not in dist.choices:
                return False
        elif not isinstance(value, int | float) or isinstance(value, bool) or not dist.low <= value <= dist.high:
            return False
    return True
