"""Does Optuna + ASHA find a good config with fewer trial-epochs than random search?

Three searches over the default sweep's space on the default zoo, the same
trial budget and seeds, each a real `wsl sweep` on local Ray:

- `wsl`    : Optuna TPE + ASHA, ASHA-stopped trials told to the study as pruned (our fix);
- `stock`  : Ray's OptunaSearch + ASHA as shipped (stopped trials told as complete, truncated value);
- `random` : random search, no early stopping (every trial runs max_t epochs).

For each seed it prints the best objective each search reached, the
trial-epochs it spent, random search's best within that many trial-epochs
(the same compute), and how many trial-epochs it took to first reach random
search's best (results in the order the epochs arrived). The same two
figures again for the best *final* objective, a full-length trial's value
at its last epoch: the best of every epoch rewards epoch-to-epoch noise,
and random search sees the most epochs. The target is judged on the first.
From random search's table (every trial runs to the end) it also prints how
well the objective at ASHA's first rung ranks the final one (what ASHA
relies on), and, replaying Ray's own rung rule on that table, what ASHA's
stopping alone would spend on random search's very draws. With two seeds or
more, the same replay gives the target's chance level: how often random
draws under ASHA reach *another* seed's random best within 40%.

    python benchmarks/search_efficiency.py                     # 12 trials x 6 epochs, 2 seeds: about 50 min
    python benchmarks/search_efficiency.py --seeds 3 --trials 24   # RESULTS.md's first table: about 95 min
    python benchmarks/search_efficiency.py --trials 24 --max-t 18 --grace 2   # rungs 2, 6, 18: about 45 min a seed
    python benchmarks/search_efficiency.py --grace 2 --rf 2   # later first rung, gentler stopping
    python benchmarks/search_efficiency.py --first-seed 2 --searches wsl   # more seeds, without stock
    python benchmarks/search_efficiency.py --keep /tmp/se   # keep the tables: WSL_RESULTS=/tmp/se wsl results 'wsl-*'
    python benchmarks/search_efficiency.py --rf 4 --searches wsl --from /tmp/se   # other ASHA, same random runs
    python benchmarks/search_efficiency.py --trials 24 --max-t 18 --grace 2 --first-seed 2 --seeds 4 \
        --searches wsl --from /tmp/se   # every table kept already: prints in seconds

Target (issue 4): reach random search's best objective with <= 40% of its trial-epochs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from ray.tune.schedulers import TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from wsl.compose import load_yaml
from wsl.sweep.config import SweepConfig, upgrade

TARGET_SHARE = 0.4  # issue 4: reach random search's best within this share of its trial-epochs
NOISE_EPOCHS = 6  # the last epochs over which epoch_noise measures the objective's epoch-to-epoch change

SEARCHES = {
    "wsl": ["search.algorithm=optuna", "scheduler.kind=asha"],
    "stock": ["search.algorithm=optuna-stock", "scheduler.kind=asha"],
    "random": ["search.algorithm=random", "scheduler.kind=fifo"],
}


def run(search: str, seed: int, args, root: str) -> pd.DataFrame:
    """One sweep; its epochs table in arrival order."""
    name = f"{search}-{seed}"
    overrides = [
        f"zoo={Path(args.zoo).resolve()}",
        f"name={name}",
        f"search.seed={seed}",
        f"search.num_samples={args.trials}",
        "search.points_to_evaluate=[]",
        f"scheduler.max_t={args.max_t}",
        f"scheduler.grace_period={args.grace}",
        f"scheduler.reduction_factor={args.rf}",
        *SEARCHES[search],
    ]
    env = {**os.environ, "WSL_RESULTS": root, "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "wsl.cli", "sweep", *overrides], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:  # e.g. --keep on a folder that has this sweep already: say what wsl said
        sys.exit(f"wsl sweep {name} failed (exit {done.returncode}):\n{done.stderr.strip()}")
    return arrival_order(pd.read_parquet(Path(root) / name / "epochs.parquet"))


def arrival_order(epochs: pd.DataFrame) -> pd.DataFrame:
    return epochs.sort_values("reported_at", kind="stable", ignore_index=True)


def epochs_of(search: str, seed: int, args, root: str) -> pd.DataFrame:
    """A search's epochs table: kept under ``--from`` with the same settings, or run now."""
    kept = Path(args.tables_from or "") / f"{search}-{seed}"
    if args.tables_from and kept.is_dir():
        epochs = arrival_order(pd.read_parquet(kept / "epochs.parquet"))
        mismatch = settings_mismatch(kept, search, args)
        if search == "random" and len(epochs) != args.trials * args.max_t:
            mismatch = f"{len(epochs)} trial-epochs, not --trials x --max-t"
        if mismatch is None:
            return epochs
        print(f"{kept} has {mismatch}: running {search}-{seed} again", flush=True)
    return run(search, seed, args, root)


