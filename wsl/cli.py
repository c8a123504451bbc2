"""The ``wsl`` command: ``wsl zoo make|info|import``, ``train``, ``sweep``, ``results``, ``promote``, ``report``.

Each subcommand is a short function: parse, load a typed config at the edge,
call the library, print. A ``WslError`` becomes one line on stderr and exit
status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wsl.errors import WslError

# Piped or logged, tables get 160 columns rather than rich's default 80, which folds every cell.
console = Console() if sys.stdout.isatty() else Console(width=160)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except WslError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsl", description="Weight-space learning: zoos, autoencoders, sweeps.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    zoo = commands.add_parser("zoo", help="build, import and inspect model zoos")
    zoo_commands = zoo.add_subparsers(required=True, metavar="ACTION")
    make = zoo_commands.add_parser("make", help="train a zoo (Hydra overrides, e.g. task=shapes models=64)")
    make.add_argument("overrides", nargs="*", help="Hydra overrides of sweeps/zoo.yaml")
    make.set_defaults(run=zoo_make)
    info = zoo_commands.add_parser("info", help="print the summary of a zoo directory")
    info.add_argument("path", type=Path)
    info.set_defaults(run=zoo_info)
    imp = zoo_commands.add_parser(
        "import",
        help="convert a public zoo: the Small CNN Zoo (one dataset's folder) or the model-zoos layout "
        "(with SRC/dataset.pt: its task data, checked)",
    )
    imp.add_argument(
        "src",
        type=Path,
        help="a Small CNN Zoo folder (weights.npy, layout.csv, metrics.csv.gz), else a directory with one trial "
        "folder per model (and maybe dataset.pt)",
    )
    imp.add_argument("--out", type=Path, help="destination zoo directory (default: zoos/<src name>)")
    imp.add_argument(
        "--task",
        help="the task the zoo was trained on (recorded in zoo.json; default: the Small CNN Zoo's config.dataset, "
        "else unknown)",
    )
    imp.add_argument("--nonfinite", choices=("skip", "fail"), default="skip", help="NaN/inf checkpoints")
    imp.add_argument("--max-models", type=int, metavar="N", help="Small CNN Zoo: import N runs drawn with --seed")
    imp.add_argument("--steps", type=int, nargs="+", metavar="STEP", help="Small CNN Zoo: only these epochs (0 86)")
    imp.add_argument("--seed", type=int, default=0, help="seeds the runs drawn and the train/val/test split")
    imp.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="task data for a zoo without dataset.pt: a folder of MNIST/Fashion-MNIST IDX, CIFAR-10 binary or SVHN "
        ".mat files, or an .npz (see README, Zoos); checked against --task and by re-running the models",
    )
    imp.add_argument(
        "--preprocess",
        choices=("small-cnn", "none"),  # wsl.zoo.datasets.PREPROCESS
        help="how --data becomes the models' inputs: small-cnn ([-1, 1], mean over colour channels) or none "
        "(pixels / 255; an .npz's float images as given); default: the zoo family's, none for the model-zoos layout",
    )
    imp.set_defaults(run=zoo_import)

    train = commands.add_parser("train", help="train one autoencoder (Hydra overrides of sweeps/train.yaml)")
    train.add_argument("overrides", nargs="*", help="e.g. loss.beta=0.1 loss.probe_size=256 tokens.width=32")
    train.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    train.add_argument("--config", default="train", help="config name under sweeps/ (e.g. promoted/default-abc)")
    train.set_defaults(run=train_run)

    sweep = commands.add_parser("sweep", help="run a sweep on Ray Tune (Hydra overrides of sweeps/sweep.yaml)")
    sweep.add_argument("overrides", nargs="*", help="e.g. sweep=paper name=paper-1 search.num_samples=64")
    sweep.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    sweep.add_argument("--resume", metavar="NAME", help="continue the sweep NAME after its driver stopped")
    sweep.set_defaults(run=sweep_run)

    results = commands.add_parser("results", help="query sweep results tables")
    results.add_argument("name", help="sweep name, or a glob over names ('paper-*')")
    results.add_argument("--where", help='pandas query, e.g. "beta < 0.5 and probe_r2 > 0.8"')
    results.add_argument(
        "--sort", help="column to sort by, descending (default: objective; pareto_rank for several objectives)"
    )
    results.add_argument("--ascending", action="store_true")
    results.add_argument("--top", type=int, default=10, help="rows to show (default 10)")
    results.add_argument("--columns", help="comma-separated columns to show")
    results.add_argument("--epochs", action="store_true", help="query the per-epoch table instead of trials")
    results.add_argument(
        "--pareto",
        action="store_true",
        help="only the Pareto front: of the sweep's objectives (several), else of rec_agreement vs probe_r2",
    )
    results.add_argument("--export", type=Path, metavar="FILE", help="also write the rows to FILE (.csv or .json)")
    results.add_argument("--watch", type=float, nargs="?", const=5.0, metavar="SECONDS", help="refresh until Ctrl-C")
    results.set_defaults(run=results_run)

    promote = commands.add_parser("promote", help="re-run a sweep's best trial at full budget over several seeds")
    promote.add_argument("name", help="sweep name")
    promote.add_argument("--metric", default="objective", help="pick by this validation metric (default objective)")
    promote.add_argument(
        "--rule",
        default=None,
        help="how trials are ranked on --metric: last (its value at its last epoch, trials that ran to max_t), best "
        "(its best epoch; the default) or race (the top --race-k by last re-run on fresh seeds at the trials' "
        "budget, successive halving on validation; see wsl.sweep.rules)",
    )
    promote.add_argument("--race-k", type=int, default=3, help="candidates of --rule race (default 3)")
    promote.add_argument("--trial", help="promote this trial id instead")
    promote.add_argument(
        "--top-k", type=int, help="promote the k best trials (default 1; several objectives: the whole front)"
    )
    promote.add_argument(
        "--pick",
        metavar="WHERE",
        help="several objectives: the front trial this --where expression keeps that is best on the last objective, "
        'e.g. "rec_agreement_working >= 0.85"',
    )
    promote.add_argument("--seeds", type=int, default=3, help="final runs, one per seed (default 3)")
    promote.add_argument("--epochs", type=int, help="epochs of the final runs (default: the training config's)")
    promote.add_argument("--address", help="Ray cluster to run the seeds on (default: $RAY_ADDRESS, else local)")
    promote.set_defaults(run=promote_run)

    report = commands.add_parser("report", help="write an HTML report (and PNG figures) of a sweep")
    report.add_argument("name", help="sweep name")
    report.add_argument("--top", type=int, default=10)
    report.set_defaults(run=report_run)
    return parser


def zoo_make(args) -> None:
    from wsl.compose import load_config
    from wsl.zoo.make import ZooConfig, make_zoo
    from wsl.zoo.store import load_zoo, save_zoo

    cfg = load_config("zoo", args.overrides, ZooConfig)
    out = Path(cfg.out)
    if out.exists():
        if load_zoo(out).extra.get("config") != asdict(cfg):
            raise WslError(f"zoo directory {out} exists with another config; pass out=<new path> or delete it")
        console.print(f"{out} is built already with this config")
        return _print_summary(out)
    with Progress(
        TextColumn(f"training {cfg.models} models"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task("train", total=cfg.epochs)
        zoo = make_zoo(cfg, on_epoch=lambda epoch: progress.update(bar, completed=epoch))
    _print_summary(save_zoo(out, zoo))


def zoo_info(args) -> None:
    _print_summary(args.path)


def zoo_import(args) -> None:
    from wsl.zoo.importer import import_public_zoo
    from wsl.zoo.smallcnn import is_small_cnn_zoo

    out = args.out or Path("zoos") / args.src.name
    if is_small_cnn_zoo(args.src):
        return _print_summary(_import_small_cnn(args, out))
    if args.max_models is not None or args.steps is not None:
        raise WslError(f"{args.src} is in the model-zoos layout; --max-models and --steps select from a Small CNN Zoo")
    data = _read_data(args, preprocess="none")
    task = args.task or "unknown"
    _print_summary(
        import_public_zoo(args.src, out, task=task, nonfinite=args.nonfinite, split_seed=args.seed, task_data=data)
    )


def _import_small_cnn(args, out: Path) -> Path:
    """The Small CNN Zoo folder ``args.src`` written to ``out``, with a progress bar over the rows read."""
    from wsl.zoo.smallcnn import import_small_cnn_zoo

    data = _read_data(args, preprocess="small-cnn")
    columns = (TextColumn("importing checkpoints"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("import", total=None)
        return import_small_cnn_zoo(
            args.src,
            out,
            task=args.task,
            max_models=args.max_models,
            steps=args.steps,
            seed=args.seed,
            nonfinite=args.nonfinite,
            task_data=data,
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )


def _read_data(args, preprocess: str):
    """The task data read from ``--data`` (None without it); refused when ``--task`` names another dataset.

    ``preprocess`` is the zoo family's (``none`` for the model-zoos layout,
    ``small-cnn`` for the Small CNN Zoo), used unless ``--preprocess`` says otherwise.
    """
    if args.data is None:
        return None
    from wsl.zoo.datasets import read_dataset

    return read_dataset(args.data, args.preprocess or preprocess, expect=args.task)


def train_run(args) -> None:
    from wsl import table
    from wsl.atomic import write_text
    from wsl.compose import load_config
    from wsl.config import TrainConfig
    from wsl.results import cell_text
    from wsl.run import CHECKPOINT
    from wsl.train import train
    from wsl.zoo.store import load_zoo

    cfg = load_config(args.config, args.overrides, TrainConfig)
    out = Path(cfg.out)
    if (out / CHECKPOINT).exists() and not args.resume:
        raise WslError(f"run directory {out} has a checkpoint already; pass --resume, or name=<new name>")
    zoo = load_zoo(cfg.zoo)
    history: list[dict] = []
    with Progress(
        TextColumn("epoch"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("", total=cfg.optim.epochs)

        def report(metrics: dict) -> None:
            history.append(metrics)
            table.write(out / "epochs.parquet", history)
            shown = ("loss", "rec_acc_ratio", "rec_agreement", "probe_r2")
            status = "  ".join(f"{k} {metrics[k]:.3f}" for k in shown)
            progress.update(bar, completed=metrics["epoch"], description=status)

        final = train(cfg, report, zoo=zoo, resume=args.resume)
    write_text(out / "final.json", json.dumps(final, indent=2))
    shown = Table(title=f"run {cfg.name}  ({out})", show_header=False)
    for key, value in final.items():
        shown.add_row(key, cell_text(value))
    console.print(shown)


def sweep_run(args) -> None:
    from wsl.compose import load_config
    from wsl.sweep.runner import resume_sweep, run_sweep
    from wsl.table import results_root

    if args.resume:
        if args.overrides:
            raise WslError("--resume takes no overrides: a sweep continues with the config it started with")
        cfg = _saved_sweep(args.resume)
        directory = resume_sweep(cfg, results_root(), args.address)
    else:
        from wsl.sweep.config import SweepConfig

        cfg = load_config("sweep", args.overrides, SweepConfig)
        s = cfg.search
        stops = cfg.scheduler.kind
        stops = f"multi-objective {stops}" if cfg.multi_objective and stops != "fifo" else stops
        console.print(
            f"sweep {cfg.name}: {s.num_samples} trials, {s.algorithm} + {stops} (up to "
            f"{cfg.scheduler.max_t} epochs each), {s.max_concurrent} at a time, objective {cfg.objective}",
            soft_wrap=True,
        )
        directory = run_sweep(cfg, results_root(), args.address)
    console.print(f"results in {directory}")
    _show_results(cfg.name)


def results_run(args) -> None:
    from wsl import results

    query = dict(where=args.where, sort=args.sort, ascending=args.ascending, columns=_columns(args.columns))
    table = "epochs" if args.epochs else "trials"
    if args.watch:
        return results.watch(args.name, every=args.watch, table=table, top=args.top, **query)
    frame = results.load(args.name, table=table)
    note = results.split_note(frame)
    if note:
        print(note, file=sys.stderr)
    if args.pareto:
        frame = results.front(frame, results.objectives(args.name))
    rows = results.query(frame, top=args.top, **query)
    if args.export:
        results.export(results.query(frame, **query), args.export)
    title = f"{table} of {args.name}"
    console.print(results.render(rows, query["columns"], title, results.shown_objectives(args.name)))


def promote_run(args) -> None:
    from wsl.compose import config_dir
    from wsl.metrics import SUMMARY, TEST_PREFIX
    from wsl.results import cell_text, interval, spread
    from wsl.sweep.promote import promote
    from wsl.sweep.rules import DEFAULT
    from wsl.table import PROMOTED_DIR, VALIDATION_FROM, results_root

    sweep = _saved_sweep(args.name)
    if sweep.version < VALIDATION_FROM:
        print(
            f"note: sweep {args.name} was written before version {VALIDATION_FROM}: its trials were judged on the "
            "test models, so the pick saw them and the promoted test figures are optimistic",
            file=sys.stderr,
        )
    for row in promote(
        sweep,
        results_root() / args.name,
        config_dir() / PROMOTED_DIR,
        metric=args.metric,
        trial=args.trial,
        top_k=args.top_k,
        seeds=args.seeds,
        epochs=args.epochs,
        address=args.address,
        rule=args.rule or DEFAULT,
        race_k=args.race_k,
        where=args.pick,
    ):
        title = (
            f"promoted {row['source_trial']} of {args.name}: picked by {row['pick_rule']} {row['pick_metric']} "
            f"{cell_text(row['pick_value'])} (validation); seeds {row['promoted_seeds']}"
        )
        table = Table(title=title)
        for header in ("metric", "validation, mean ± std", "test, mean ± std", "test 95% interval"):
            table.add_column(header)
        for key in SUMMARY:
            test = TEST_PREFIX + key
            if key in row or test in row:  # gen_acc only when the runs generate models
                table.add_row(key, spread(row, key), spread(row, test), interval(row, test))
        console.print(table)
        console.print(f"config: {row['config_file']}")


def report_run(args) -> None:
    from wsl.report import write_report

    console.print(f"report written to {write_report(args.name, top=args.top)}")


def _saved_sweep(name: str):
    """The config a sweep ran with (its ``sweep.yaml``, in today's format)."""
    from wsl.compose import load_yaml
    from wsl.results import sweep_dir
    from wsl.sweep.config import SweepConfig, upgrade
    from wsl.table import SWEEP_FILE

    path = sweep_dir(name) / SWEEP_FILE
    if not path.is_file():
        raise WslError(
            f"sweep {name!r} stopped before it began ({path} is missing): remove {path.parent} and start it anew"
        )
    return load_yaml(path, SweepConfig, upgrade)


def _show_results(name: str, top: int = 10) -> None:
    """What a sweep found: its top trials; a multi-objective sweep's front (all of it: no trial on it is better)."""
    from wsl import results
    from wsl.table import TERMINATED

    frame, columns = results.load(name), results.objectives(name)
    if len(columns) == 1:
        return console.print(results.render(results.query(frame, top=top), title=f"top trials of {name}"))
    front = results.front(frame, columns)
    reached = int((frame["status"] == TERMINATED).sum())
    title = f"the front of {name}: {len(front)} of the {reached} trials that reached max_t, none beaten on all of "
    console.print(results.render(front, title=title + ", ".join(columns), objectives=columns))


def _columns(spec: str | None) -> list[str] | None:
    return [c.strip() for c in spec.split(",") if c.strip()] if spec else None


def _print_summary(path: Path) -> None:
    from wsl.results import cell_text
    from wsl.zoo.store import load_zoo, summary

    s = summary(load_zoo(path))
    table = Table(title=f"zoo {s['name']}  ({path})", show_header=False)
    for key, value in s.items():
        if isinstance(value, dict):
            value = "  ".join(f"{k}: {cell_text(v)}" for k, v in value.items())
        table.add_row(key, cell_text(value))
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
