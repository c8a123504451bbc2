"""How noisy is a validation figure? The default run over several seeds, its validation figures beside its test ones.

A sweep decides on the validation models and reports on the test models (39
and 38 trained models at the default zoo's last checkpoint, 233 and 228 rows
for the probes). Whether a sweep can tell two configs apart depends on how
much a figure moves from one seed to the next: here the default training
config (sweeps/train.yaml, 30 epochs) runs over ``--seeds`` on the default
zoo, and for each figure the mean and the seed-to-seed standard deviation are
printed on validation and on test, beside the validation-test difference.

Each finished run is appended to ``--out`` at once and a re-run skips the
seeds it holds, so it resumes where it stopped. About 4 min a run on 2 CPU
cores (6 seeds: about 25 min).

    wsl zoo make                                   # once: the default zoo
    python benchmarks/split_noise.py               # seeds 0-5 -> benchmarks/data/split_noise.parquet
    python benchmarks/split_noise.py --report      # the table of what is recorded
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from wsl import table
from wsl.compose import load_config
from wsl.config import TrainConfig
from wsl.metrics import TEST_PREFIX
from wsl.train import train
from wsl.zoo.store import load_zoo

FIGURES = (
    "rec_agreement",
    "rec_agreement_working",
    "rec_agreement_broken",
    "rec_acc_ratio",
    "rec_acc_corr",
    "probe_r2",
    "probe_tau",
    "probe_r2_later",
    "baseline_r2",
    "boost_r2",
    "copy_best_agreement_working",
)


def run(seed: int, zoo, threads: int) -> dict:
    """One default run with ``seed``; its final metrics."""
    torch.set_num_threads(threads)
    cfg = load_config("train", [f"seed={seed}", "generate=0", "device=cpu"], TrainConfig)
    with tempfile.TemporaryDirectory() as out:
        return {"seed": seed, **train(replace(cfg, out=out), lambda metrics: None, zoo=zoo)}


def report(frame: pd.DataFrame) -> None:
    """Per figure: mean ± seed-to-seed std on validation and on test, and the mean validation - test gap."""
    for prefix in ("", TEST_PREFIX):  # the default sweep's objective
        frame[prefix + "objective"] = 0.5 * frame[prefix + "rec_agreement"] + 0.5 * frame[prefix + "probe_r2"]
    print(f"{len(frame)} seeds ({', '.join(map(str, sorted(frame['seed'])))}) of the default run, 30 epochs")
    print(f"{'figure':<30} {'validation':>16} {'test':>16} {'val - test':>11}")
    for name in ("objective", *FIGURES):
        val, test = frame[name], frame[TEST_PREFIX + name]
        shown = [f"{v.mean():.3f} ± {v.std():.3f}" for v in (val, test)]
        print(f"{name:<30} {shown[0]:>16} {shown[1]:>16} {(val - test).mean():>+11.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(6)))
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/data/split_noise.parquet")
    parser.add_argument("--report", action="store_true", help="only print the table of what is recorded")
    args = parser.parse_args()
    out = Path(args.out)
    done = table.read(out) if out.is_file() else pd.DataFrame(columns=["seed"])
    if not args.report:
        zoo = load_zoo(args.zoo)
        for seed in (s for s in args.seeds if s not in set(done["seed"])):
            done = pd.concat([done, pd.DataFrame([run(seed, zoo, args.threads)])], ignore_index=True)
            table.write(out, done)
            print(f"seed {seed} done", flush=True)
    report(done)


if __name__ == "__main__":
    main()
