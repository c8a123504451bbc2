"""What does recording one epoch report cost as a sweep's results table grows, and what does reading it cost?

Drives the sweep's recorder (``wsl.sweep.recorder.TableRecorder``) as Tune
drives it, with synthetic trials (no training, no Ray): ``--concurrency``
trials run at once, each reports ``--epochs`` epochs (a result, then the
checkpoint Tune saved with it), then ends and the next starts, until the
epoch table holds ``--rows`` rows. Every report is timed; the table prints
the median, 99th percentile and maximum of the reports just before each size.

Beside it, the recording it replaced: each report upserted its epoch row
and its trial's row into the whole tables (read, merge, rewrite), timed on
tables of the same sizes, so the ratio is measured in one run on one machine.
Then the reads: ``results.load`` of both tables while the sweep runs (its
appended parts unfolded) and after its end folded them, and a whole
``wsl results NAME`` command (its Python start-up included).

    python benchmarks/table_scale.py             # up to 100,000 epoch rows: about 10 min on 2 cores
    python benchmarks/table_scale.py --quick     # up to 10,000 rows: about 1 min

Targets (issue 30): one epoch report recorded in at most 20 ms whatever the
table's size (1,000 to 100,000 rows); a ``wsl results`` read of a
100,000-row sweep in under 2 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from ray.tune import Checkpoint

from wsl import results, table
from wsl.config import TrainConfig, flatten
from wsl.metrics import EPOCH, OBJECTIVE
from wsl.sweep.config import SweepConfig
from wsl.sweep.recorder import TableRecorder

SIZES = (1_000, 10_000, 50_000, 100_000)
WINDOW = 500  # reports timed before each size


class Trial:
    """What the recorder reads of a Tune trial."""

    def __init__(self, number: int, rng: np.random.Generator, checkpoint: Checkpoint):
        self.trial_id = f"{number:08x}"
        self.config = {"loss": {"beta": float(rng.uniform()), "gamma": float(rng.uniform(0.01, 0.5))}}
        self.num_failures, self.checkpoint, self.error_file = 0, checkpoint, None
        self.last_result: dict = {}


def result(trial: Trial, epoch: int, rng: np.random.Generator) -> dict:
    """One epoch's report, every epoch metric a trial sends (random values: cost, not content)."""
    trial.last_result = {"training_iteration": epoch}
    return {**{k: float(rng.uniform()) for k in (*EPOCH, OBJECTIVE)}, "epoch": epoch, "time_total_s": 6.0 * epoch}


def record(directory: Path, rows: int, epochs: int, concurrency: int) -> tuple[pd.DataFrame, TableRecorder]:
    """Run the synthetic sweep up to its end; returns one line per report (rows in the epoch table before it,
    seconds it took) and the recorder, to end the sweep."""
    rng = np.random.default_rng(0)
    checkpoint = Checkpoint.from_directory(str(directory / "checkpoint"))
    recorder = TableRecorder(directory, directory.name, flatten(asdict(TrainConfig())), max_t=epochs)
    recorder.setup()
    started = 0
    running: dict[Trial, int] = {}
    timings = []
    while len(timings) < rows:
        while len(running) < concurrency:
            trial = Trial(started, rng, checkpoint)
            started += 1
            recorder.on_trial_start(iteration=0, trials=[], trial=trial)
            running[trial] = 0
        trial = list(running)[len(timings) % concurrency]
        running[trial] += 1
        report = result(trial, running[trial], rng)
        start = time.perf_counter()
        recorder.on_trial_result(iteration=0, trials=[], trial=trial, result=report)
        recorder.on_checkpoint(iteration=0, trials=[], trial=trial, checkpoint=checkpoint)
        timings.append((len(timings), time.perf_counter() - start))
        if running[trial] == epochs:
            recorder.on_trial_complete(iteration=0, trials=[], trial=trial)
            del running[trial]
    return pd.DataFrame(timings, columns=["rows", "seconds"]), recorder


