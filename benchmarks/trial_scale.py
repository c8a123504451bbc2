"""What one trial costs in time and memory on zoos the size of the public ones, as their rows grow.

    python benchmarks/trial_scale.py --quick         # 250 rows of each zoo, one epoch: ~1 min on 2 cores
    python benchmarks/trial_scale.py                 # 1k, 4k and 16k rows, 2 epochs: hours on 2 cores
    python benchmarks/trial_scale.py --sizes 1000 4000 --zoos small-cnn --set eval.inputs=null   # every test input

Two zoo shapes, with random weights and random images (this measures cost, not quality):

- ``cnn-l``: CNN-l of "Structure Is Not Enough" (3x3 convs of 16, 32 and 15 channels, each pooled, then
  60 -> 20 -> 10: 10,853 parameters) on 32x32x3 inputs, with CIFAR-10-sized task data (50,000 training and
  10,000 test images, 740 MB as float32), 4 checkpoints a model;
- ``small-cnn``: the Small CNN Zoo's network (3 strided 3x3 convs of 16 channels, global average pooling,
  dense 10: 4,970 parameters) on 28x28 greyscale, MNIST-sized data (60,000 / 10,000), 9 checkpoints a model.

Each zoo is written to disk as ``wsl zoo`` writes one (its task data in ``task.safetensors``), then trained
by this file run again as a child process (``--child``), so that its peak RSS is one run's alone: the
training config of ``wsl train`` (``sweeps/train.yaml``) as a sweep trial runs it (``eval.test=false``,
``generate=0``; ``--set`` adds overrides), on ``--threads`` CPU threads. The child wraps ``wsl.train``'s
``train_epoch``, ``evaluate_epoch`` and ``run.save`` in timers, and ``originals`` and ``copy_baselines``
(what a run computes once before its first epoch); it reports per epoch the seconds of training steps,
evaluation and checkpoint, and its peak RSS after importing wsl and at the end.

The table shows the median epoch; then the ratios issue 30 asks for: per zoo, the largest size's epoch time
against the smallest's, beside the row ratio (target: within 1.25x of it), and evaluation's share of an
epoch (target: at most 10% on ``cnn-l`` at 4,000 rows).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wsl.zoo.arch import Arch, Conv
from wsl.zoo.splits import assign_splits
from wsl.zoo.store import Zoo, save_zoo
from wsl.zoo.tasks import Task


@dataclass(frozen=True)
class Shape:
    """A public zoo's shape: its network, how many images its task has, the checkpoints a model keeps."""

    arch: Arch
    train_images: int
    test_images: int
    checkpoints: tuple[int, ...]
    activations: tuple[str, ...]


SHAPES = {
    "cnn-l": Shape(
        Arch("cnn", (3, 32, 32), 10, (Conv(16, 3), Conv(32, 3), Conv(15, 3)), (20,)),
        50_000,
        10_000,
        (5, 10, 15, 20),
        ("tanh", "relu", "gelu", "sigmoid"),
    ),
    "small-cnn": Shape(
        Arch("cnn", (1, 28, 28), 10, (Conv(16, 3, 0, False, 2),) * 3, (), global_pool=True),
        60_000,
        10_000,
        (0, 1, 2, 3, 20, 40, 60, 80, 86),
        ("relu", "tanh"),
    ),
}
SIZES = (1_000, 4_000, 16_000)
QUICK_ROWS = 250  # --quick without --sizes: CNN-l at 1,000 rows takes minutes an epoch on 2 cores
TIMED = ("train_epoch", "evaluate_epoch", "save")  # an epoch's parts, as wsl.train calls them
ONCE = ("originals", "copy_baselines")  # computed once a run, before its first epoch


