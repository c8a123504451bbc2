"""Is the autoencoder faithful and predictive at once? A ladder of changes from the old default, 3 seeds each.

Each rung adds one change to the rung before it (``RUNGS``), from the
defaults before this ladder (``BEFORE``) to today's (the ``pooled`` rung);
``structure`` is the structure-only reference (beta 1 on the old default)
beside the ladder, and the ``BALANCE`` rungs try loss balances, distances,
probe inputs and sizes on top of the ``pooled`` rung. Every run is one
``wsl.train.train`` on the default zoo at the default budget (30 epochs), and
its final metrics are printed beside the three baselines on exactly the same
probe rows (ridge and boosting on weight statistics, boosting on metadata),
on all rows and on later rows (checkpoints at epoch >= 5, the papers'
protocol):

- probe R²: the SANE read-out (ridge on the mean latent token), all / later rows;
- agreement with working originals (test accuracy >= 0.5) and their
  reconstructed/original accuracy ratio; agreement with broken originals and
  their reconstructed accuracy beside their own (a reconstruction that
  repairs a broken model is unfaithful); the correlation of original and
  reconstructed accuracy across held-out models; the held-out structural loss.

It runs for about 3 minutes a run on 2 CPU cores (18 runs: about an hour).
Each finished run is appended to ``--out`` at once, and a re-run skips the
(rung, seed) pairs it holds, so an interrupted ladder resumes where it stopped.

    wsl zoo make                                          # once: the default zoo
    python benchmarks/autoencoder_quality.py              # the whole ladder, seeds 0 1 2
    python benchmarks/autoencoder_quality.py --rungs default structure --seeds 0
    python benchmarks/autoencoder_quality.py --rungs warmup kl "beta 0.5" --seeds 0   # balance rungs, one seed
    python benchmarks/autoencoder_quality.py --report     # print the table of what is recorded
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from wsl import table
from wsl.config import TrainConfig, flatten, with_values
from wsl.metrics import on_test
from wsl.train import train
from wsl.zoo.store import load_zoo

# The defaults before this ladder (until 2026-12-01), pinned: today's defaults are the ``pooled`` rung.
BEFORE = {"loss.resample": False, "tokens.width": 32, "model.pooled_head": False}
# Each rung: the rung before it plus these dotted overrides.
RUNGS = {
    "default": BEFORE,
    "resample": {"loss.resample": True},
    "row": {"tokens.width": "row"},
    "pooled": {"model.pooled_head": True},
}
# Beside the ladder: the structure-only reference on the old default, and the loss balance tried on the
# pooled rung (each: the pooled rung plus its own overrides), the search for a setting that is also faithful.
APART = {"structure": {**BEFORE, "loss.beta": 1.0}}
BALANCE = {
    "warmup": {"loss.warmup_epochs": 10},
    "beta 0.5": {"loss.beta": 0.5},
    "beta 1": {"loss.beta": 1.0},
    "kl": {"loss.distance": "kl"},
    "mix inputs": {"loss.probe_inputs": "mix"},
    "d96 latent96": {"model.d_model": 96, "model.latent_dim": 96},
    "d96 latent96 beta 0.9": {"model.d_model": 96, "model.latent_dim": 96, "loss.beta": 0.9},
    "width 32 beta 0.9": {"tokens.width": 32, "loss.beta": 0.9},
    "width 32 beta 0.99": {"tokens.width": 32, "loss.beta": 0.99},
    "width 32 beta 1": {"tokens.width": 32, "loss.beta": 1.0},
}
SHOWN = {
    "probe all": "probe_r2",
    "probe later": "probe_r2_later",
    "agree working": "rec_agreement_working",
    "ratio working": "rec_acc_ratio_working",
    "agree broken": "rec_agreement_broken",
    "rec acc broken": "rec_acc_broken",
    "orig acc broken": "orig_acc_broken",
    "acc corr": "rec_acc_corr",
    "val struct": "val_loss_struct",
    "minutes": "minutes",
}
BASELINES = ("baseline_r2", "boost_r2", "meta_r2", "baseline_r2_later", "boost_r2_later", "meta_r2_later")


def overrides(rung: str) -> dict:
    """The dotted overrides of ``rung``: its own and every ladder rung's before it (or as ``APART`` says)."""
    if rung in APART:
        return APART[rung]
    if rung in BALANCE:
        return {**overrides("pooled"), **BALANCE[rung]}
    names = list(RUNGS)
    return {k: v for name in names[: names.index(rung) + 1] for k, v in RUNGS[name].items()}


def run(rung: str, seed: int, zoo, threads: int) -> dict:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        cfg = with_values(TrainConfig(zoo=str(zoo.path), out=out, seed=seed, generate=0), overrides(rung))
        t0 = time.perf_counter()
        final = on_test(train(cfg, lambda metrics: None, zoo=zoo))  # the record reports the test models
        minutes = (time.perf_counter() - t0) / 60
    config = {f"config.{k}": str(v) for k, v in flatten(asdict(cfg)).items() if k not in ("out", "name")}
    return {"rung": rung, "seed": seed, **final, "minutes": minutes, **config}


def report(frame: pd.DataFrame) -> None:
    order = [r for r in (*RUNGS, *APART, *BALANCE) if r in set(frame["rung"])]
    print(f"{'rung':<22} {'seeds':>5} " + " ".join(f"{name:>16}" for name in SHOWN))
    for rung in order:
        rows = frame[frame["rung"] == rung]
        cells = [f"{rows[c].mean():>7.3f} ± {rows[c].std(ddof=0):<6.3f}" for c in SHOWN.values()]
        print(f"{rung:<22} {len(rows):>5} " + " ".join(cells))
    base = frame[list(BASELINES)].mean()
    print(
        "\nbaselines on the same rows (all / later): "
        f"ridge on statistics {base['baseline_r2']:.3f} / {base['baseline_r2_later']:.3f}, "
        f"boosting on statistics {base['boost_r2']:.3f} / {base['boost_r2_later']:.3f}, "
        f"boosting on metadata {base['meta_r2']:.3f} / {base['meta_r2_later']:.3f}"
    )
    halfway = (base["baseline_r2_later"] + base["boost_r2_later"]) / 2
    print(
        f"targets: probe all >= {base['baseline_r2']:.3f} (ridge), probe later >= {halfway:.3f} (halfway to boosting); "
        "agreement working >= 0.85 at ratio in [0.97, 1.03]; broken rec acc within 0.05 of their own; "
        "agreement broken >= structure's"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--rungs", nargs="+", default=[*RUNGS, *APART], choices=[*RUNGS, *APART, *BALANCE])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default="benchmarks/data/autoencoder_quality.parquet")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="only print the table of what --out holds")
    args = parser.parse_args()
    out = Path(args.out)
    done = pd.read_parquet(out) if out.is_file() else pd.DataFrame(columns=["rung", "seed"])
    if not args.report:
        zoo = load_zoo(args.zoo)
        for rung in args.rungs:
            for seed in args.seeds:
                if ((done["rung"] == rung) & (done["seed"] == seed)).any():
                    continue
                row = run(rung, seed, zoo, args.threads)
                done = pd.concat([done, pd.DataFrame([row])], ignore_index=True) if len(done) else pd.DataFrame([row])
                table.write(out, done)
                print(
                    f"{rung} seed {seed}: probe {row['probe_r2']:.3f}, agree working "
                    f"{row['rec_agreement_working']:.3f}, {row['minutes']:.1f} min",
                    flush=True,
                )
    report(done[done["rung"].isin(args.rungs) & done["seed"].isin(args.seeds)])


if __name__ == "__main__":
    main()
