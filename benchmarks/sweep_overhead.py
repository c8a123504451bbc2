"""How much wall time does the sweep machinery add on top of the trials' own training?

Runs one real `wsl sweep` (local Ray, random search, FIFO: every trial runs
all its epochs) of N trials and compares its wall time with the ideal: the
sum of the trials' own training time (their epochs' `time_s`, training plus
per-epoch evaluation) divided by the concurrency. The difference is Ray's
start, trial start-up (shipping the zoo, building tokens and behavioral
targets), reporting, checkpointing every epoch and the results table.

The knobs that set a trial's cost (probe size, token width) are pinned, so
that trials take about the same time: with the default space's mix (24-45 s
per trial) a slot also idles while the last long trial finishes, which is
packing, not machinery (`--mixed` measures that too).

    python benchmarks/sweep_overhead.py                        # 6 trials of ~40 s, 2 at a time: about 3 min
    python benchmarks/sweep_overhead.py --trials 12            # about 4 min
    python benchmarks/sweep_overhead.py --trials 12 --mixed    # the default space's trial lengths

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
    parser.add_argument("--mixed", action="store_true", help="keep the default space's probe sizes and widths")
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
            *([] if args.mixed else ["space.loss.probe_size.choices=[256]", "space.tokens.width.choices=[32]"]),
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
        ("trial lengths", "mixed (default space)" if args.mixed else "pinned: probe 256, width 32"),
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