def random_zoo(shape: Shape, rows: int, seed: int = 0) -> Zoo:
    """``rows`` checkpoints (``rows // len(checkpoints)`` models) of ``shape.arch``: weights ``[rows, *shape]``
    drawn at the scale of a fan-in init, random accuracies, and random images and labels as its task data."""
    gen = torch.Generator().manual_seed(seed)
    per_model = len(shape.checkpoints)
    models = max(3, rows // per_model)
    weights = {
        name: torch.randn((models * per_model, *dims), generator=gen) * _scale(dims)
        for name, dims in shape.arch.param_shapes.items()
    }
    return Zoo(None, "random", "random", shape.arch, _table(shape, models, seed), weights, {}, _task(shape, gen))


def _scale(dims: tuple[int, ...]) -> float:
    """A weight's standard deviation: 1 / sqrt(fan-in) for a kernel ``[out, in, ...]``, 0.1 for a bias."""
    return 1 / math.sqrt(math.prod(dims[1:])) if len(dims) > 1 else 0.1


def _table(shape: Shape, models: int, seed: int) -> pd.DataFrame:
    """One row per checkpoint, model-major: ids, epochs, splits by model, activations, random figures."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(models), len(shape.checkpoints))
    splits = assign_splits(ids, seed=seed)
    acts = rng.choice(shape.activations, models)
    acc = rng.uniform(0.1, 0.7, len(ids))
    return pd.DataFrame(
        {
            "model_id": ids,
            "epoch": np.tile(shape.checkpoints, models),
            "split": [splits[i] for i in ids],
            "activation": acts[ids],
            "train_loss": rng.uniform(0.5, 2.3, len(ids)),
            "train_acc": acc + rng.uniform(0, 0.1, len(ids)),
            "test_loss": rng.uniform(0.5, 2.3, len(ids)),
            "test_acc": acc,
        }
    )


def _task(shape: Shape, gen: torch.Generator) -> Task:
    """Standard-normal images ``[N, C, H, W]`` and uniform labels, as many as the public task has."""
    c, h, w = shape.arch.in_shape
    classes = shape.arch.num_classes

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn((n, c, h, w), generator=gen), torch.randint(classes, (n,), generator=gen)

    (x_train, y_train), (x_test, y_test) = images(shape.train_images), images(shape.test_images)
    return Task("random", x_train, y_train, x_test, y_test, classes)


def child(zoo: str, epochs: int, threads: int, overrides: list[str]) -> dict:
    """One run of ``wsl train``'s config on ``zoo``, its parts timed: what the parent reads from stdout."""
    from wsl import train as training
    from wsl.compose import load_config
    from wsl.config import TrainConfig

    import_gb = peak_rss_gb()
    torch.set_num_threads(threads)
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in (*TIMED, *ONCE)}
    for name in TIMED[:2] + ONCE:
        setattr(training, name, _timed(getattr(training, name), seconds[name]))
    training.run.save = _timed(training.run.save, seconds["save"])
    with tempfile.TemporaryDirectory() as out:
        trial = ["eval.test=false", "generate=0", f"optim.epochs={epochs}", f"zoo={zoo}", f"out={out}"]
        cfg = load_config("train", trial + overrides, TrainConfig)
        start = time.perf_counter()
        training.train(cfg, lambda metrics: None)
        total = time.perf_counter() - start
    return {"seconds": seconds, "total": total, "import_gb": import_gb, "peak_gb": peak_rss_gb()}


def peak_rss_gb() -> float:
    """This process's peak RSS (``VmHWM``). Not ``ru_maxrss``: a child's keeps its forking parent's peak."""
    return status_mb("VmHWM") / 1024


