"""Promote a sweep's best trial: its full config as YAML, then final runs at full budget over several seeds.

trials.parquet --pick (best by a metric | a named trial | top-k)--> TrainConfig
    -> <promoted>/<sweep>-<trial>.yaml        (`wsl train --config promoted/<sweep>-<trial>` re-runs it;
                                                a copy in results/<sweep>/promoted/<trial>/config.yaml)
    -> one Ray task per seed (parallel on a cluster)  -> results/<sweep>/promoted/<trial>/seed-<k>/
    -> a PROMOTED row in trials.parquet (mean and spread over seeds, its objective, linked by ``source_trial``)
       and promoted/<trial>/models.parquet (per held-out model, for the report)

The sweep config arrives loaded (the command line reads it); the PROMOTED row
is upserted under the table's lock after the seeds finish, so trial rows a
still-running sweep wrote meanwhile are kept.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import yaml

from wsl import table
from wsl.atomic import write_text
from wsl.config import TrainConfig, flatten, with_values
from wsl.errors import WslError
from wsl.evaluate import reconstruction_per_model
from wsl.metrics import FINAL
from wsl.model import encode_all
from wsl.run import load_run
from wsl.sweep.config import SweepConfig
from wsl.sweep.runner import start_ray, trial_resources
from wsl.train import train
from wsl.zoo.store import Zoo, load_zoo


def pick(trials: pd.DataFrame, metric: str, trial: str | None, top_k: int) -> pd.DataFrame:
    """The trials to promote: ``trial`` by id, else the ``top_k`` finished trials by best ``metric``."""
    done = trials[trials["status"].isin(table.FINISHED)]
    if trial is not None:
        chosen = done[done["trial_id"] == trial]
        if chosen.empty:
            raise WslError(f"trial {trial!r} is not a finished trial of this sweep; see `wsl results`")
        return chosen
    column = f"best_{metric}" if f"best_{metric}" in done else metric
    if column not in done:
        raise WslError(f"metric {metric!r} is not a column of trials.parquet; try objective, probe_r2, rec_acc_ratio")
    if done.empty:
        raise WslError("the sweep has no finished trial to promote yet")
    return done.sort_values(column, ascending=False).head(top_k)


def promoted_config(row: pd.Series, base: TrainConfig, epochs: int, out: Path) -> TrainConfig:
    """The trial's config columns back into a TrainConfig, at the full budget, on the sweep's zoo.

    The zoo comes from ``base`` (the sweep's): rows of sweeps written before version 2 name a
    default zoo the trials never read.
    """
    keys = set(flatten(asdict(base))) - {"zoo"}
    values = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items() if k in keys and pd.notna(v)}
    cfg = with_values(base, values)
    return replace(cfg, out=str(out), generate=base.generate, optim=replace(cfg.optim, epochs=epochs))


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
    """One final run; its final metrics and, per held-out test model, accuracies and a 2-D embedding."""
    final = train(cfg, lambda metrics: None, zoo=zoo)
    run = load_run(cfg.out, cfg.device)
    data = run.data(zoo)
    per = reconstruction_per_model(run.model, data)
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
    metric: str = "objective",
    trial: str | None = None,
    top_k: int = 1,
    seeds: int = 3,
    epochs: int | None = None,
    address: str | None = None,
) -> list[dict]:
    """Promote, run and record; returns the PROMOTED rows added to ``directory``'s trials table.

    ``sweep``: the sweep's config as it ran (its ``sweep.yaml``); ``promoted_dir``:
    where the YAML that ``wsl train --config promoted/...`` reads goes.
    """
    for flag, value in (("--seeds", seeds), ("--top-k", top_k), ("--epochs", epochs)):
        if value is not None and value < 1:
            raise WslError(f"wsl promote {flag} {value}: must be at least 1")
    directory = Path(directory)
    if not (directory / table.TRIALS).is_file():
        raise WslError(f"sweep {sweep.name!r} has no results table yet: {directory / table.TRIALS} does not exist")
    chosen = pick(table.read(directory / table.TRIALS), metric, trial, top_k)
    zoo = load_zoo(sweep.zoo)
    start_ray(address)
    need = trial_resources(sweep)
    task = ray.remote(num_cpus=need["cpu"], num_gpus=need["gpu"])(run_seed)
    zoo_ref = ray.put(zoo)
    rows = []
    for _, source in chosen.iterrows():
        tid = source["trial_id"]
        out = directory / table.PROMOTED_DIR / tid
        cfg = promoted_config(source, sweep.train, epochs or sweep.train.optim.epochs, out)
        config_file = write_yaml(cfg, sweep.name, tid, out, promoted_dir)
        runs = ray.get([task.remote(replace(cfg, seed=s, out=str(out / f"seed-{s}")), zoo_ref) for s in range(seeds)])
        table.write(out / "models.parquet", pd.concat([frame for _, frame in runs]))
        finals = [{**final, "objective": sweep.objective_of(final)} for final, _ in runs]
        rows.append(aggregate(source, cfg, finals, out, config_file))
    table.upsert(directory, table.TRIALS, rows)
    return rows


def aggregate(source: pd.Series, cfg: TrainConfig, finals: list[dict], out: Path, config_file: Path) -> dict:
    """One PROMOTED row: the promoted config (zoo and full budget included), metric means and ``<metric>_std``."""
    row = {k: v for k, v in flatten(asdict(cfg)).items() if k not in ("name", "out", "seed")}
    row.update(
        sweep=source["sweep"],
        trial_id=f"{source['trial_id']}-promoted",
        status=table.PROMOTED,
        source_trial=source["trial_id"],
        seeds=len(finals),
        epochs=int(finals[0]["epoch"]),
        checkpoint=str(out),
        config_file=str(config_file),
    )
    for key in (k for k in FINAL if k in finals[0]):  # gen_* only when the runs generate models
        values = np.array([f[key] for f in finals], dtype=float)
        row[key], row[f"{key}_std"] = float(values.mean()), float(values.std())
    return row
