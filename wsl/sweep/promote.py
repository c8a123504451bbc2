"""Promote a sweep's best trial: its full config as YAML, then final runs at full budget over several seeds.

trials.parquet --pick (best by a metric | a named trial | top-k)--> TrainConfig
    -> sweeps/promoted/<sweep>-<trial>.yaml   (`wsl train --config promoted/<sweep>-<trial>` re-runs it;
                                                a copy in results/<sweep>/promoted/<trial>/config.yaml)
    -> one Ray task per seed (parallel on a cluster)  -> results/<sweep>/promoted/<trial>/seed-<k>/
    -> a PROMOTED row in trials.parquet (mean and spread over seeds, linked by ``source_trial``)
       and promoted/<trial>/models.parquet (per held-out model, for the report)
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import torch
import yaml

from wsl import results
from wsl.config import config_dir, load_yaml
from wsl.device import pick_device
from wsl.errors import WslError
from wsl.metrics import END, SCORES
from wsl.model import Autoencoder, encode_all
from wsl.sweep.config import SweepConfig, flatten, from_dict
from wsl.sweep.runner import SWEEP_FILE, start_ray, trial_resources
from wsl.sweep.table import TRIALS
from wsl.train import CHECKPOINT, TrainConfig, prepare, reconstruction_per_model, train
from wsl.zoo.store import Zoo, load_zoo

FINAL = (*SCORES, "val_loss_struct", *END)  # averaged over seeds into the PROMOTED row, where reported


def pick(trials: pd.DataFrame, metric: str, trial: str | None, top_k: int) -> pd.DataFrame:
    """The trials to promote: ``trial`` by id, else the ``top_k`` finished trials by best ``metric``."""
    done = trials[trials["status"].isin(["TERMINATED", "STOPPED"])]
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
    """The trial's flattened config columns back into a TrainConfig, at the full budget."""
    tree = asdict(base)
    for key, value in flatten(tree).items():
        if key in row and pd.notna(row[key]):
            *path, leaf = key.split(".")
            node = tree
            for part in path:
                node = node[part]
            node[leaf] = value.item() if hasattr(value, "item") else value
    cfg = from_dict(TrainConfig, tree)
    return replace(cfg, out=str(out), generate=base.generate, optim=replace(cfg.optim, epochs=epochs))


def write_yaml(cfg: TrainConfig, sweep: str, trial: str, out: Path) -> Path:
    """``sweeps/promoted/<sweep>-<trial>.yaml``: a complete training config, with the command that runs it.

    A copy goes to ``out/config.yaml``, next to the final runs: under ``ray job submit`` the
    config dir is the job's temporary working directory, and the results are what users fetch.
    """
    name = f"{sweep}-{trial}"
    path = config_dir() / "promoted" / f"{name}.yaml"
    header = f"# Promoted from trial {trial} of sweep {sweep}.\n#\n#   wsl train --config promoted/{name}\n#\n"
    text = header + yaml.safe_dump(asdict(replace(cfg, name=name, out=f"runs/{name}")), sort_keys=False)
    for file in (path, Path(out) / "config.yaml"):
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    return path


def run_seed(cfg: TrainConfig, zoo: Zoo) -> tuple[dict, pd.DataFrame]:
    """One final run; its final metrics and, per held-out test model, accuracies and a 2-D embedding."""
    memo: dict = {}  # the behavioral targets, computed once for training and evaluation
    final = train(cfg, lambda metrics: None, zoo=zoo, memo=memo)
    device = pick_device(cfg.device)  # where train ran, so the memo's targets are reused
    data = prepare(zoo, cfg, device, memo)
    lay = data.lay
    model = Autoencoder(cfg.model, lay.width, lay.num_tokens, lay.max_positions).to(device)
    model.load_state_dict(torch.load(Path(cfg.out) / CHECKPOINT, map_location=device, weights_only=True)["model"])
    positions = lay.positions.to(device)
    per = reconstruction_per_model(model, data, positions)
    emb = encode_all(model, data.tokens[per["row"]], positions).double().cpu().numpy()
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
    name: str,
    root: Path,
    metric: str = "objective",
    trial: str | None = None,
    top_k: int = 1,
    seeds: int = 3,
    epochs: int | None = None,
    address: str | None = None,
) -> list[dict]:
    """Promote, run and record; returns the PROMOTED rows written to trials.parquet."""
    for flag, value in (("--seeds", seeds), ("--top-k", top_k), ("--epochs", epochs)):
        if value is not None and value < 1:
            raise WslError(f"wsl promote {flag} {value}: must be at least 1")
    directory = Path(root) / name
    sweep = load_yaml(directory / SWEEP_FILE, SweepConfig)
    trials = results.load(name, root=root)
    chosen = pick(trials, metric, trial, top_k)
    zoo = load_zoo(sweep.zoo)
    start_ray(address)
    need = trial_resources(sweep)
    task = ray.remote(num_cpus=need["cpu"], num_gpus=need["gpu"])(run_seed)
    zoo_ref = ray.put(zoo)
    rows = []
    for _, source in chosen.iterrows():
        tid = source["trial_id"]
        out = directory / "promoted" / tid
        cfg = promoted_config(source, sweep.train, epochs or sweep.train.optim.epochs, out)
        config_file = write_yaml(cfg, name, tid, out)
        runs = ray.get([task.remote(replace(cfg, seed=s, out=str(out / f"seed-{s}")), zoo_ref) for s in range(seeds)])
        results.write_parquet(out / "models.parquet", pd.concat([frame for _, frame in runs]))
        rows.append(aggregate(source, [final for final, _ in runs], out, config_file))
    new = pd.DataFrame(rows)
    table = pd.concat([trials[~trials["trial_id"].isin(new["trial_id"])], new], ignore_index=True)
    results.write_parquet(directory / TRIALS, table)
    return rows


def aggregate(source: pd.Series, finals: list[dict], out: Path, config_file: Path) -> dict:
    """One PROMOTED row: the source trial's config, metric means and ``<metric>_std`` over seeds."""
    row = {k: v for k, v in source.items() if "." in k}
    row.update(
        sweep=source["sweep"],
        trial_id=f"{source['trial_id']}-promoted",
        status="PROMOTED",
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
