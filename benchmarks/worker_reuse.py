"""A sweep's worker runs trial after trial: its RSS with and without freed memory handed back between them.

    python benchmarks/worker_reuse.py --zoo zoos/digits-cnn       # 2 x 8 runs of 2 epochs: ~9 min on 2 busy cores

Tune reuses a trial's worker process for the sweep's next trial. Each child process here (this file run
again, ``--child``) does what such a worker does: ``wsl.train.train`` on the trial's training config
(``sweep.runner.trial_only``: no baselines, no test, no generation), run after run with the sweep's
behavioral-target memo, cycling through probe sizes and token widths as a search would, and reads its RSS
after each run; one child calls ``runner.release_freed_memory`` after each run, as ``runner.run_trial``
does, the other does not. The table gives the RSS after each run, and the ratio of the last ones.

Expected (2026-12-05, 2 cores shared with a sweep, ~9 min): kept, 1.08 GB after the first run and 1.80-1.82 GB
from the second (probe 1024) on; released, 0.61-0.63 GB throughout: 0.35x after 8 runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

import pandas as pd
import torch
from trial_scale import markdown, status_mb

CONFIGS = [(256, "row"), (1024, "32"), (64, "row"), (256, "32")]  # (loss.probe_size, tokens.width), cycled


def child(zoo: str, runs: int, epochs: int, release: bool) -> list[float]:
    """RSS in GB after each of ``runs`` trial-like runs in this process."""
    from wsl.compose import load_config
    from wsl.config import TrainConfig
    from wsl.sweep import runner
    from wsl.train import train

    torch.set_num_threads(1)  # a trial's thread: resources.cpus=1
    after = []
    for run in range(runs):
        probe, width = CONFIGS[run % len(CONFIGS)]
        with tempfile.TemporaryDirectory() as out:
            trial = [f"optim.epochs={epochs}", "generate=0", "eval.baselines=false", "eval.test=false"]
            trial += [f"zoo={zoo}", f"out={out}", f"loss.probe_size={probe}", f"tokens.width={width}"]
            train(load_config("train", trial, TrainConfig), lambda metrics: None, memo=runner.MEMO)
        if release:
            runner.release_freed_memory()
        after.append(status_mb("VmRSS") / 1024)
    return after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--child", choices=["keep", "release"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.zoo, args.runs, args.epochs, args.child == "release")))
        return
    columns = {}
    for mode in ("keep", "release"):
        command = [sys.executable, __file__, "--child", mode, "--zoo", args.zoo]
        command += ["--runs", str(args.runs), "--epochs", str(args.epochs)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        columns[f"RSS GB, {mode} freed memory"] = json.loads(done.stdout.strip().splitlines()[-1])
    table = pd.DataFrame(columns, index=pd.RangeIndex(1, args.runs + 1, name="after run"))
    print(markdown(table.round(3).reset_index()))
    keep, release = table.iloc[-1]
    print(f"\nafter {args.runs} runs: {keep:.2f} GB kept, {release:.2f} GB released ({release / keep:.2f}x)")


if __name__ == "__main__":
    main()