def settings_mismatch(directory: Path, search: str, args) -> str | None:
    """What in a kept sweep's config differs from this benchmark's settings (None: nothing that matters).

    Random search stops no trial, so ASHA's settings do not change its table: the same random runs
    serve as the reference for any ``--grace`` and ``--rf``.
    """
    cfg = load_yaml(directory / "sweep.yaml", SweepConfig, upgrade)
    kept = {"--trials": cfg.search.num_samples, "--max-t": cfg.scheduler.max_t}
    asked = {"--trials": args.trials, "--max-t": args.max_t}
    if search != "random":
        kept |= {"--grace": cfg.scheduler.grace_period, "--rf": cfg.scheduler.reduction_factor}
        asked |= {"--grace": args.grace, "--rf": args.rf}
    differ = [f"{flag} {kept[flag]}" for flag in asked if kept[flag] != asked[flag]]
    return ", ".join(differ) or None


def epochs_to_reach(objective: np.ndarray, target: float) -> int | None:
    """Trial-epochs spent until the running best of ``objective`` (arrival order) first reaches ``target``."""
    hits = np.flatnonzero(np.maximum.accumulate(objective) >= target)
    return int(hits[0]) + 1 if len(hits) else None


def final_objective(epochs: pd.DataFrame, max_t: int) -> np.ndarray:
    """The objective of each row that is a trial's last epoch at ``max_t``, -inf for every other row.

    The best of every epoch of every trial rewards noise: the objective moves by about 0.02 from one
    epoch to the next, and random search, which runs every trial to the end, sees the most epochs.
    A promotion would judge a config by where its full-length run ends, which this reads.
    """
    return np.where(epochs["epoch"] == max_t, epochs["objective"], -np.inf)


def full_trials(epochs: pd.DataFrame) -> pd.DataFrame:
    """The objective of every trial that ran every epoch: [trials, epochs], one column per epoch."""
    return epochs.pivot(index="trial_id", columns="epoch", values="objective").dropna()


def rung_rank_correlation(epochs: pd.DataFrame, rung: int) -> float:
    """Spearman correlation, across trials that ran every epoch, of the objective at ``rung`` and at the last epoch.

    ASHA keeps the trials that lead at a rung; that pays off only if leading
    there predicts leading at the end. Random search runs every trial to the
    end, so its table measures exactly that.
    """
    wide = full_trials(epochs)
    return float(wide[rung].corr(wide[wide.columns.max()], method="spearman"))


def epoch_noise(epochs: pd.DataFrame, last: int = NOISE_EPOCHS) -> float:
    """Standard deviation, across trials that ran every epoch, of the objective's change from one epoch to the
    next over the ``last`` epochs (averaged over those epochs): how much a single epoch's value is luck."""
    wide = full_trials(epochs)
    return float(wide.iloc[:, -last:].diff(axis=1).std().mean())


def winner_rank_at(epochs: pd.DataFrame, rung: int) -> tuple[int, int]:
    """Where the trial that is best at the end stood at ``rung``: (its rank there, 1 = first; trials).

    ASHA promotes the top 1/reduction_factor of a rung, so a winner ranked
    below that would have been stopped there: a good rank correlation
    overall does not guarantee that the very best trial survives.
    """
    wide = full_trials(epochs)
    winner = wide[wide.columns.max()].idxmax()
    return int(wide[rung].rank(ascending=False)[winner]), len(wide)


def asha_replay(epochs: pd.DataFrame, grace: int, rf: int, max_t: int) -> pd.DataFrame:
    """The rows of a full-length table that ASHA would have let run: Ray's own rung rule, replayed in arrival order.

    Run on random search's table, this separates the two halves of "Optuna + ASHA": what ASHA's stopping
    alone saves on the very same draws, and whether it would have kept their winner. A trial ASHA stops
    at a rung frees its slot for the next trial sooner, which shifts later arrivals but not their order.
    """
    bracket = _Bracket(min_t=grace, max_t=max_t, reduction_factor=rf, s=0)
    stopped: set[str] = set()
    keep = []
    for row in epochs.itertuples():
        keep.append(row.trial_id not in stopped)
        trial = SimpleNamespace(trial_id=row.trial_id)  # all that on_result reads of a Tune trial
        if keep[-1] and bracket.on_result(trial, row.epoch, row.objective) == TrialScheduler.STOP:
            stopped.add(row.trial_id)
    return epochs[keep]


