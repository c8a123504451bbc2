"""Does the shipped search reach random search's best with less compute? A replay over many paired seeds.

Every search runs on ``wsl.sweep.replay.simulate``: the real searchers (our
pruned-aware ``OptunaSearch``, the stock one, random draws) and Ray's
``ASHAScheduler``, with each proposed config's learning curve answered by a
surrogate (random forests) of the record ``benchmarks/record_curves.py``
writes (plus one run's seed noise), ``search.max_concurrent`` trials at a time
on a clock of the recorded epoch seconds.

Protocol (issue 21):
- the surrogate's accuracy is checked first, on held-out configs (10-fold),
  against the seed-to-seed noise of the repeated configs: the bar is
  fixed here (``BAR_SPEARMAN``, ``BAR_NOISE``) and the replay refuses to run
  below it (``--anyway`` runs it all the same, for a look);
- per seed, the target is what random search without early stopping
  promotes (``wsl promote``'s rule: the ended trial with the best objective
  over its epochs), judged by the surrogate's mean final objective of that
  config, with the same trial count; every setting is judged the same way,
  whatever its own smoothing, any time: the config it would promote now;
- the compute a setting needs to first reach the target, as a share of
  random search's (trial-epochs, and simulated seconds); a search that never
  reaches it counts as needing more than 100% (``inf``: the median is
  defined; the interquartile mean is ``inf`` when a quarter or more of the
  seeds never reach it, and it is printed so);
- printed: median, interquartile mean with a 95% bootstrap interval, share
  of seeds within 40%, any-time regret curves (``--png``), and Wilcoxon signed-rank tests of the pruned-aware
  search against the stock one and of TPE under ASHA against random draws
  under the same ASHA, and per setting the 5-95% band of a real sweep's
  trial-epochs and promoted objective (``--validate`` prints a real one's).

    python benchmarks/record_curves.py            # a record (hours on 2 cores): today's, on validation figures
    # (curves-val.parquet; --record it); the default below is the older one on test figures, curves.parquet
    python benchmarks/search_efficiency.py --png anytime.png   # 40 report seeds, six searches: about 1 min
    python benchmarks/search_efficiency.py --tune              # tune TPE+ASHA's setting on seeds 0-29 ...
    python benchmarks/search_efficiency.py --grace 1 --rf 2 --smoothing best   # ... a setting on the report seeds
    python benchmarks/search_efficiency.py --warm-from benchmarks/data/sweeps/bench-shapes   # + warm from another zoo
    python benchmarks/search_efficiency.py --validate benchmarks/data/sweeps/bench-1   # a real sweep (sweep=benchmark)
    python benchmarks/search_efficiency.py --validate my-sweep --rf 2   # your own sweep under other ASHA settings
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr, wilcoxon

from wsl import table
from wsl.compose import load_config, load_yaml
from wsl.metrics import OBJECTIVE
from wsl.sweep import warmstart
from wsl.sweep.config import SweepConfig, searched, upgrade
from wsl.sweep.replay import Setting, Surrogate, recorded, simulate, warm_trials

BAR_SPEARMAN = 0.8  # rank correlation of predicted and recorded final objective on held-out configs, at least
BAR_NOISE = 2.0  # held-out mean absolute error at most this many times one run's seed noise
WITHIN = 0.4  # the target share of random search's compute
TUNE_SEEDS, REPORT_SEEDS = "0-29", "100-139"  # settings are chosen on the first, the figures come from the second

WARM = "tpe+asha warm"  # warm-started from an earlier sweep (tpe+asha, another seed) on the same zoo
OTHER = "tpe+asha warm other"  # warm-started from a real sweep's trials (--warm-from), e.g. on another zoo
SETTINGS = {
    "tpe+asha": Setting("optuna"),
    WARM: Setting("optuna"),
    "stock tpe+asha": Setting("optuna-stock"),
    "random+asha": Setting("random"),
    "random": Setting("random", asha=False),
}


def check_surrogate(model: Surrogate) -> tuple[float, float, float]:
    """Held-out error of the final objective (10-fold): (Spearman, mean absolute error, one run's noise MAE)."""
    predicted, recorded = model.held_out()[:, 0, -1], model.curves[:, 0, -1]
    noise = float(np.abs(model.noise[:, 0, -1]).mean())
    return float(spearmanr(predicted, recorded).statistic), float(np.abs(predicted - recorded).mean()), noise


def flat_top(model: Surrogate, noise: float) -> str:
    """How many of the recorded configs (uniform draws of the space) a searcher cannot tell from the best:
    their surrogate mean final objective within one run's noise of the best one's."""
    finals = np.array([model.mean(config)[0][OBJECTIVE][-1] for config in model.configs])
    best = finals.max()
    near = (finals >= best - noise).mean()
    return f"the space's top: {near:.0%} of the recorded configs lie within one run's noise of the best ({best:.3f})"


def promoted_curve(epochs: pd.DataFrame, model: Surrogate) -> np.ndarray:
    """After each arriving epoch: the surrogate's mean final objective of the trial a promotion would pick.

    ``wsl promote`` picks, among the trials that ended (ran to max_t or were stopped by ASHA), the one
    with the best objective over its epochs (the objective as the sweep reported it: its smoothing's);
    it is judged by the one fixed measure, what its config reaches at max_t on average (-inf while no
    trial has ended).
    """
    keys = list(searched(model.params))
    configs = epochs.groupby("trial").first()[keys].to_dict("index")  # keeps integers integers
    finals = {trial: model.mean(config)[0][OBJECTIVE][-1] for trial, config in configs.items()}
    best: dict[int, float] = {}
    ended: dict[int, float] = {}
    judged = []
    for trial, value, stopped in zip(epochs["trial"], epochs["seen"], epochs["stopped"], strict=True):
        best[trial] = max(best.get(trial, -np.inf), value)
        if stopped:
            ended[trial] = best[trial]
        judged.append(finals[max(ended, key=ended.get)] if ended else -np.inf)
    return np.array(judged)


GRID = np.linspace(0, 1, 41)[1:]  # shares of random search's trial-epochs at which the any-time curves are read


def one_seed(
    seed: int, cfg: SweepConfig, model: Surrogate, settings: dict[str, Setting], other: list | None = None
) -> dict:
    """Per setting: the shares of random search's trial-epochs and seconds needed to reach its promoted
    config, and the any-time regret (target minus the judged value of what it would promote) on ``GRID``.

    ``other``: the warm-start trials of setting ``OTHER`` (a real sweep's, the same in every seed)."""
    # the target's own draws: a seed no tested setting uses (TPE's start-up and random+asha draw with ``seed``)
    reference = simulate(cfg, SETTINGS["random"], model.source(seed), seed + 10_000)
    target = promoted_curve(reference, model)[-1]
    epochs_total, seconds_total = len(reference), reference["time_s"].max()
    out = {"seed": seed, "target": target}
    earlier = (
        simulate(cfg, SETTINGS["tpe+asha"], model.source(seed + 2_000_000), seed + 5_000) if WARM in settings else None
    )
    for name, setting in settings.items():
        warm = warm_trials(cfg, earlier) if name == WARM else other if name == OTHER else None
        epochs = simulate(cfg, setting, model.source(seed + 1_000_000), seed, warm=warm)
        judged = promoted_curve(epochs, model)
        reached = np.flatnonzero(judged >= target - 1e-12)
        hit = reached[0] if len(reached) else None
        out[f"{name} epochs"] = (hit + 1) / epochs_total if hit is not None else np.inf
        out[f"{name} seconds"] = epochs["time_s"].iloc[hit] / seconds_total if hit is not None else np.inf
        out[f"{name} final"] = judged[-1]
        out[f"{name} trial-epochs"] = len(epochs)
        out[f"{name} promoted"] = epochs["seen"].max()  # the figure it promotes by: every trial has ended
        out[f"{name} spent epochs"] = len(epochs) / epochs_total
        out[f"{name} spent seconds"] = epochs["time_s"].max() / seconds_total
        spent = np.arange(1, len(judged) + 1) / epochs_total
        seen = np.searchsorted(spent, GRID, side="right") - 1  # the last epoch within each share; -1: none yet
        out[f"{name} regret"] = np.where(seen >= 0, target - judged[np.maximum(seen, 0)], np.nan).tolist()
    return out


def anytime_png(frame: pd.DataFrame, settings: list[str], path: str) -> None:
    """Median any-time regret over seeds against the share of random search's trial-epochs, as a PNG."""
    medians = {
        name: np.nanmedian(np.array(frame[f"{name} regret"].tolist(), dtype=float), axis=0)
        for name in settings
        if f"{name} regret" in frame
    }
    write_curves(medians, "median regret to random search's promoted config", path)


def write_curves(curves: dict[str, np.ndarray], y_title: str, path: str, target: str | None = None) -> None:
    """Any-time curves (name -> [GRID]) against the share of random search's trial-epochs, as a PNG; ``target``:
    the label of a dotted line at 1."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, y in curves.items():
        fig.add_trace(go.Scatter(x=GRID, y=y, mode="lines", name=name))
    if target:
        fig.add_hline(y=1.0, line_dash="dot", annotation_text=target)
    fig.update_layout(xaxis_title="share of random search's trial-epochs", yaxis_title=y_title, width=800, height=500)
    fig.write_image(path)
    print(f"any-time curves: {path}")


def iqm(values: np.ndarray) -> float:
    """Mean of the middle half (25th to 75th percentile) of the sorted values; inf if an inf falls in it."""
    v = np.sort(values)
    lo, hi = int(np.floor(len(v) * 0.25)), int(np.ceil(len(v) * 0.75))
    middle = v[lo:hi]
    return float(np.inf) if np.isinf(middle).any() else float(middle.mean())


def bootstrap(values: np.ndarray, stat, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    draws = [stat(rng.choice(values, len(values))) for _ in range(rounds)]  # inf where a draw never reaches
    return float(np.percentile(draws, 2.5, method="lower")), float(np.percentile(draws, 97.5, method="higher"))


def report(frame: pd.DataFrame, settings: list[str]) -> None:
    print(
        f"\n{len(frame)} seeds; share of random search's compute to reach its promoted config (inf: never); "
        "spent: the whole search's share; regret: target minus the judged final (medians)"
    )
    print(
        f"{'search':<20} {'unit':<8} {'median':>7} {'IQM':>7} {'95% interval':>16} {'within 40%':>10} "
        f"{'spent':>6} {'regret':>7}"
    )
    for name in settings:
        for unit in ("epochs", "seconds"):
            v = frame[f"{name} {unit}"].to_numpy()
            lo, hi = bootstrap(v, iqm)
            print(
                f"{name:<20} {unit:<8} {np.median(v):>7.2f} {iqm(v):>7.2f} {f'[{lo:.2f}, {hi:.2f}]':>16} "
                f"{(v <= WITHIN).mean():>10.0%} {frame[f'{name} spent {unit}'].median():>6.2f} "
                f"{(frame['target'] - frame[f'{name} final']).median():>+7.3f}"
            )
    print("\nwhere a real sweep of a setting should land (5-95% over the seeds; `--validate` prints a real one's)")
    for name in settings:
        bands = [np.percentile(frame[f"{name} {c}"], [5, 95]) for c in ("trial-epochs", "promoted", "final")]
        print(
            f"{name:<20} trial-epochs {bands[0][0]:.0f}-{bands[0][1]:.0f}, promoted objective "
            f"{bands[1][0]:.3f}-{bands[1][1]:.3f}, its config's mean final {bands[2][0]:.3f}-{bands[2][1]:.3f}"
        )
    for a, b in (("tpe+asha", "stock tpe+asha"), ("tpe+asha", "random+asha")):
        print(f"Wilcoxon signed-rank, {a} needs less than {b}: {paired_less(frame, a, b)}")


def paired_less(frame: pd.DataFrame, a: str, b: str) -> str:
    """Does setting ``a`` need less of random search's trial-epochs than ``b``, seed by seed? (Wilcoxon)"""
    x, y = (np.minimum(frame[f"{n} epochs"], 10.0) for n in (a, b))  # never: ranked above every finite share
    p = wilcoxon(x, y, alternative="less", zero_method="zsplit").pvalue if (x != y).any() else 1.0
    return f"p = {p:.3g} (median difference {np.median(x - y):+.2f}, differs in {int((x != y).sum())} seeds)"


def replay_sweep(name: str, grace: int | None, rf: int | None) -> pd.DataFrame:
    """A real sweep's own proposals and curves replayed, under its ASHA settings or others; prints what it shows.

    With its own settings, it checks the loop: the trials should end where the
    sweep ended them. With others, it answers what those would have spent on
    the same draws, and whether its best trial survives; a trial the sweep
    stopped that the other settings would continue needs epochs never run:
    counted, since no record can say how it would have gone.
    """
    directory = Path(name) if Path(name).is_dir() else table.results_root() / name
    name = directory.name
    cfg = load_yaml(directory / table.SWEEP_FILE, SweepConfig, upgrade)
    trials, epochs = table.read_trials(directory), table.read_epochs(directory)
    setting = Setting(cfg.search.algorithm, grace_period=grace, reduction_factor=rf)
    replayed, real = replay_own(cfg, trials, epochs, setting)
    reported = trials[trials["trial_id"].isin(epochs["trial_id"])]
    last = replayed.groupby("trial")["epoch"].max().to_numpy()
    ran = real["epochs"].to_numpy()
    if grace is None and rf is None:
        best = epochs[epochs["trial_id"].isin(real["trial_id"])].groupby("trial_id")["objective"].max()
        print(
            f"{name}: the replay ends {(last == ran).mean():.0%} of {len(real)} finished trials at the "
            f"epoch the sweep ended them ({len(reported) - len(real)} unfinished trials left out); "
            f"{ran.sum()} trial-epochs, promoted objective {best.max():.3f} (trial {best.idxmax()})"
        )
        return replayed
    best = int(np.argmax(np.where(ran == cfg.scheduler.max_t, real["objective"], -np.inf)))
    print(
        f"{name} under grace {setting.sweep(cfg, 0).scheduler.grace_period}, reduction factor "
        f"{setting.sweep(cfg, 0).scheduler.reduction_factor}: {last.sum()} trial-epochs against the sweep's "
        f"{ran.sum()}; its best full-length trial {real['trial_id'][best]} "
        f"{'runs to the end' if last[best] == cfg.scheduler.max_t else f'is stopped at epoch {last[best]}'}; "
        f"{int((last > ran).sum())} trials would run epochs the sweep never ran (their figures are unknown)"
    )
    return replayed


def replay_own(
    cfg: SweepConfig, trials: pd.DataFrame, epochs: pd.DataFrame, setting: Setting
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A real sweep's own proposals and recorded curves (its objective columns) replayed under ``setting``: the
    replayed epochs, and the sweep's finished trials in the replay's trial order (what ``recorded`` replays)."""
    columns = list(cfg.objectives())
    proposals, source = recorded(trials, epochs, list(cfg.params()), cfg.scheduler.max_t, columns=columns)
    replayed = simulate(cfg, setting, source, seed=0, proposals=proposals)
    finished = trials["trial_id"].isin(epochs["trial_id"]) & trials["status"].isin(table.FINISHED)
    return replayed, trials[finished].reset_index(drop=True)


# The grid ``--tune`` searches for the shipped TPE+ASHA setting (on the tuning seeds only).
GRID_TUNE = {
    "grace_period": (1, 2, 3),
    "reduction_factor": (2, 3, 4),
    "brackets": (1, 2),
    "startup": (4, 8),
    "smoothing": ("last", "best", "mean3"),
}
# Then TPE's options on the best of GRID_TUNE; the first values are Optuna 5's defaults, what a sweep runs.
GRID_TPE = {"multivariate": (True, False), "constant_liar": (True, False)}


def tune(cfg: SweepConfig, model: Surrogate, seeds: list[int], jobs: int) -> None:
    """On the tuning ``seeds``: every combination of ``GRID_TUNE`` for TPE+ASHA, then ``GRID_TPE`` on the best.

    Printed best first: the median share of random search's trial-epochs, then the share within 40%.
    """
    combos = [dict(zip(GRID_TUNE, values, strict=True)) for values in itertools.product(*GRID_TUNE.values())]
    s = cfg.scheduler
    own = dict(zip(GRID_TUNE, (s.grace_period, s.reduction_factor, s.brackets, cfg.search.startup, "last")))
    settings = {str(c): Setting("optuna", **c) for c in [*combos, own]}  # the sweep's own, if off the grid
    best = _ranked(cfg, model, seeds, jobs, settings, str(own), "TPE+ASHA settings")
    options = [tuple(zip(GRID_TPE, values, strict=True)) for values in itertools.product(*GRID_TPE.values())]
    settings = {str(dict(o)): replace(best, tpe=o) for o in options}
    _ranked(cfg, model, seeds, jobs, settings, str(dict(options[0])), f"TPE options on {best}")


def _ranked(cfg, model, seeds: list[int], jobs: int, settings: dict, own: str, what: str) -> Setting:
    """``settings`` best first on ``seeds``; the best against ``own`` (the sweep's setting) in a paired test."""
    with mp.get_context("fork").Pool(jobs) as pool:
        frame = pd.DataFrame(pool.map(partial(one_seed, cfg=cfg, model=model, settings=settings), seeds))
    rows = [(np.median(frame[f"{name} epochs"]), (frame[f"{name} epochs"] <= WITHIN).mean(), name) for name in settings]
    rows.sort(key=lambda row: (row[0], -row[1]))
    print(f"{len(seeds)} tuning seeds, {len(settings)} {what}; median share of random's trial-epochs")
    for median, within, name in rows[:10]:
        print(f"  {median:.2f}  within 40%: {within:.0%}  {name}")
    best = rows[0][2]
    print(f"the best needs less than the sweep's own {own}: {paired_less(frame, best, own)}")
    return settings[best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", default="benchmarks/data/curves.parquet")
    parser.add_argument("--sweep", default="benchmark")
    parser.add_argument(
        "--seeds", default=None, help=f"a range a-b or a list a,b,c (default: {REPORT_SEEDS}, --tune: {TUNE_SEEDS})"
    )
    parser.add_argument("--grace", type=int, default=None)
    parser.add_argument("--rf", type=int, default=None)
    parser.add_argument("--brackets", type=int, default=None)
    parser.add_argument("--startup", type=int, default=None, help="TPE's random start-up trials")
    parser.add_argument("--smoothing", default="last", choices=["last", "best", "mean3"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--anyway", action="store_true", help="run the replay even below the surrogate's bar")
    parser.add_argument(
        "--warm-from",
        default=None,
        metavar="DIR",
        help="also warm-start TPE+ASHA from this sweep's trials (a results folder, e.g. a sweep on another zoo)",
    )
    parser.add_argument("--out", default=None, help="write the per-seed table here (parquet)")
    parser.add_argument("--png", default=None, help="draw the any-time curves here (needs Chrome/Chromium)")
    parser.add_argument("--tune", action="store_true", help="search GRID_TUNE on --seeds (tuning seeds) instead")
    parser.add_argument(
        "--validate",
        nargs="+",
        metavar="SWEEP",
        help="only replay these real sweeps (names, or results folders) on their own curves "
        "(with --grace/--rf: what other ASHA settings do)",
    )
    args = parser.parse_args()
    if args.validate:
        for name in args.validate:
            replay_sweep(name, args.grace, args.rf)
        return

    cfg = load_config("sweep", [f"sweep={args.sweep}"], SweepConfig)
    record = table.read(args.record)
    model = Surrogate(record, cfg.params())
    if model.max_t != cfg.scheduler.max_t:
        raise SystemExit(
            f"{args.record} holds {model.max_t} epochs a run, sweep={args.sweep} has max_t {cfg.scheduler.max_t}: "
            "record with the sweep's max_t (record_curves.py --max-t) or pass --sweep of the record"
        )
    rho, mae, noise = check_surrogate(model)
    ok = rho >= BAR_SPEARMAN and mae <= BAR_NOISE * noise
    print(
        f"surrogate on {len(model.ids)} configs, {len(model.noise)} repeated: held-out Spearman {rho:.3f} "
        f"(bar {BAR_SPEARMAN}), MAE {mae:.4f} against one run's noise {noise:.4f} (bar {BAR_NOISE}x): "
        f"{'met' if ok else 'NOT met'}"
    )
    if not ok and not args.anyway:
        raise SystemExit(
            "the surrogate is below its bar: record more configs (record_curves.py --configs N) and pass --record"
        )
    print(flat_top(model, noise))
    seeds = _seeds(args.seeds or (TUNE_SEEDS if args.tune else REPORT_SEEDS))
    if args.tune:
        return tune(cfg, model, seeds, args.jobs)
    tuned = dict(grace_period=args.grace, reduction_factor=args.rf, brackets=args.brackets, startup=args.startup)
    settings = {
        name: Setting(s.algorithm, True, **tuned, smoothing=args.smoothing) if s.asha else s
        for name, s in SETTINGS.items()
    }  # "random" again (no ASHA), other draws than the target's: what a search no better than the target's scores
    other = None
    if args.warm_from:
        other = warm_from(cfg, Path(args.warm_from))
        settings = {**settings, OTHER: settings["tpe+asha"]}
    with mp.get_context("fork").Pool(args.jobs) as pool:
        rows = pool.map(partial(one_seed, cfg=cfg, model=model, settings=settings, other=other), seeds)
    frame = pd.DataFrame(rows)
    if args.out:
        table.write(args.out, frame.drop(columns=[c for c in frame if c.endswith(" regret")]))
    report(frame, list(settings))
    if args.png:
        anytime_png(frame, list(settings), args.png)


def warm_from(cfg: SweepConfig, directory: Path) -> list:
    """A real sweep's trials as ``search.warm_start`` would seed ``cfg``'s study with them (printed: how many)."""
    if not table.exists(directory, table.TRIALS):
        raise SystemExit(f"--warm-from {directory}: no {table.TRIALS} there; pass a sweep's results folder")
    seeded = warmstart.seeds(replace(cfg, search=replace(cfg.search, warm_start=[directory.name])), directory.parent)
    print(seeded.summary())
    return seeded.trials


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = map(int, text.split("-"))
        return list(range(a, b + 1))
    return [int(s) for s in text.split(",")]


if __name__ == "__main__":
    main()
