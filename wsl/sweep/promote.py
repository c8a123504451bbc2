"""Promote a sweep's best trial: its full config as YAML, then final runs at full budget over fresh seeds.

A multi-objective sweep has no best trial: its front is promoted (``pick_front``),
or the one trial a ``--pick`` expression keeps and its last objective ranks first.

trials.parquet --pick (a rule over validation figures | a named trial | top-k)--> TrainConfig
    -> <promoted>/<sweep>-<trial>.yaml        (`wsl train --config promoted/<sweep>-<trial>` re-runs it;
                                                a copy in results/<sweep>/promoted/<trial>/config.yaml)
    -> one Ray task per seed, seeds no trial ran (parallel on a cluster) -> results/<sweep>/promoted/<trial>/seed-<k>/
    -> a PROMOTED row in trials.parquet: the validation figure that picked the trial beside the final runs'
       validation and test figures (mean, spread and a 95% interval over seeds), linked by ``source_trial``;
       and promoted/<trial>/models.parquet (per test model, for the report)

Why fresh seeds: every trial ran with the sweep's seed, and a re-run of the
picked run would repeat the very draw it was picked for. The pick reads
validation figures only (``wsl.sweep.rules``); the test figures are read here
once, for what was picked.

The sweep config arrives loaded (the command line reads it); the PROMOTED row
is upserted under the table's lock after the seeds finish, so trial rows a
still-running sweep wrote meanwhile are kept.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import yaml
from scipy.stats import t as student_t

from wsl import results, table
from wsl.atomic import write_text
from wsl.config import TrainConfig, flatten, with_values
from wsl.errors import WslError
from wsl.evaluate import originals, reconstruction_per_model
from wsl.metrics import FINAL, OBJECTIVE, PARETO_RANK, TEST_PREFIX, is_objective
from wsl.model import encode_all
from wsl.run import load_run
from wsl.sweep import rules
from wsl.sweep.config import SweepConfig
from wsl.sweep.moasha import priority_order
from wsl.sweep.runner import TRIAL_ONLY, start_ray, trial_base, trial_resources
from wsl.train import train
from wsl.zoo.store import Zoo, load_zoo


def pick(
    trials: pd.DataFrame, epochs: pd.DataFrame, metric: str, trial: str | None, top_k: int, rule: str, max_t: int
) -> pd.DataFrame:
    """The trials to promote, each with ``pick_value`` (the validation figure it was picked by): ``trial`` by id,
    else the ``top_k`` finished trials ranked by ``rule`` (``wsl.sweep.rules``) on ``metric``."""
    done = trials[trials["status"].isin(table.FINISHED)]
    if trial is not None:
        chosen = done[done["trial_id"] == trial]
        if chosen.empty:
            raise WslError(f"trial {trial!r} is not a finished trial of this sweep; see `wsl results`")
        return chosen.assign(pick_value=chosen.get(metric, np.nan))
    if metric not in epochs:
        raise WslError(f"metric {metric!r} is not a column of epochs.parquet; try objective, probe_r2, rec_acc_ratio")
    if done.empty:
        raise WslError("the sweep has no finished trial to promote yet")
    curves = epochs.loc[epochs["trial_id"].isin(done["trial_id"]), ["trial_id", "epoch", metric]]
    ranked = rules.rank(curves.rename(columns={metric: OBJECTIVE}), rule, max_t).head(top_k)
    chosen = done.set_index("trial_id").loc[ranked.index].reset_index()
    return chosen.assign(pick_value=ranked.to_numpy())


def pick_front(trials: pd.DataFrame, objectives: list[str], where: str | None, top_k: int | None) -> pd.DataFrame:
    """A multi-objective sweep's trials to promote: its front (``pareto_rank`` 0 among the trials that reached
    ``max_t``), at most ``top_k`` of them kept spread (the multi-objective ASHA's order: ``priority_order``);
    or, with ``where`` (``wsl results --where`` syntax), the trial that ranks best on the last objective among the
    front trials ``where`` keeps. ``pick_value``: that trial's last objective (validation)."""
    front = trials[(trials["status"] == table.TERMINATED) & (trials.get(PARETO_RANK) == 0)]
    if front.empty:
        raise WslError("the sweep has no trial on its front yet (none has run to scheduler.max_t)")
    if where is not None:
        kept = results.query(front, where=where)
        if kept.empty:
            raise WslError(f"wsl promote --pick {where!r} keeps none of the {len(front)} trials on the front")
        return (
            kept.sort_values(objectives[-1], ascending=False, kind="stable")
            .head(1)
            .assign(pick_value=lambda f: f[objectives[-1]])
        )
    order = priority_order(front[objectives].to_numpy(dtype=float))
    return front.iloc[order[:top_k]].assign(pick_value=lambda f: f[objectives[-1]]).reset_index(drop=True)


def promoted_config(row: pd.Series, base: TrainConfig, epochs: int, out: Path) -> TrainConfig:
    """The trial's config columns back into a TrainConfig, at ``epochs``, on the sweep's zoo.

    The zoo comes from ``base`` (the sweep's): rows of sweeps written before version 2 name a
    default zoo the trials never read. So do the keys a trial alone ran with (``trial_only``: its
    epochs, no test figures, no baselines, no generation): a promoted run gets ``base``'s.
    """
    keys = set(flatten(asdict(base))) - {"zoo", *TRIAL_ONLY}
    values = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items() if k in keys and pd.notna(v)}
    cfg = with_values(base, values)
    return replace(cfg, out=str(out), optim=replace(cfg.optim, epochs=epochs))


