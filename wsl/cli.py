"""The ``wsl`` command: ``wsl zoo make|info|import`` and ``wsl train``.

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

console = Console()


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
    imp = zoo_commands.add_parser("import", help="convert a zoo in the public model-zoo layout")
    imp.add_argument("src", type=Path, help="directory with one trial folder per model")
    imp.add_argument("--out", type=Path, help="destination zoo directory (default: zoos/<src name>)")
    imp.add_argument("--task", default="unknown", help="the task the zoo was trained on (recorded in zoo.json)")
    imp.add_argument("--nonfinite", choices=("skip", "fail"), default="skip", help="NaN/inf checkpoints")
    imp.set_defaults(run=zoo_import)

    train = commands.add_parser("train", help="train one autoencoder (Hydra overrides of sweeps/train.yaml)")
    train.add_argument("overrides", nargs="*", help="e.g. loss.beta=0.1 loss.probe_size=256 tokens.width=32")
    train.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    train.set_defaults(run=train_run)
    return parser


def zoo_make(args) -> None:
    from wsl.config import load_config
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
        TextColumn(f"training {cfg.models} models"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
        TimeElapsedColumn(), console=console, transient=True,
    ) as progress:  # fmt: skip
        bar = progress.add_task("train", total=cfg.epochs)
        zoo = make_zoo(cfg, on_epoch=lambda epoch: progress.update(bar, completed=epoch))
    _print_summary(save_zoo(out, zoo))


def zoo_info(args) -> None:
    _print_summary(args.path)


def zoo_import(args) -> None:
    from wsl.zoo.importer import import_public_zoo

    out = args.out or Path("zoos") / args.src.name
    _print_summary(import_public_zoo(args.src, out, task=args.task, nonfinite=args.nonfinite))


def train_run(args) -> None:
    from wsl.config import load_config
    from wsl.results import write_parquet
    from wsl.train import CHECKPOINT, TrainConfig, train
    from wsl.zoo.store import load_zoo

    cfg = load_config("train", args.overrides, TrainConfig)
    out = Path(cfg.out)
    if (out / CHECKPOINT).exists() and not args.resume:
        raise WslError(f"run directory {out} has a checkpoint already; pass --resume, or name=<new name>")
    zoo = load_zoo(cfg.zoo)
    history: list[dict] = []
    with Progress(
        TextColumn("epoch"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=console,
    ) as progress:  # fmt: skip
        bar = progress.add_task("", total=cfg.optim.epochs)

        def report(metrics: dict) -> None:
            history.append(metrics)
            write_parquet(out / "epochs.parquet", history)
            shown = ("loss", "rec_acc_ratio", "rec_agreement", "probe_r2")
            status = "  ".join(f"{k} {metrics[k]:.3f}" for k in shown)
            progress.update(bar, completed=metrics["epoch"], description=status)

        final = train(cfg, report, zoo=zoo, resume=args.resume)
    (out / "final.json").write_text(json.dumps(final, indent=2))
    table = Table(title=f"run {cfg.name}  ({out})", show_header=False)
    for key, value in final.items():
        table.add_row(key, _fmt(value))
    console.print(table)


def _print_summary(path: Path) -> None:
    from wsl.zoo.store import load_zoo, summary

    s = summary(load_zoo(path))
    table = Table(title=f"zoo {s['name']}  ({path})", show_header=False)
    for key, value in s.items():
        if isinstance(value, dict):
            value = "  ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
        table.add_row(key, _fmt(value))
    console.print(table)


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