def chance_hits(randoms: dict[int, pd.DataFrame], replayed: dict[int, pd.DataFrame]) -> tuple[int, int]:
    """In how many (reference, other) pairs of seeds random search's *other* draws, under the same ASHA
    (``replayed``: ``asha_replay`` of ``randoms``), reach the reference seed's random best within
    ``TARGET_SHARE`` of its trial-epochs: (hits, pairs).

    The chance level of the target: a search that proposes no better than random, with our stopping, and
    draws that differ from the reference's as an Optuna search's do.
    """
    hits = 0
    pairs = list(itertools.permutations(randoms, 2))
    for reference, other in pairs:
        reach = epochs_to_reach(replayed[other]["objective"].to_numpy(), randoms[reference]["objective"].max())
        hits += reach is not None and reach <= TARGET_SHARE * len(randoms[reference])
    return hits, len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--max-t", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run: first-seed .. first-seed+seeds-1")
    parser.add_argument(
        "--searches",
        nargs="+",
        choices=list(SEARCHES),
        default=list(SEARCHES),
        help="random always runs: the reference",
    )
    parser.add_argument("--grace", type=int, default=1, help="ASHA's first rung (epochs)")
    parser.add_argument("--rf", type=int, default=3, help="ASHA's reduction factor")
    parser.add_argument(
        "--from",
        dest="tables_from",
        help="a --keep folder: read the tables it holds for these settings instead of running those searches again",
    )
    parser.add_argument("--keep", help="write the sweeps' tables under this folder (default: a temporary one)")
    args = parser.parse_args()

    rows = []
    randoms, replayed = {}, {}
    with nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory() as root:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            searches = ["random", *(search for search in args.searches if search != "random")]
            runs = {search: epochs_of(search, seed, args, root) for search in searches}
            randoms[seed] = runs["random"]
            replayed[seed] = asha_replay(runs["random"], args.grace, args.rf, args.max_t)
            random_running_best = np.maximum.accumulate(runs["random"]["objective"].to_numpy())
            random_final = final_objective(runs["random"], args.max_t)
            for search, epochs in runs.items():
                reach = epochs_to_reach(epochs["objective"].to_numpy(), random_running_best[-1])
                final = final_objective(epochs, args.max_t)
                reach_final = epochs_to_reach(final, random_final.max())
                rows.append(
                    {
                        "seed": seed,
                        "search": search,
                        "best objective": epochs["objective"].max(),
                        "trial-epochs": len(epochs),
                        "random's best, same epochs": random_running_best[
                            min(len(epochs), len(random_running_best)) - 1
                        ],
                        "to reach random's best": reach,
                        "share of random's epochs": None if reach is None else reach / len(runs["random"]),
                        "best final objective": final.max(),
                        "to reach random's best final": reach_final,
                    }
                )
                print(rows[-1], flush=True)
            rho = rung_rank_correlation(runs["random"], args.grace)
            rank, trials = winner_rank_at(runs["random"], args.grace)
            print(f"seed {seed}: rank correlation of the objective at epoch {args.grace} and at the end: {rho:.2f};")
            print(f"        random search's best trial ranked {rank} of {trials} at epoch {args.grace};")
            print(
                f"        epoch-to-epoch change of its objective, last {NOISE_EPOCHS} epochs:"
                f" sd {epoch_noise(runs['random']):.3f}"
            )
            pruned = replayed[seed]
            reach = epochs_to_reach(pruned["objective"].to_numpy(), random_running_best[-1])
            print(
                f"        its own draws under this ASHA (replayed): {len(pruned)} trial-epochs"
                f" ({len(pruned) / len(runs['random']):.0%}), best {pruned['objective'].max():.3f},"
                f" its best reached after {reach}"
            )
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    summary = table.groupby("search").agg(
        best=("best objective", "mean"),
        epochs=("trial-epochs", "mean"),
        random_same_epochs=("random's best, same epochs", "mean"),
        reached=("to reach random's best", lambda s: f"{s.notna().sum()}/{len(s)}"),
        share=("share of random's epochs", "mean"),
        best_final=("best final objective", "mean"),
        reached_final=("to reach random's best final", lambda s: f"{s.notna().sum()}/{len(s)}"),
    )
    print()
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    if len(randoms) > 1:
        hits, pairs = chance_hits(randoms, replayed)
        print(
            f"\nchance level: random search's draws under the same ASHA (replayed) reach another seed's random best"
            f" within {TARGET_SHARE:.0%} of its trial-epochs in {hits} of {pairs} pairs of seeds"
        )
    if "wsl" not in args.searches:
        return
    ours, random = (table[table["search"] == search].set_index("seed") for search in ("wsl", "random"))
    for what, column in (("best", "to reach random's best"), ("best final objective", "to reach random's best final")):
        reach = ours[column]
        within = (reach <= TARGET_SHARE * random["trial-epochs"]).sum()
        print(
            f"\nclaim: wsl (Optuna+ASHA, pruned fix) reaches random search's {what} within {TARGET_SHARE:.0%} of its"
            f" trial-epochs in {within} of {len(reach)} seeds (at all in {reach.notna().sum()})"
        )
    print(f"target (judged on the first): <= {TARGET_SHARE:.0%}")


if __name__ == "__main__":
    main()