def final_config(row: pd.Series, base: TrainConfig, epochs: int, out: Path) -> TrainConfig:
    """``promoted_config`` as a final run: it reports, so it reads the test models whatever ``base`` says."""
    cfg = promoted_config(row, base, epochs, out)
    return replace(cfg, eval=replace(cfg.eval, test=True))


def write_yaml(cfg: TrainConfig, sweep: str, trial: str, out: Path, promoted_dir: Path) -> Path:
    """``<promoted_dir>/<sweep>-<trial>.yaml``: a complete training config, with the command that runs it.

    ``# @package _global_`` keeps Hydra from nesting it under the folder's name
    when ``wsl train --config promoted/...`` composes it. A copy goes to
    ``out/config.yaml``, next to the final runs: under ``ray job submit`` the
    config dir is the job's temporary working directory, and the results are
    what users fetch.
    """
    name = f"{sweep}-{trial}"
    path = Path(promoted_dir) / f"{name}.yaml"
    header = (
        f"# @package _global_\n# Promoted from trial {trial} of sweep {sweep}.\n#\n"
        f"#   wsl train --config promoted/{name}\n#\n"
    )
    text = header + yaml.safe_dump(asdict(replace(cfg, name=name, out=f"runs/{name}")), sort_keys=False)
    for file in (path, Path(out) / "config.yaml"):
        write_text(file, text)
    return path


def run_seed(cfg: TrainConfig, zoo: Zoo) -> tuple[dict, pd.DataFrame]:
    """One final run; its final metrics (with its seed) and, per test model, accuracies and a 2-D embedding."""
    final = {**train(cfg, lambda metrics: None, zoo=zoo), "seed": cfg.seed}
    run = load_run(cfg.out, cfg.device)
    data = run.data(zoo)
    per = reconstruction_per_model(run.model, data, originals(data, "test"))
    emb = encode_all(run.model, data.tokens[per["row"]], data.lay.positions.to(run.device)).double().cpu().numpy()
    centred = emb - emb.mean(0)
    xy = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T  # PCA to 2-D
    frame = pd.DataFrame(
        {
            "seed": cfg.seed,
            "model": per["row"],
            "test_acc": per["test_acc"],
            "rec_acc": per["rec_acc"],
            "agreement": per["agreement"],
            "emb_x": xy[:, 0],
            "emb_y": xy[:, 1],
        }
    )
    return final, frame