def upserted(directory: Path, size: int, repeats: int) -> list[float]:
    """Seconds per report of the recording this replaced, on tables of ``size`` epoch rows."""
    rng = np.random.default_rng(1)
    base = flatten(asdict(TrainConfig()))
    epochs = 20
    trial_rows = [
        {"sweep": "old", "trial_id": f"{i:08x}", **base, "status": "TERMINATED"} for i in range(size // epochs)
    ]
    epoch_rows = [
        {"sweep": "old", "trial_id": f"{i // epochs:08x}", **result(Trial(0, rng, None), i % epochs + 1, rng)}
        for i in range(size)
    ]
    table.write(directory / table.TRIALS, trial_rows)
    table.write(directory / table.EPOCHS, epoch_rows)
    seconds = []
    for i in range(repeats):
        row = {"sweep": "old", "trial_id": "new", **result(Trial(0, rng, None), i + 1, rng)}
        start = time.perf_counter()
        table.upsert(directory, table.EPOCHS, [row])
        table.upsert(directory, table.TRIALS, [{"sweep": "old", "trial_id": "new", **base, **row}])
        seconds.append(time.perf_counter() - start)
    return seconds


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="up to 10,000 rows")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial")
    parser.add_argument("--concurrency", type=int, default=8, help="trials reporting at once")
    parser.add_argument("--old-repeats", type=int, default=5, help="reports timed per size, old recording")
    args = parser.parse_args()
    sizes = [s for s in SIZES if s <= (10_000 if args.quick else SIZES[-1])]

    with tempfile.TemporaryDirectory() as root:
        directory = Path(root) / "scale"
        directory.mkdir()
        cfg = {**asdict(SweepConfig(name="scale")), "version": 3}
        (directory / table.SWEEP_FILE).write_text(yaml.safe_dump(cfg, sort_keys=False))
        (directory / "checkpoint").mkdir()
        timings, recorder = record(directory, sizes[-1], args.epochs, args.concurrency)
        reads = {"while it runs": _reads(root, directory)}
        fold_s = timed(lambda: recorder.on_experiment_end(trials=[]))
        reads["after its end"] = _reads(root, directory)
        old = Path(root) / "old"
        old.mkdir()
        before = {size: upserted(old, size, args.old_repeats) for size in sizes}

    print(f"\n{len(timings):,} epoch reports, {args.concurrency} trials at once, {args.epochs} epochs each\n")
    print("| epoch rows | report median ms | p99 ms | max ms | old recording median ms | old / new |")
    print("|---:|---:|---:|---:|---:|---:|")
    medians = {}
    for size in sizes:
        window = timings[(timings["rows"] >= size - WINDOW) & (timings["rows"] < size)]["seconds"] * 1000
        medians[size] = window.median()
        old_ms = 1000 * float(np.median(before[size]))
        print(
            f"| {size:,} | {window.median():.2f} | {window.quantile(0.99):.2f} | {window.max():.2f} "
            f"| {old_ms:.0f} | {old_ms / window.median():.0f}x |"
        )
    print(f"\nthe sweep's end (folding {sizes[-1]:,} epoch rows): {fold_s:.2f} s")
    for when, figures in reads.items():
        print(
            f"reads of the {sizes[-1]:,}-row sweep {when}: " + ", ".join(f"{k} {v:.2f} s" for k, v in figures.items())
        )
    ratio = medians[sizes[-1]] / medians[sizes[0]]
    print(f"\nclaim: a report at {sizes[-1]:,} rows costs {ratio:.2f}x one at {sizes[0]:,} (target: flat, <= 20 ms)")


def _reads(root: str, directory: Path) -> dict[str, float]:
    env = {**os.environ, "WSL_RESULTS": root}
    command = [sys.executable, "-m", "wsl.cli", "results", directory.name]
    return {
        "results.load(trials)": timed(lambda: results.load(directory.name, root=root)),
        "results.load(epochs)": timed(lambda: results.load(directory.name, "epochs", root=root)),
        "`wsl results NAME`": timed(lambda: subprocess.run(command, env=env, check=True, capture_output=True)),
    }


if __name__ == "__main__":
    main()
