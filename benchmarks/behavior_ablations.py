"""Why the behavioral loss does not give faithful reconstructions here: ablations at a tight latent.

`structure_vs_behavior.py` found that at tight latents `beta=0.1` raises
`rec_agreement` well beyond the seed spread but pushes `rec_acc_ratio` above 1:
reconstructions become *better* than their originals. This script tests the
explanation that the decoder learns one generic good network instead of each
model, and the knobs the issue names (component scaling, learning rate, probe
inputs, training length, warm-starting from a structural run), 3 seeds each,
at latent width 16, where structure alone falls short (the default is 32).

Two diagnostics next to the usual metrics, on the final held-out test models:
- `acc_corr`: Pearson correlation of original and reconstructed test accuracy
  across models. A faithful autoencoder keeps it near 1; a collapsed one near 0.
- `sameness`: mean pairwise agreement of the reconstructed models with each
  other, minus that of the originals. Near 0: as diverse as the zoo; large:
  the reconstructions are one function.

    wsl zoo make                                             # once: the default zoo
    python benchmarks/behavior_ablations.py --jobs 9         # GPU machine, 16 cores: about 8 min
    python benchmarks/behavior_ablations.py --latent 32 --beta 0.9 --variants struct-long,warm,long --jobs 9
    python benchmarks/behavior_ablations.py --epochs 4 --seeds 1 --variants struct,behav   # CPU smoke: ~3 min

Runs are independent processes (`--jobs`); each uses cuda when there is one.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wsl.config import OptimConfig, TrainConfig
from wsl.evaluate import decode_rows, final_rows, run_models
from wsl.losses import LossConfig
from wsl.metrics import on_test
from wsl.model import ModelConfig
from wsl.run import load_run
from wsl.train import train
from wsl.zoo.arch import forward

# name -> (loss overrides, optim overrides, epochs of a structure-only warm start before them)
VARIANTS = {
    "struct": ({"beta": 1.0}, {}, 0),
    "behav": ({}, {}, 0),
    "kl": ({"distance": "kl"}, {}, 0),
    "noise-probe": ({"probe_inputs": "noise"}, {}, 0),
    "unscaled": ({"scale_by_first": False}, {}, 0),
    "low-lr": ({}, {"lr": 3e-4}, 0),
    "long": ({}, {"epochs_factor": 2}, 0),
    "struct-long": ({"beta": 1.0}, {"epochs_factor": 2}, 0),
    "warm": ({}, {}, 1),
}
METRICS = ("rec_acc_ratio", "rec_agreement", "acc_corr", "sameness", "probe_r2")


def one_run(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    loss, optim, warm = VARIANTS[job["variant"]]
    epochs = job["epochs"] * optim.get("epochs_factor", 1)
    lr = optim.get("lr", OptimConfig().lr)
    cfg = TrainConfig(
        zoo=job["zoo"],
        out=job["out"],
        seed=job["seed"],
        generate=0,
        model=ModelConfig(latent_dim=job["latent"]),
        loss=replace(LossConfig(), **{"beta": job["beta"], **loss}),
        optim=OptimConfig(epochs=epochs, lr=lr),
    )
    if warm:  # `epochs` of structure only, then as many again with the behavioral loss, same optimiser state
        train(replace(cfg, loss=replace(cfg.loss, beta=1.0)), lambda m: None)
        cfg = replace(cfg, optim=replace(cfg.optim, epochs=2 * epochs))
    final = on_test(train(cfg, lambda m: None, resume=bool(warm)))  # the record reports the test models
    return {**job, **{k: final[k] for k in ("rec_acc_ratio", "rec_agreement", "probe_r2")}, **diagnose(cfg)}


@torch.no_grad()
def diagnose(cfg: TrainConfig) -> dict[str, float]:
    """``acc_corr`` and ``sameness`` (see the module docstring) of the trained run in ``cfg.out``."""
    run = load_run(cfg.out)
    data, lay, device = run.data(), run.lay, run.device
    rows = final_rows(data, "test")
    acts = list(data.activations[rows])
    original = {k: v[rows].to(device) for k, v in data.zoo.weights.items()}
    rebuilt = decode_rows(run.model, data, rows)
    accs = [run_models(lay.arch, p, acts, data.task)["acc"] for p in (original, rebuilt)]
    x = data.task.x_test.to(device)
    same = [_pairwise_agreement(forward(lay.arch, p, x, acts).argmax(-1)) for p in (original, rebuilt)]
    return {"acc_corr": float(np.corrcoef(accs[0], accs[1])[0, 1]), "sameness": same[1] - same[0]}


def _pairwise_agreement(pred: torch.Tensor) -> float:
    """Mean over pairs i != j of the share of inputs where models i and j predict the same class; pred [N, X]."""
    n = len(pred)
    agree = (pred[:, None, :] == pred[None, :, :]).double().mean(-1)
    return float((agree.sum() - n) / (n * (n - 1)))


def summarise(frame: pd.DataFrame) -> None:
    cells = frame.groupby("variant", sort=False)[list(METRICS)].agg(["mean", "std"])
    latent, beta = frame["latent"].iloc[0], frame["beta"].iloc[0]
    print(f"\nlatent {latent}, behavioral beta {beta}, mean ± std over seeds (final held-out test models)")
    print(f"{'variant':<12}  " + "  ".join(f"{m:>16}" for m in METRICS))
    for variant, row in cells.iterrows():
        print(f"{variant:<12}  " + "  ".join(f"{row[(m, 'mean')]:>7.3f} ± {row[(m, 'std')]:<6.3f}" for m in METRICS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--latent", type=int, default=16, help="where structure alone falls short")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--beta", type=float, default=LossConfig().beta, help="beta of the behavioral variants")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="base budget; long variants get twice, warm gets 2x")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default="runs/behavior_ablations", help="run directories and results.csv")
    args = parser.parse_args()

    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    jobs = [
        {"zoo": args.zoo, "latent": args.latent, "beta": args.beta, "variant": v, "seed": s, "epochs": args.epochs}
        for v in variants
        for s in range(args.seeds)
    ]
    for job in jobs:
        job.update(threads=threads, out=f"{args.out}/{job['variant']}-s{job['seed']}")
    jobs.sort(key=lambda job: -_cost(job["variant"]))  # longest first keeps the pool busy to the end
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        rows = []
        for row in pool.imap_unordered(one_run, jobs):
            rows.append(row)
            print(f"[{len(rows)}/{len(jobs)}] {row['variant']} seed {row['seed']}: " + _fmt(row), flush=True)
    frame = pd.DataFrame(rows)
    frame["variant"] = pd.Categorical(frame["variant"], variants)
    frame = frame.sort_values(["variant", "seed"])
    Path(args.out).mkdir(parents=True, exist_ok=True)
    frame.to_csv(f"{args.out}/results.csv", index=False)
    summarise(frame)


def _cost(variant: str) -> int:
    loss, optim, warm = VARIANTS[variant]
    return optim.get("epochs_factor", 1) * (1 + warm)


def _fmt(row: dict) -> str:
    return " ".join(f"{m}={row[m]:.3f}" for m in METRICS)


if __name__ == "__main__":
    main()