def promote(
    sweep: SweepConfig,
    directory: Path,
    promoted_dir: Path,
    metric: str = OBJECTIVE,
    trial: str | None = None,
    top_k: int | None = None,
    seeds: int = 3,
    epochs: int | None = None,
    address: str | None = None,
    rule: str = rules.DEFAULT,
    race_k: int = 3,
    where: str | None = None,
) -> list[dict]:
    """Promote, run and record; returns the PROMOTED rows added to ``directory``'s trials table.

    ``sweep``: the sweep's config as it ran (its ``sweep.yaml``); ``promoted_dir``:
    where the YAML that ``wsl train --config promoted/...`` reads goes; ``race_k``:
    the candidates of ``rule="race"``; ``where``: the ``--pick`` of a multi-objective sweep
    (``pick_front``; there ``top_k`` None is the whole front).
    """
    if where is not None and not sweep.multi_objective:
        raise WslError("wsl promote --pick chooses among a multi-objective sweep's front; this sweep has one objective")
    if sweep.multi_objective and rule == "race":
        raise WslError("wsl promote --rule race races one objective; a multi-objective sweep promotes its front")
    top_k = top_k if top_k is not None or sweep.multi_objective else 1
    for flag, value in (("--seeds", seeds), ("--top-k", top_k), ("--epochs", epochs), ("--race-k", race_k)):
        if value is not None and value < 1:
            raise WslError(f"wsl promote {flag} {value}: must be at least 1")
    if rule not in rules.RULES:
        raise WslError(f"wsl promote --rule {rule!r} is unknown; choose from {', '.join(rules.RULES)}")
    racing = rule == "race"
    if racing and trial is not None:
        raise WslError(f"wsl promote --trial {trial} names the trial, --rule race picks one: give one of them")
    if racing and top_k > 1:
        raise WslError(f"wsl promote --rule race picks one trial; --top-k {top_k} needs --rule best or last")
    directory = Path(directory)
    if not table.exists(directory, table.TRIALS):
        raise WslError(f"sweep {sweep.name!r} has no results table yet: {directory / table.TRIALS} does not exist")
    trials = table.read_trials(directory)
    history = table.read_epochs(directory)
    history = pd.DataFrame() if history is None else history
    objectives = list(sweep.objectives())
    if sweep.multi_objective and trial is None:
        chosen, rule = pick_front(trials, objectives, where, top_k), "front" if where is None else f"pick {where}"
        metric = objectives[-1]
    else:
        chosen = pick(trials, history, metric, trial, race_k if racing else top_k, rule, sweep.scheduler.max_t)
    used = trial_seeds(trials, sweep)
    zoo = load_zoo(sweep.zoo)
    start_ray(address)
    need = trial_resources(sweep)
    zoo_ref = ray.put(zoo)
    label = "named" if trial is not None else rule
    if racing:
        chosen, raced = race(sweep, chosen, metric, rules.fresh_seeds(used, rules.seeds_needed(len(chosen))), zoo_ref)
        used, label = used | set(raced), f"race of {race_k}"
    fresh = rules.fresh_seeds(used, seeds)
    task = ray.remote(num_cpus=need["cpu"], num_gpus=need["gpu"])(run_seed)
    rows = []
    for _, source in chosen.iterrows():
        tid = source["trial_id"]
        out = directory / table.PROMOTED_DIR / tid
        cfg = final_config(source, sweep.train, epochs or sweep.train.optim.epochs, out)
        config_file = write_yaml(cfg, sweep.name, tid, out, promoted_dir)
        runs = ray.get([task.remote(replace(cfg, seed=s, out=str(out / f"seed-{s}")), zoo_ref) for s in fresh])
        table.write(out / "models.parquet", pd.concat([frame for _, frame in runs]))
        finals = [
            {**final, **sweep.objective_values(final), **sweep.objective_values(final, TEST_PREFIX)}
            for final, _ in runs
        ]
        picked = {"pick_rule": label, "pick_metric": metric}
        rows.append(aggregate(source, cfg, finals, out, config_file) | picked)
    table.upsert(directory, table.TRIALS, rows)
    return rows