def status_mb(key: str) -> float:
    """A ``/proc/self/status`` figure in MB (``VmRSS``, ``VmHWM``, ``RssFile``)."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in lines if line.startswith(key + ":")).split()[1]) / 1024


def _timed(fn, into: list[tuple[float, float]]):
    """``fn``, appending each call's (wall, CPU) seconds to ``into``: CPU time (all threads) is the figure a
    machine shared with other work distorts less."""

    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        into.append((time.perf_counter() - wall, time.process_time() - cpu))
        return out

    return wrapper


def measure(name: str, rows: int, epochs: int, threads: int, overrides: list[str]) -> dict:
    """Write the zoo ``name`` at ``rows`` rows, train it in a child process, and summarise its epochs."""
    with tempfile.TemporaryDirectory() as tmp:
        zoo = random_zoo(SHAPES[name], rows)
        data_gb = (sum(v.nbytes for v in zoo.weights.values()) + _task_bytes(zoo.task_data)) / 2**30
        save_zoo(Path(tmp) / "zoo", zoo)
        del zoo
        command = [sys.executable, __file__, "--child", str(Path(tmp) / "zoo"), "--epochs", str(epochs)]
        command += ["--threads", str(threads), *(f"--set={o}" for o in overrides)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the child run of {name} at {rows} rows failed:\n{done.stderr[-3000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    wall, cpu = ({k: float(np.median(np.array(got["seconds"][k])[:, clock])) for k in TIMED} for clock in (0, 1))
    return {
        "zoo": name,
        "rows": rows,
        "train s": wall["train_epoch"],
        "eval s": wall["evaluate_epoch"],
        "ckpt s": wall["save"],
        "epoch s": sum(wall.values()),
        "eval share": wall["evaluate_epoch"] / sum(wall.values()),
        "epoch cpu s": sum(cpu.values()),
        "eval share cpu": cpu["evaluate_epoch"] / sum(cpu.values()),
        "once s": sum(sum(wall for wall, _ in got["seconds"][k]) for k in ONCE),
        "zoo+task GB": data_gb,
        "import GB": got["import_gb"],
        "peak GB": got["peak_gb"],
        "working GB": got["peak_gb"] - got["import_gb"],
    }


def _task_bytes(task: Task) -> int:
    return sum(t.nbytes for t in (task.x_train, task.y_train, task.x_test, task.y_test))


def markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, numbers to 3 significant digits and shares as percentages."""
    cells = [[_cell(column, value) for column, value in row.items()] for _, row in table.iterrows()]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def _cell(column: str, value) -> str:
    if isinstance(value, str):
        return value
    if column == "rows":
        return f"{value:,}"
    return f"{value:.1%}" if column.startswith("eval share") else f"{value:.3g}"


def ratios(table: pd.DataFrame) -> list[str]:
    """Issue 30's checks: epoch time against rows (largest size over smallest), evaluation's share on CNN-l."""
    lines = []
    for name, runs in table.groupby("zoo", sort=False):
        small, large = runs.iloc[0], runs.iloc[-1]
        for clock in ("epoch s", "epoch cpu s") if len(runs) > 1 else ():
            grew, time_grew = large["rows"] / small["rows"], large[clock] / small[clock]
            verdict = "met" if time_grew <= 1.25 * grew else "not met"
            lines.append(
                f"{name}: {grew:.0f}x the rows took {time_grew:.2f}x the {clock} "
                f"({time_grew / grew:.2f} of linear; target <= 1.25: {verdict})"
            )
    for _, run in table[table["zoo"] == "cnn-l"].iterrows():
        share, cpu = run["eval share"], run["eval share cpu"]
        verdict = "met" if max(share, cpu) <= 0.10 else "not met"
        target = f" (target at 4,000 rows <= 10%: {verdict})" if run["rows"] == 4_000 else ""
        lines.append(f"cnn-l at {run['rows']:,} rows: evaluation {share:.1%} of an epoch, {cpu:.1%} of its CPU{target}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"the smallest size only (default {QUICK_ROWS}), one epoch"
    )
    parser.add_argument("--sizes", type=int, nargs="+", help=f"rows of each zoo (default {SIZES})")
    parser.add_argument("--zoos", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--epochs", type=int, default=2, help="epochs a run trains (the table shows the median)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the run (2: the target's machine)")
    parser.add_argument("--set", action="append", default=[], help="a training config override, e.g. eval.inputs=null")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs, args.threads, args.set)))
        return
    sizes = sorted(args.sizes or ((QUICK_ROWS,) if args.quick else SIZES))
    sizes, epochs = (sizes[:1], 1) if args.quick else (sizes, args.epochs)
    print(f"{args.threads} threads, {epochs} epoch(s) a run, overrides {args.set or 'none'}", flush=True)
    runs = []
    for name in args.zoos:
        for rows in sizes:
            runs.append(measure(name, rows, epochs, args.threads, args.set))
            print(markdown(pd.DataFrame(runs[-1:])), flush=True)
    table = pd.DataFrame(runs)
    print("\n" + markdown(table))
    print("\n" + "\n".join(ratios(table)))


if __name__ == "__main__":
    main()
