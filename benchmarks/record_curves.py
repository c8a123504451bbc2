"""Record the learning curves of random configs of a sweep's space: the table a search replay answers from.

Config ``i`` is drawn uniformly from the sweep's space (log ranges in log
space) by a generator seeded with ``i``, so the list is the same on every
machine and a stopped recording resumes with the configs it lacks. Every
``--repeat-every``-th config is trained a second time with another training
seed: the pairs measure the seed-to-seed noise a surrogate must not claim to
beat. Each run trains ``scheduler.max_t`` epochs with the sweep's trial config
(``wsl.sweep.runner.trial_base``: no generation, no boosted baselines) and
keeps every epoch's metrics, objective and seconds.

    wsl zoo make                                              # once: the default zoo
    python benchmarks/record_curves.py                        # 150 + 30 repeats into curves-val.parquet: ~4 h
    python benchmarks/record_curves.py --configs 4 --max-t 3  # a smoke run: about 2 min

``benchmarks/data/curves.parquet`` holds figures on the zoo's test models (recorded
2026-12-01/02, before sweeps decided on validation; ``search_efficiency.py`` and
``promotion_rules.py`` replay it); ``curves-val.parquet`` is its re-recording on
validation figures, the same configs in the same order, what ``front_search.py``
replays: configs 0-100 and their 21 repeats (122 runs, 2026-12-05/06), stopped
there once both of front_search.py's surrogates met their bar. The first command
resumes it up to 150. About 2.3 min a run on an idle core.

Writes ``--out`` after every run (one row per run and epoch, config values as
``config.<dotted key>``); ``--jobs`` runs in parallel, one thread each.
Epoch seconds are wall time, what a sweep's trials take: record on an
otherwise idle machine. Each run keeps the share of its wall time its
process spent on a core (``cpu_share``); below ``SHARED`` the run is marked
``shared`` (and says so): other jobs took its core, and the replay's
surrogate times epochs without it.
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing as mp
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wsl import table
from wsl.compose import load_config
from wsl.config import with_values
from wsl.sweep.config import Param, SweepConfig
from wsl.sweep.runner import MEMO, trial_base
from wsl.train import train
from wsl.zoo.store import load_zoo

SHARED = 0.85  # a run on a core less than this share of its wall time shared the machine
ZOO = {}  # the zoo, loaded once before the workers fork (a task would pickle it otherwise)


def draw(params: dict[str, Param], index: int) -> dict:
    """Config ``index`` of the space: each searched key drawn at random, the same on every machine."""
    rng = np.random.default_rng(index)
    values = {}
    for key, p in params.items():
        kind = p.kind(key)
        if kind == "fixed":
            values[key] = p.value
        elif kind == "choice":
            values[key] = p.choices[int(rng.integers(len(p.choices)))]
        else:
            high = p.high + 1 if p.integer else p.high  # an integer range includes its upper bound
            low, high = (np.log(p.low), np.log(high)) if p.log else (p.low, high)
            value = float(rng.uniform(low, high))
            value = float(np.exp(value)) if p.log else value
            values[key] = min(int(np.floor(value)), int(p.high)) if p.integer else value
    return values


def jobs(cfg: SweepConfig, configs: int, repeat_every: int) -> list[dict]:
    """(config, seed) runs in recording order: each repeated config right after its first run."""
    out = []
    for i in range(configs):
        values = draw(cfg.params(), i)
        out.append({"config_id": i, "seed": 0, "values": values})
        if repeat_every and i % repeat_every == 0:
            out.append({"config_id": i, "seed": 1, "values": values})
    return out


def run(job: dict) -> list[dict]:
    """Train one config for max_t epochs; one row per epoch."""
    torch.set_num_threads(1)
    cfg: SweepConfig = job["sweep"]
    rows = []
    with tempfile.TemporaryDirectory() as out:
        train_cfg = replace(with_values(trial_base(cfg), job["values"]), seed=job["seed"], out=out)

        def report(metrics: dict) -> None:
            rows.append({**metrics, **cfg.objective_values(metrics)})

        cpu, wall = time.process_time(), time.perf_counter()
        train(train_cfg, report, zoo=ZOO["zoo"], memo=MEMO)
        share = (time.process_time() - cpu) / (time.perf_counter() - wall)
    config = {f"config.{k}": v for k, v in job["values"].items()}
    head = {"config_id": job["config_id"], "seed": job["seed"], **config, "cpu_share": share, "shared": share < SHARED}
    return [{**head, **row} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="benchmark", help="a sweep of sweeps/sweep/ (default: benchmark)")
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--configs", type=int, default=150)
    parser.add_argument("--repeat-every", type=int, default=5, help="every k-th config again with seed 1 (0: none)")
    parser.add_argument("--max-t", type=int, default=None, help="epochs a run (default: the sweep's max_t)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/data/curves-val.parquet")
    args = parser.parse_args()

    overrides = [f"sweep={args.sweep}", f"zoo={Path(args.zoo).resolve()}"]
    overrides += [f"scheduler.max_t={args.max_t}"] if args.max_t else []
    cfg = load_config("sweep", overrides, SweepConfig)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = open(f"{out}.lock", "a")  # noqa: SIM115 (held until the process ends)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(
            f"another record_curves.py is writing {out}: one at a time (--jobs runs in parallel)"
        ) from None
    done = table.read(out) if out.is_file() else pd.DataFrame(columns=["config_id", "seed", "epoch"])
    if len(done) and "metrics_split" not in done:
        raise SystemExit(
            f"{out} was recorded before sweeps decided on validation: its objectives are on the zoo's test models, "
            "a run today records validation ones; start a new record with --out NEW.parquet"
        )
    finished = set(zip(done["config_id"], done["seed"], strict=True))
    ZOO["zoo"] = load_zoo(cfg.zoo)
    todo = [
        {**job, "sweep": cfg}
        for job in jobs(cfg, args.configs, args.repeat_every)
        if (job["config_id"], job["seed"]) not in finished
    ]
    print(f"{len(finished)} runs recorded in {out}, {len(todo)} to go ({cfg.scheduler.max_t} epochs each)", flush=True)
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(args.jobs, maxtasksperchild=20) as pool:
        for n, rows in enumerate(pool.imap_unordered(run, todo), 1):
            frame = pd.DataFrame(rows).assign(
                sweep=cfg.name, max_t=cfg.scheduler.max_t, recorded=str(date.today()), metrics_split="val"
            )
            done = pd.concat([done, frame], ignore_index=True) if len(done) else frame
            table.write(out, done)
            last = rows[-1]
            shared = f" (shared: on a core {last['cpu_share']:.0%} of the time; its seconds are left out)"
            print(
                f"[{n}/{len(todo)} {(time.perf_counter() - t0) / 60:.0f} min] config {last['config_id']} "
                f"seed {last['seed']}: objective {last['objective']:.3f} after {last['epoch']} epochs"
                f"{shared if last['shared'] else ''}",
                flush=True,
            )


if __name__ == "__main__":
    main()
