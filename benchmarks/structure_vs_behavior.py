"""Does the behavioral loss repair what weight error alone misses? The paper's claim, measured.

The same autoencoder trained with `beta=1` (structure only) and with the
behavioral loss on (`beta` 0.5 and 0.1), same seeds and epochs, 3 seeds each,
at several latent widths (tight to generous). For each cell it prints the
mean and spread (std over seeds) of `rec_acc_ratio`, `rec_agreement` and
`probe_r2`, then, per latent width, the behavioral gain in agreement against
the seed spread, and the weight-statistics baseline's R² / tau next to the
embedding probe's.

    wsl zoo make                                                   # once: the default zoo
    python benchmarks/structure_vs_behavior.py --jobs 8            # GPU machine, 16 cores: about 6 min
    python benchmarks/structure_vs_behavior.py --epochs 5 --latents 2,16 --seeds 2   # CPU smoke: ~15 min
    python benchmarks/structure_vs_behavior.py --latents 8,96 --betas 1.0,0.1 --jobs 2  # RESULTS.md: ~50 min, 2 cores

Runs are independent processes (`--jobs`); each uses cuda when there is one. ``--out``/results.csv
gets a row after every run, and a re-run skips the runs it holds.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
from pathlib import Path

import pandas as pd
import torch

from wsl.config import EvalConfig, OptimConfig, TrainConfig
from wsl.losses import LossConfig
from wsl.metrics import on_test
from wsl.model import ModelConfig
from wsl.train import train

BETAS = "1.0,0.5,0.1"
METRICS = (
    "rec_acc_ratio",
    "rec_agreement",
    "rec_agreement_working",
    "rec_acc_ratio_working",
    "rec_agreement_broken",
    "rec_acc_broken",
    "probe_r2",
    "probe_r2_later",
)


def one_run(job: dict) -> dict:
    torch.set_num_threads(job.pop("threads"))
    cfg = TrainConfig(
        zoo=job["zoo"],
        out=job["out"],
        seed=job["seed"],
        generate=0,
        model=ModelConfig(latent_dim=job["latent"]),
        loss=LossConfig(beta=job["beta"]),
        optim=OptimConfig(epochs=job["epochs"]),
        eval=EvalConfig(baselines=False),  # the boosted baselines are not printed here
    )
    final = on_test(train(cfg, lambda metrics: None))  # the record reports the test models
    return {**job, **{k: final[k] for k in (*METRICS, "baseline_r2", "baseline_r2_later", "time_s")}}


def summarise(frame: pd.DataFrame) -> None:
    cells = frame.groupby(["latent", "beta"], sort=True)[list(METRICS)].agg(["mean", "std"])
    print("\nmean ± std over seeds (last epoch, held-out models)")
    header = f"{'latent':>6} {'beta':>5}  " + "  ".join(f"{m:>17}" for m in METRICS)
    print(header)
    for (latent, beta), row in cells.iterrows():
        values = "  ".join(f"{row[(m, 'mean')]:>8.3f} ± {row[(m, 'std')]:<6.3f}" for m in METRICS)
        print(f"{latent:>6} {beta:>5}  {values}")

    print("\nbehavioral gain in rec_agreement over beta=1 (structure only), against the seed spread")
    for latent, group in frame.groupby("latent"):
        base = group[group["beta"] == 1.0]["rec_agreement"]
        for beta in sorted(set(group["beta"]) - {1.0}, reverse=True):
            other = group[group["beta"] == beta]["rec_agreement"]
            gain = other.mean() - base.mean()
            spread = max(base.std(), other.std())
            verdict = "larger than the spread" if gain > spread else "within the spread"
            print(f"  latent {latent:>3}, beta {beta}: gain {gain:+.3f}, spread {spread:.3f} -> {verdict}")

    probe = frame.groupby(["latent", "beta"])[["probe_r2", "probe_r2_later"]].mean()
    baseline = frame.reindex(columns=["baseline_r2", "baseline_r2_later"]).mean()  # results.csv before 2026-12-01: all
    print("\nprobe R² of test accuracy on held-out models, all / later rows: embedding vs weight statistics")
    for (latent, beta), row in probe.iterrows():
        print(f"  embedding, latent {latent:>3}, beta {beta}: {row['probe_r2']:.3f} / {row['probe_r2_later']:.3f}")
    print(
        f"  ridge on weight statistics (same rows): {baseline['baseline_r2']:.3f} / {baseline['baseline_r2_later']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--latents", default="2,8,16,32", help="latent widths per token, tight to generous")
    parser.add_argument("--betas", default=BETAS, help="loss.beta values; 1.0 (structure only) is the reference")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default="runs/structure_vs_behavior", help="run directories and results.csv")
    args = parser.parse_args()

    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    results = Path(args.out) / "results.csv"
    done = pd.read_csv(results) if results.is_file() else pd.DataFrame(columns=["latent", "beta", "seed"])
    jobs = [
        {"zoo": args.zoo, "latent": latent, "beta": beta, "seed": seed, "epochs": args.epochs, "threads": threads}
        for latent in map(int, args.latents.split(","))
        for beta in map(float, args.betas.split(","))
        for seed in range(args.seeds)
        if not ((done["latent"] == latent) & (done["beta"] == beta) & (done["seed"] == seed)).any()
    ]
    for job in jobs:
        job["out"] = f"{args.out}/l{job['latent']}-b{job['beta']}-s{job['seed']}"
    print(f"{len(done)} runs in {results}, {len(jobs)} to go", flush=True)
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for n, row in enumerate(pool.imap_unordered(one_run, jobs), 1):
            done = pd.concat([done, pd.DataFrame([row])], ignore_index=True) if len(done) else pd.DataFrame([row])
            results.parent.mkdir(parents=True, exist_ok=True)
            done.to_csv(results, index=False)  # after every run: a stopped benchmark resumes with what it lacks
            print(f"[{n}/{len(jobs)}] " + " ".join(f"{k}={row[k]:.3g}" for k in ("latent", "beta", *METRICS)))
    summarise(done.sort_values(["latent", "beta", "seed"]))


if __name__ == "__main__":
    main()
