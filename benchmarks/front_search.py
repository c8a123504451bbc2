"""Does a multi-objective search map the front with less compute than random search? A replay over paired seeds.

The same replay as ``search_efficiency.py`` (``wsl.sweep.replay.simulate``:
the real searchers and schedulers, a surrogate's curves plus one run's seed
noise, ``search.max_concurrent`` trials at a time on a clock of the recorded
epoch seconds), on two objectives, ``rec_agreement`` and ``probe_r2`` (issue 29):
a surrogate of ``benchmarks/data/curves-val.parquet`` (the record on validation figures, the
ones a sweep decides on: its replayed fronts are in a real sweep's units) predicts both curves, and
the time. ``--record benchmarks/data/curves.parquet`` replays the older record on test figures.

Protocol:
- the surrogate is checked first, per objective, on held-out configs
  (10-fold): mean absolute error at most ``BAR_NOISE`` times one run's seed noise
  and Spearman at least ``BAR_SPEARMAN`` (0.7, not search_efficiency's 0.8:
  ``rec_agreement`` varies little between configs against one run's noise:
  its held-out Spearman was 0.75 on the test-figure record, where two seeds of
  the same 21 repeated configs agree at 0.86; 0.81 on curves-val, 0.90);
- what a search returns is its front: among the trials that reached
  ``max_t``, those no other beats on both objectives as reported at their last
  epoch (``wsl results`` ranks them so). It is judged by the *true* values of
  those configs (the surrogate's mean final figures): the hypervolume they
  dominate above ``REFERENCE``, a point below every front's points (fixed with the first record);
- per seed, the target is the judged hypervolume of random search without
  early stopping at its full budget (its own draws: a seed no tested setting
  uses); the compute a setting needs to first reach it, as a share of random
  search's trial-epochs and simulated seconds (``inf``: never);
- printed: median with a 95% bootstrap interval, share of seeds within 35%,
  whole-search spend, the judged hypervolume at the end and at the compute
  multi-objective TPE + ASHA spends (the weighted-sum sweep's at equal
  compute), paired Wilcoxon tests, and the 5-95% bands a real sweep of a
  setting should land in (trial-epochs; hypervolume of its front's *reported*
  figures, the one a real sweep can compute: ``--validate`` prints a real one's).

Settings: multi-objective TPE + multi-objective ASHA (``tpe+moasha``: what
``objective=[rec_agreement,probe_r2]`` runs), random draws under the same ASHA
(Syne Tune's MOASHA: random proposals, a rung ranked by non-dominated sorting
then an epsilon-net; ours, ``wsl/sweep/moasha.py``, since Syne Tune 0.16's
decides otherwise than its own design in 38% of decisions: tests/test_moasha.py),
NSGA-II under it, TPE and random without stopping, and today's weighted-sum
TPE + ASHA (``0.5*rec_agreement + 0.5*probe_r2``; judged by the same rule on
the figures its trials recorded). Then what a multi-objective study is told of
a trial ASHA stopped (it holds no intermediate values): pruned (what a sweep
does), complete with its rung's values (Ray's stock ``OptunaSearch``), or
nothing (the trial stays running in the study).

    # 40 report seeds at sweep=front's setting (--tune's pick on the test-figure record): 31 s; RESULTS.md, "The front"
    python benchmarks/front_search.py --png benchmarks/data/front_anytime.png   # sweep=front's ASHA, trials, start-up
    python benchmarks/front_search.py --tune        # ASHA, trials and start-up of tpe+moasha on seeds 0-29: 8 min
    python benchmarks/front_search.py --validate benchmarks/data/sweeps/front-1   # a real sweep against the replay

NSGA-II under ASHA draws at random at this budget: a generation (16 trials)
needs complete ones, and few reach ``max_t``.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr, wilcoxon
from search_efficiency import GRID, _seeds, bootstrap, replay_own, write_curves

from wsl import pareto, table
from wsl.compose import load_config, load_yaml
from wsl.sweep.config import SweepConfig, searched, upgrade
from wsl.sweep.replay import Setting, Surrogate, simulate

OBJECTIVES = ("rec_agreement", "probe_r2")
REFERENCE = np.array([0.1, 0.2])  # below any front: the worst configs (0.12, 0.18 on curves-val) are on none
BAR_SPEARMAN, BAR_NOISE = 0.7, 2.0
WITHIN = 0.35  # the target: median share of random search's trial-epochs
TUNE_SEEDS, REPORT_SEEDS = "0-29", "100-139"
MAIN, RANDOM_ASHA, WEIGHTED = "tpe+moasha", "random+moasha", "weighted tpe+asha"


@dataclass(frozen=True)
class Search:
    """A setting, and whether it searches the weighted sum instead of the two objectives."""

    setting: Setting
    weighted: bool = False


SEARCHES = {
    MAIN: Search(Setting("optuna")),
    RANDOM_ASHA: Search(Setting("random")),
    "nsga2+moasha": Search(Setting("nsga2")),
    "tpe": Search(Setting("optuna", asha=False)),
    "random": Search(Setting("random", asha=False)),
    WEIGHTED: Search(Setting("optuna"), weighted=True),
    "tpe+moasha told complete": Search(Setting("optuna-stock")),
    "tpe+moasha untold": Search(Setting("optuna-untold")),
}


def check_surrogate(model: Surrogate) -> list[tuple[str, float, float, float]]:
    """Per objective, held-out error of the final figure (10-fold): (name, Spearman, MAE, one run's noise MAE)."""
    held = model.held_out()
    out = []
    for j, name in enumerate(model.metrics):
        predicted, recorded = held[:, j, -1], model.curves[:, j, -1]
        noise = float(np.abs(model.noise[:, j, -1]).mean())
        rho = float(spearmanr(predicted, recorded).statistic)
        out.append((name, rho, float(np.abs(predicted - recorded).mean()), noise))
    return out


def front_curve(epochs: pd.DataFrame, model: Surrogate, max_t: int) -> tuple[np.ndarray, np.ndarray]:
    """After each arriving epoch [len(epochs)]: the judged hypervolume of what the search would return now (the
    true mean final figures of its front), and the hypervolume of that front's reported figures."""
    keys = list(searched(model.params))
    configs = epochs.groupby("trial").first()[keys].to_dict("index")  # keeps integers integers
    truth = {t: [model.mean(c)[0][o][-1] for o in OBJECTIVES] for t, c in configs.items()}
    finished, reported = [], []
    judged, seen = np.zeros(len(epochs)), np.zeros(len(epochs))
    for i, (trial, epoch, *figures) in enumerate(epochs[["trial", "epoch", *OBJECTIVES]].itertuples(index=False)):
        if epoch == max_t:
            finished.append(trial)
            reported.append(figures)
            front = pareto.on_front(np.array(reported))
            judged_now = pareto.hypervolume(np.array([truth[t] for t in finished])[front], REFERENCE)
            seen_now = pareto.hypervolume(np.array(reported)[front], REFERENCE)
        judged[i], seen[i] = (judged_now, seen_now) if finished else (0.0, 0.0)
    return judged, seen


def one_seed(seed: int, cfgs: dict[bool, SweepConfig], model: Surrogate, searches: dict[str, Search]) -> dict:
    """Per search: the share of random search's trial-epochs and seconds to reach its full-budget judged
    hypervolume, what it spent, its judged hypervolume at the end and on ``GRID``, its front's reported one."""
    max_t = cfgs[False].scheduler.max_t
    reference = simulate(cfgs[False], SEARCHES["random"].setting, model.source(seed), seed + 10_000)
    target = front_curve(reference, model, max_t)[0][-1]
    epochs_total, seconds_total = len(reference), reference["time_s"].max()
    out = {"seed": seed, "target": target}
    for name, s in searches.items():
        epochs = simulate(cfgs[s.weighted], s.setting, model.source(seed + 1_000_000), seed)
        judged, seen = front_curve(epochs, model, max_t)
        reached = np.flatnonzero(judged >= target - 1e-12)
        hit = reached[0] if len(reached) else None
        out[f"{name} epochs"] = (hit + 1) / epochs_total if hit is not None else np.inf
        out[f"{name} seconds"] = epochs["time_s"].iloc[hit] / seconds_total if hit is not None else np.inf
        out[f"{name} hv"] = judged[-1]
        out[f"{name} reported hv"] = seen[-1]
        out[f"{name} trial-epochs"] = len(epochs)
        out[f"{name} at max_t"] = int((epochs["epoch"] == max_t).sum())
        out[f"{name} spent epochs"] = len(epochs) / epochs_total
        out[f"{name} spent seconds"] = epochs["time_s"].max() / seconds_total
        spent = np.arange(1, len(judged) + 1) / epochs_total
        last = np.searchsorted(spent, GRID, side="right") - 1  # the last epoch within each share; -1: none yet
        out[f"{name} anytime"] = np.where(last >= 0, judged[np.maximum(last, 0)], 0.0).tolist()
    return out


def at_share(frame: pd.DataFrame, name: str, shares: np.ndarray) -> np.ndarray:
    """Each seed's judged hypervolume of ``name`` once it has spent ``shares`` [seeds] of random's trial-epochs."""
    curves = np.array(frame[f"{name} anytime"].tolist())  # [seeds, GRID]
    index = np.clip(np.searchsorted(GRID, shares, side="right") - 1, 0, len(GRID) - 1)
    return curves[np.arange(len(frame)), index]


def paired(a: np.ndarray, b: np.ndarray, what: str) -> str:
    """Two-sided Wilcoxon signed-rank of paired ``a`` and ``b``, with the median difference."""
    p = wilcoxon(a, b, zero_method="zsplit").pvalue if (a != b).any() else 1.0
    return f"{what}: median difference {np.median(a - b):+.4f}, p = {p:.3g} (Wilcoxon, two-sided, {len(a)} seeds)"


def report(frame: pd.DataFrame, names: list[str]) -> None:
    print(
        f"\n{len(frame)} seeds; target: random search's full-budget judged hypervolume (median "
        f"{frame['target'].median():.4f}); share of random's compute to reach it (inf: never); "
        "hv: judged at the end (medians)"
    )
    print(f"{'search':<26} {'unit':<8} {'median':>7} {'95% interval':>16} {'within 35%':>10} {'spent':>6} {'hv':>7}")
    for name in names:
        for unit in ("epochs", "seconds"):
            v = frame[f"{name} {unit}"].to_numpy()
            lo, hi = bootstrap(v, np.median)
            print(
                f"{name:<26} {unit:<8} {np.median(v):>7.2f} {f'[{lo:.2f}, {hi:.2f}]':>16} "
                f"{(v <= WITHIN).mean():>10.0%} {frame[f'{name} spent {unit}'].median():>6.2f} "
                f"{frame[f'{name} hv'].median():>7.4f}"
            )
    area = {name: np.array(frame[f"{name} anytime"].tolist()).mean(axis=1) for name in names}
    print("\nany-time judged hypervolume (its mean over shares 2.5-100% of random's trial-epochs), paired by seed:")
    for a, b in ((MAIN, RANDOM_ASHA), (MAIN, "nsga2+moasha"), (MAIN, "tpe")):
        if a in names and b in names:
            print("  " + paired(area[a], area[b], f"{a} against {b}"))
    if WEIGHTED in names:
        spent = frame[f"{MAIN} spent epochs"].to_numpy()
        weighted = at_share(frame, WEIGHTED, spent)
        print(
            f"\n{WEIGHTED} at the compute {MAIN} spends (median {np.median(spent):.2f} of random's): judged "
            f"hypervolume median {np.median(weighted):.4f} against {frame[f'{MAIN} hv'].median():.4f}"
        )
        print("  " + paired(frame[f"{MAIN} hv"].to_numpy(), weighted, f"{MAIN} against {WEIGHTED}, equal compute"))
    told = [n for n in (MAIN, "tpe+moasha told complete", "tpe+moasha untold") if n in names]
    if len(told) == 3:
        print("\nwhat the study is told of a stopped trial (pruned: what a sweep does), final judged hypervolume:")
        for other in told[1:]:
            print("  " + paired(frame[f"{MAIN} hv"].to_numpy(), frame[f"{other} hv"].to_numpy(), f"pruned - {other}"))
    print("\nwhere a real sweep should land (5-95% over the seeds; `--validate` prints a real one's)")
    for name in names:
        epochs = np.percentile(frame[f"{name} trial-epochs"], [5, 95])
        seen = np.percentile(frame[f"{name} reported hv"], [5, 95])
        done = np.percentile(frame[f"{name} at max_t"], [5, 95])
        print(
            f"{name:<26} trial-epochs {epochs[0]:.0f}-{epochs[1]:.0f}, {done[0]:.0f}-{done[1]:.0f} trials to max_t, "
            f"its front's reported hv {seen[0]:.4f}-{seen[1]:.4f}"
        )


def anytime_png(frame: pd.DataFrame, names: list[str], path: str) -> None:
    """Median any-time judged hypervolume over seeds, as a share of the seed's target, against compute."""
    targets = frame["target"].to_numpy()[:, None]
    medians = {name: np.median(np.array(frame[f"{name} anytime"].tolist()) / targets, axis=0) for name in names}
    target = "random search's full-budget hypervolume"
    write_curves(medians, "median judged hypervolume / random's full-budget one", path, target)


GRID_TUNE = {"grace_period": (1, 2, 3), "reduction_factor": (2, 3, 4), "samples": (24, 48, 72)}
GRID_MORE = {"startup": (4, 8, 16), "brackets": (1, 2)}  # then on the best of GRID_TUNE


def tune(cfgs: dict[bool, SweepConfig], model: Surrogate, seeds: list[int], jobs: int) -> None:
    """On the tuning ``seeds``: every combination of ``GRID_TUNE`` for tpe+moasha, then ``GRID_MORE`` on the best;
    best first (median share of random's trial-epochs, then the judged hypervolume at the end), among the settings
    whose whole search spends at most random search's budget (median): a bigger one buys its share with more draws."""
    best = _ranked(cfgs, model, seeds, jobs, GRID_TUNE, {})
    _ranked(cfgs, model, seeds, jobs, GRID_MORE, best)


def _ranked(cfgs, model: Surrogate, seeds: list[int], jobs: int, grid: dict, base: dict) -> dict:
    combos = [{**base, **dict(zip(grid, values, strict=True))} for values in itertools.product(*grid.values())]
    searches = {str(c): Search(Setting("optuna", **c)) for c in combos}
    with mp.get_context("fork").Pool(jobs) as pool:
        frame = pd.DataFrame(pool.map(partial(one_seed, cfgs=cfgs, model=model, searches=searches), seeds))
    rows = sorted(
        (np.median(frame[f"{n} epochs"]), -frame[f"{n} hv"].median(), frame[f"{n} spent epochs"].median(), i)
        for i, n in enumerate(searches)
    )
    print(f"{len(seeds)} tuning seeds, {len(searches)} settings of {MAIN}; median share of random's trial-epochs")
    for median, hv, spent, i in rows[:12]:
        print(f"  {median:.2f}  hv {-hv:.4f}  spent {spent:.2f}  {combos[i]}")
    return combos[next(i for *_, spent, i in rows if spent <= 1.0)]


def validate(directory: Path, model: Surrogate) -> None:
    """A real sweep's figures, to hold against the bands: its trial-epochs and its front's reported hypervolume;
    then whether the replay's machinery and its curves stand for this sweep (``loop_check``, ``drift``)."""
    trials, epochs = table.read_trials(directory), table.read_epochs(directory)
    cfg = load_yaml(directory / table.SWEEP_FILE, SweepConfig, upgrade)
    max_t = cfg.scheduler.max_t
    last = epochs[epochs["epoch"] == max_t]
    points = last[list(OBJECTIVES)].to_numpy()
    front = pareto.on_front(points)
    print(
        f"{directory.name}: {len(epochs)} trial-epochs, {len(trials)} trials, {len(last)} to epoch {max_t}; "
        f"its front ({int(front.sum())} trials) has reported hv {pareto.hypervolume(points[front], REFERENCE):.4f}"
    )
    loop_check(cfg, trials, epochs)
    drift(model, trials, epochs, max_t)


def loop_check(cfg: SweepConfig, trials: pd.DataFrame, epochs: pd.DataFrame) -> None:
    """The sweep's own proposals and recorded curves replayed under its own multi-objective ASHA should end every
    trial where the sweep ended it; where they do, a figure outside the bands comes from the curves."""
    max_t = cfg.scheduler.max_t
    replayed, finished = replay_own(cfg, trials, epochs, Setting(cfg.search.algorithm))
    ended = replayed.groupby("trial")["epoch"].max().to_numpy()
    ran = finished["epochs"].to_numpy()
    print(
        f"  replayed on its own proposals and curves: {(ended == ran).mean():.0%} of {len(ran)} finished trials "
        f"end where the sweep ended them; {int((ended == max_t).sum())} reach epoch {max_t} (the sweep: "
        f"{int((ran == max_t).sum())})"
    )


def drift(model: Surrogate, trials: pd.DataFrame, epochs: pd.DataFrame, max_t: int) -> None:
    """How far the sweep's figures lie from the surrogate's means for the same configs and epochs: near 0 where
    the record stands for the sweep (same split, same training)."""
    keys = list(searched(model.params))
    configs = trials.set_index("trial_id")[keys]
    epochs = epochs[epochs["trial_id"].isin(configs.index)]
    gaps = []  # [trial-epochs, objectives]
    for row in epochs.itertuples(index=False):
        mean = model.mean({k: table.cell(v) for k, v in configs.loc[row.trial_id].items()})[0]
        gaps.append([getattr(row, o) - mean[o][row.epoch - 1] for o in OBJECTIVES])
    gaps, at_end = np.array(gaps), (epochs["epoch"] == max_t).to_numpy()
    medians = [
        f"{o} {np.median(gaps[:, j]):+.3f} ({np.median(gaps[at_end, j]):+.3f})" for j, o in enumerate(OBJECTIVES)
    ]
    print(f"  its figures minus the surrogate's means, median over its trial-epochs (at max_t): {', '.join(medians)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", default="benchmarks/data/curves-val.parquet")
    parser.add_argument("--seeds", default=None, help=f"a-b or a,b,c (default {REPORT_SEEDS}; --tune: {TUNE_SEEDS})")
    parser.add_argument("--grace", type=int, default=None, help="ASHA's grace period (default: sweep=front's)")
    parser.add_argument("--rf", type=int, default=None, help="ASHA's reduction factor (default: sweep=front's)")
    parser.add_argument("--startup", type=int, default=None, help="TPE's and NSGA-II's random start-up trials")
    parser.add_argument("--brackets", type=int, default=None)
    parser.add_argument("--samples", type=int, default=None, help="trials of the searches under ASHA")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--anyway", action="store_true", help="run the replay even below the surrogate's bar")
    parser.add_argument("--out", default=None, help="write the per-seed table here (parquet)")
    parser.add_argument("--png", default=None, help="draw the any-time curves here (needs Chrome/Chromium)")
    parser.add_argument("--tune", action="store_true", help="search GRID_TUNE on --seeds (tuning seeds) instead")
    parser.add_argument(
        "--validate",
        nargs="+",
        metavar="DIR",
        help="instead: these real sweeps' figures, their loop check and drift from the surrogate",
    )
    args = parser.parse_args()
    cfgs = {
        weighted: load_config(
            "sweep", ["sweep=benchmark", *([] if weighted else [f"objective=[{','.join(OBJECTIVES)}]"])], SweepConfig
        )
        for weighted in (False, True)
    }
    model = Surrogate(table.read(args.record), cfgs[False].params(), metrics=OBJECTIVES)
    ok = True
    for name, rho, mae, noise in check_surrogate(model):
        met = rho >= BAR_SPEARMAN and mae <= BAR_NOISE * noise
        ok &= met
        print(
            f"surrogate, {name}, {len(model.ids)} configs: held-out Spearman {rho:.3f} (bar {BAR_SPEARMAN}), MAE "
            f"{mae:.4f} against one run's noise {noise:.4f} (bar {BAR_NOISE}x): {'met' if met else 'NOT met'}"
        )
    if not ok and not args.anyway:
        raise SystemExit("the surrogate is below its bar: record more configs (record_curves.py --configs N)")
    if args.validate:
        for name in args.validate:
            validate(Path(name) if Path(name).is_dir() else table.results_root() / name, model)
        return
    seeds = _seeds(args.seeds or (TUNE_SEEDS if args.tune else REPORT_SEEDS))
    if args.tune:
        return tune(cfgs, model, seeds, args.jobs)
    front = load_config("sweep", ["sweep=front"], SweepConfig)  # the defaults: what `wsl sweep sweep=front` runs
    tuned = dict(
        grace_period=args.grace or front.scheduler.grace_period,
        reduction_factor=args.rf or front.scheduler.reduction_factor,
        brackets=args.brackets or front.scheduler.brackets,
        startup=args.startup or front.search.startup,
        samples=args.samples or front.search.num_samples,
    )
    searches = {
        n: replace(s, setting=replace(s.setting, **tuned)) if s.setting.asha else s for n, s in SEARCHES.items()
    }
    with mp.get_context("fork").Pool(args.jobs) as pool:
        frame = pd.DataFrame(pool.map(partial(one_seed, cfgs=cfgs, model=model, searches=searches), seeds))
    if args.out:
        table.write(args.out, frame.drop(columns=[c for c in frame if c.endswith(" anytime")]))
    report(frame, list(searches))
    if args.png:
        anytime_png(frame, [MAIN, RANDOM_ASHA, "nsga2+moasha", "tpe", "random", WEIGHTED], args.png)


if __name__ == "__main__":
    main()
