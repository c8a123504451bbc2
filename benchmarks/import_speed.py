"""Importing the Small CNN Zoo format: speed and memory beside a raw copy of the same bytes.

    nice python benchmarks/import_speed.py               # 50,000 rows (948 MiB of weights): ~30 s on 2 cores
    nice python benchmarks/import_speed.py --rows 5000   # a quick look

Writes a folder in the zoo's format to a temp dir (``weights.npy``: random
float32 rows of 4,970 values; ``metrics.csv.gz``: 9 checkpoints per run, the
zoo's columns; ``layout.csv``: the zoo's Keras variables), then measures, each
in a fresh subprocess so that memory peaks do not mix:

- (a) raw copy: ``np.load`` of ``weights.npy`` and ``np.save`` of it again;
- (b) the full import (``wsl.zoo.smallcnn.import_small_cnn_zoo``);
- (c) a 10% subset of it (``max_models`` = a tenth of the runs).

Each prints rows/s, seconds, the weights written, the peak resident memory
(``ru_maxrss``), the baseline (the same process after its imports, before any
work) and the extra memory above it. Targets: the full import within 2x of the
raw copy's time; its peak RSS below twice the weights it writes; extra memory
growing with what is written (the subset needs about a tenth of the full
import's extra memory, not the input's size: the selection holds two columns
of every row of ``metrics.csv.gz``, the rest is read in chunks for the rows kept).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

STEPS = (0, 1, 2, 3, 20, 40, 60, 80, 86)
LAYOUT = [  # the zoo's layout.csv: Keras variables in alphabetical order, each layer's bias before its kernel
    ("sequential/conv2d/bias:0", (16,)),
    ("sequential/conv2d/kernel:0", (3, 3, 1, 16)),
    ("sequential/conv2d_1/bias:0", (16,)),
    ("sequential/conv2d_1/kernel:0", (3, 3, 16, 16)),
    ("sequential/conv2d_2/bias:0", (16,)),
    ("sequential/conv2d_2/kernel:0", (3, 3, 16, 16)),
    ("sequential/dense/bias:0", (10,)),
    ("sequential/dense/kernel:0", (16, 10)),
]
WIDTH = sum(int(np.prod(shape)) for _, shape in LAYOUT)  # 4,970
CHUNK = 4096  # rows generated at a time


def generate(folder: Path, rows: int, seed: int = 0) -> None:
    """A Small CNN Zoo folder of ``rows`` checkpoints with random weights (written a chunk at a time)."""
    rng = np.random.default_rng(seed)
    sizes = [int(np.prod(shape)) for _, shape in LAYOUT]
    ends = np.cumsum(sizes)
    pd.DataFrame(
        {
            "varname": [v for v, _ in LAYOUT],
            "start_idx": ends - sizes,
            "end_idx": ends,
            "shape": [str(s) for _, s in LAYOUT],
        }
    ).to_csv(folder / "layout.csv", index=False)
    weights = np.lib.format.open_memmap(folder / "weights.npy", mode="w+", dtype=np.float32, shape=(rows, WIDTH))
    for s in range(0, rows, CHUNK):
        weights[s : s + CHUNK] = rng.standard_normal((min(CHUNK, rows - s), WIDTH), dtype=np.float32) * 0.1
    weights.flush()
    del weights
    run, step = np.divmod(np.arange(rows), len(STEPS))
    metrics = pd.DataFrame(
        {
            "config.activation": np.where(run % 2, "relu", "tanh"),
            "config.b_init": "zeros",
            "config.dataset": "cifar10",
            "config.dropout": rng.choice([0.0, 0.05, 0.2], rows),
            "config.init_std": rng.uniform(1e-3, 0.5, rows),
            "config.l2reg": rng.uniform(1e-8, 1e-2, rows),
            "config.learning_rate": rng.uniform(5e-4, 5e-2, rows),
            "config.optimizer": rng.choice(["adam", "sgd", "rmsprop"], rows),
            "config.train_fraction": rng.choice([0.1, 0.25, 0.5, 1.0], rows),
            "config.w_init": rng.choice(["he_normal", "glorot_uniform", "orthogonal"], rows),
            "modeldir": [f"/tmp/zoo/cifar10/{r:06d}" for r in run],
            "step": np.array(STEPS)[step],
            "test_accuracy": rng.uniform(0.1, 0.55, rows),
            "test_loss": rng.uniform(1.2, 2.3, rows),
            "train_accuracy": rng.uniform(0.1, 0.6, rows),
            "train_loss": rng.uniform(1.1, 2.3, rows),
        }
    )
    metrics.index = [f"{d}/permanent_ckpt-{s}" for d, s in zip(metrics["modeldir"], metrics["step"], strict=True)]
    metrics.to_csv(folder / "metrics.csv.gz")


def measure(kind: str, src: Path, out: Path, max_models: int | None) -> dict:
    """Run one measurement in this (fresh) process: seconds, rows and bytes written, baseline and peak RSS."""
    import torch  # noqa: F401  (every measurement's baseline holds the same modules)

    from wsl.zoo.smallcnn import import_small_cnn_zoo

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    if kind == "copy":
        weights = np.load(src / "weights.npy")
        np.save(out, weights)
        rows = len(weights)
    else:
        import_small_cnn_zoo(src, out, max_models=max_models)
        rows = json.loads((out / "zoo.json").read_text())["rows"]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "rows": rows, "written": rows * WIDTH * 4, "baseline": baseline, "peak": peak}


def run(kind: str, src: Path, out: Path, max_models: int | None = None) -> dict:
    """``measure`` in a fresh subprocess, its output removed afterwards.

    Linux carries ``ru_maxrss`` across ``exec`` from the process that started
    it, so this one stays small: the data is generated in a subprocess too.
    """
    argv = [sys.executable, __file__, "--measure", kind, "--src", str(src), "--out", str(out)]
    argv += ["--max-models", str(max_models)] if max_models else []
    result = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    shutil.rmtree(out) if out.is_dir() else out.unlink()
    return result


def table(results: dict[str, dict]) -> str:
    mb = 1 << 20
    lines = [
        "| measurement | rows | s | rows/s | written MB | baseline MB | peak MB | extra MB | peak / written |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        extra = r["peak"] - r["baseline"]
        lines.append(
            f"| {name} | {r['rows']:,} | {r['seconds']:.2f} | {r['rows'] / r['seconds']:,.0f} | "
            f"{r['written'] / mb:,.0f} | {r['baseline'] / mb:,.0f} | {r['peak'] / mb:,.0f} | {extra / mb:,.0f} | "
            f"{r['peak'] / r['written']:.2f} |"
        )
    return "\n".join(lines)


def verdicts(copy: dict, full: dict, subset: dict) -> str:
    time_ratio = full["seconds"] / copy["seconds"]
    peak_ratio = full["peak"] / full["written"]
    extra_ratio = (subset["peak"] - subset["baseline"]) / (full["peak"] - full["baseline"])
    written_ratio = subset["written"] / full["written"]
    return "\n".join(
        [
            f"full import time / raw copy time:       {time_ratio:.2f}  (target <= 2)",
            f"full import peak RSS / weights written: {peak_ratio:.2f}  (target < 2)",
            f"subset extra memory / full extra:       {extra_ratio:.2f}  (target about {written_ratio:.2f}, "
            "the share of the weights written)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--measure", choices=("generate", "copy", "import"), help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--max-models", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure == "generate":
        return generate(args.src, args.rows)
    if args.measure:
        return print(json.dumps(measure(args.measure, args.src, args.out, args.max_models)))
    with tempfile.TemporaryDirectory(prefix="wsl-import-speed-") as tmp:
        src = Path(tmp) / "cifar10"
        src.mkdir()
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--measure", "generate", "--src", str(src), "--rows", str(args.rows)], check=True
        )
        print(f"generated {args.rows:,} rows x {WIDTH} values in {time.perf_counter() - start:.1f} s")
        runs = -(-args.rows // len(STEPS))
        results = {
            "(a) raw copy (np.load + np.save)": run("copy", src, Path(tmp) / "copy.npy"),
            "(b) full import": run("import", src, Path(tmp) / "full"),
            f"(c) 10% subset (--max-models {runs // 10})": run("import", src, Path(tmp) / "subset", runs // 10),
        }
    print(table(results))
    print(verdicts(*results.values()))


if __name__ == "__main__":
    main()
