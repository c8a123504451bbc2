"""How much wall time does the sweep machinery add on top of the trials' own training?

Runs one real `wsl sweep` (local Ray, random search, FIFO: every trial runs
all its epochs) of N identical-length trials and compares its wall time with
the ideal: the sum of the trials' own training time (their epochs' `time_s`,
training plus per-epoch evaluation) divided by the concurrency. The
difference is Ray's start, trial start-up (shipping the zoo, building
tokens), reporting, checkpointing every epoch and the results table.

    python benchmarks/sweep_overhead.py                      # 6 trials of ~35 s, 2 at a time: about 3 min
    python benchmarks/sweep_overhead.py --trials 8 --epochs 10

Target (issue 4): overhead <= 15% for trials of 30 s or more.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per trial (about 6 s each on one core)")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        overrides = [
            f"zoo={Path(args.zoo).resolve()}",
            "name=overhead",
            "search.algorithm=random",
            f"search.num_samples={args.trials}",
            f"search.max_concurrent={args.concurrency}",
            "search.points_to_evaluate=[]",
            "scheduler.kind=fifo",
            f"scheduler.max_t={args.epochs}",
            "scheduler.grace_period=1",
        ]
        env = {**os.environ, "WSL_RESULTS": root, "RAY_ADDRESS": ""}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "wsl.cli", "sweep", *overrides], env=env, check=True)
        wall = time.perf_counter() - start
        epochs = pd.read_parquet(Path(root) / "overhead" / "epochs.parquet")

    per_trial = epochs.groupby("trial_id")["time_s"].sum()
    ideal = per_trial.sum() / args.concurrency
    rows = [
        ("trials x epochs", f"{len(per_trial)} x {args.epochs}"),
        ("concurrency", args.concurrency),
        ("trial training time, mean (s)", f"{per_trial.mean():.1f}"),
        ("sum of training / concurrency (s)", f"{ideal:.1f}"),
        ("sweep wall time, whole command (s)", f"{wall:.1f}"),
        ("overhead (wall / ideal - 1)", f"{wall / ideal - 1:.1%}"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"\nclaim: overhead {wall / ideal - 1:.1%} for {per_trial.mean():.0f} s trials (target <= 15%)")


if __name__ == "__main__":
    main()