def race(
    sweep: SweepConfig, candidates: pd.DataFrame, metric: str, seeds: list[int], zoo_ref
) -> tuple[pd.DataFrame, list[int]]:
    """``rules.race`` over ``candidates``: each runs its trial's config at the trial's budget on the fresh
    ``seeds`` (a round's runs in parallel), judged on ``metric`` at its last epoch, a validation figure (the
    runs never read the test models). Returns the winner's row, ``pick_value`` the mean of its racing runs
    (``race_values``: every candidate's racing figures, as JSON), and the seeds raced on."""
    need = trial_resources(sweep)
    task = ray.remote(num_cpus=need["cpu"], num_gpus=need["gpu"])(race_run)
    base, by_id = trial_base(sweep), candidates.set_index("trial_id", drop=False)

    def run_round(ids: list[str], seed: int) -> dict[str, float]:
        configs = [replace(promoted_config(by_id.loc[t], base, base.optim.epochs, Path(".")), seed=seed) for t in ids]
        finals = ray.get([task.remote(cfg, zoo_ref) for cfg in configs])
        return {t: {**f, **sweep.objective_values(f)}[metric] for t, f in zip(ids, finals)}

    winner, values = rules.race(list(by_id.index), run_round, seeds)
    row = by_id.loc[[winner]].reset_index(drop=True)
    if values[winner]:  # one candidate alone runs no race and keeps its sweep figure
        row = row.assign(pick_value=float(np.mean(values[winner])), race_values=json.dumps(values))
    return row, seeds


def race_run(cfg: TrainConfig, zoo: Zoo) -> dict:
    """One racing run, in a directory of its own that goes with it; its last epoch's validation metrics."""
    with tempfile.TemporaryDirectory() as out:
        return train(replace(cfg, out=out), lambda metrics: None, zoo=zoo)


def trial_seeds(trials: pd.DataFrame, sweep: SweepConfig) -> set[int]:
    """The seeds the sweep's trials ran with (their ``seed`` column; the sweep's own where a row lacks it)."""
    ran = trials[trials["status"] != table.PROMOTED]
    column = ran["seed"] if "seed" in ran else pd.Series(dtype=float)
    return {int(s) for s in column.dropna()} | {sweep.train.seed}


def aggregate(source: pd.Series, cfg: TrainConfig, finals: list[dict], out: Path, config_file: Path) -> dict:
    """One PROMOTED row: the promoted config (zoo and full budget included), the seeds, the figure the source
    trial was picked by (``pick_value``, validation), and per metric the mean over seeds, ``<metric>_std``
    (sample standard deviation) and, for test figures, ``<metric>_ci95`` (half-width of a t interval)."""
    row = {k: v for k, v in flatten(asdict(cfg)).items() if k not in ("name", "out", "seed")}
    row.update(
        sweep=source["sweep"],
        trial_id=f"{source['trial_id']}-promoted",
        status=table.PROMOTED,
        source_trial=source["trial_id"],
        pick_value=float(source.get("pick_value", np.nan)),
        race_values=source.get("race_values"),
        seeds=len(finals),
        promoted_seeds=",".join(str(f["seed"]) for f in finals),
        epochs=int(finals[0]["epoch"]),
        checkpoint=str(out),
        config_file=str(config_file),
    )
    # gen_* only when the runs generate models; objective_<i>: a multi-objective sweep's weighted sums
    for key in (k for k in finals[0] if k in FINAL or is_objective(k.removeprefix(TEST_PREFIX))):
        values = np.array([f[key] for f in finals], dtype=float)
        row[key], row[f"{key}_std"] = float(values.mean()), spread(values)
        if key.startswith(TEST_PREFIX):
            row[f"{key}_ci95"] = interval(values)
    return row


def spread(values: np.ndarray) -> float:
    """Sample standard deviation over seeds (NaN for one seed: one run shows no spread)."""
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def interval(values: np.ndarray) -> float:
    """Half-width of the 95% t interval of the mean over seeds (NaN for one seed)."""
    if len(values) < 2:
        return float("nan")
    return float(student_t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
