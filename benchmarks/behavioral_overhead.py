"""What the behavioral loss costs per training step, timed as training runs it: whole epochs.

    wsl zoo make                                   # once: the default zoo
    python benchmarks/behavioral_overhead.py       # ~2 min on 2 CPU cores
    python benchmarks/behavioral_overhead.py --device cuda

Times ``wsl.train.train_epoch`` (every shuffled batch of an epoch: both
views, forward, backward, optimizer) with ``beta=1`` (no behavioral branch)
and with ``beta=0.1`` at probe sizes 64, 256 and 1024, epochs of the
settings interleaved in one process so that the machine's drift hits them
alike, and prints the median seconds per step and each ratio to structure
alone. An earlier version timed one batch, the first 64 training rows (the
checkpoints of about 11 models, fewer activation groups than a shuffled
batch has), again and again, and read 1.43x where epochs took 2.07x.
Target (issue 30): <= 1.4x at probe size 256 on the default CNN zoo.

Beside it, a roofline of the branch: its floating-point operations a step
(the behavioral settings' minus structure's, counted by torch's
``FlopCounterMode`` over the untimed first epoch: matrix products and
convolutions, forward and backward), the FLOP/s it reaches in the time it
adds, and the machine's dense matmul FLOP/s (``N x N @ N x N``, N 1024, the
same threads) measured between the epochs of the same run. A branch that
reaches half the matmul rate or more is bound by its own arithmetic; far
below, by memory traffic or overheads.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from wsl.config import TrainConfig
from wsl.data import behavior, prepare
from wsl.device import pick_device
from wsl.losses import LossScaler
from wsl.run import build_model
from wsl.train import AUGMENT, BEHAVIOR, epoch_seed, train_epoch
from wsl.zoo.store import load_zoo

SETTINGS = {"beta=1 (structure)": (1.0, 256), **{f"beta=0.1 probe={p}": (0.1, p) for p in (64, 256, 1024)}}


class Setting:
    """One loss setting's model, optimizer and behavioral inputs, trained an epoch at a time."""

    def __init__(self, zoo, beta: float, probe_size: int, device: str):
        base = TrainConfig(device=device)
        self.cfg = replace(base, loss=replace(base.loss, beta=beta, probe_size=probe_size))
        self.data = prepare(zoo, self.cfg.tokens.width, device)
        self.behav = behavior(self.data, self.cfg.loss, self.cfg.seed)
        self.model = build_model(self.cfg, self.data.lay).to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.optim.lr)
        self.scaler = LossScaler(self.cfg.loss.scale_by_first)
        self.device = device
        size = self.cfg.optim.batch_size
        self.steps = sum(
            len(self.data.rows["train"][i : i + size]) >= 2 for i in range(0, len(self.data.rows["train"]), size)
        )

    def epoch_seconds_per_step(self, epoch: int) -> float:
        gen = torch.Generator(device=self.device).manual_seed(epoch_seed(self.cfg.seed, epoch, AUGMENT))
        if self.behav is not None and self.behav.generator is not None:  # resampled behavioral inputs, as in train
            self.behav.generator.manual_seed(epoch_seed(self.cfg.seed, epoch, BEHAVIOR))
        start = time.perf_counter()
        train_epoch(self.model, self.opt, self.scaler, self.data, self.behav, self.cfg, epoch, gen)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / self.steps


def epoch_flops_per_step(setting: Setting, epoch: int) -> float:
    """Run one epoch of ``setting`` (untimed), counting its matrix products' and convolutions' FLOPs a step."""
    with FlopCounterMode(display=False) as counter:
        setting.epoch_seconds_per_step(epoch)
    return counter.get_total_flops() / setting.steps


def matmul_flops_per_second(device: str, n: int = 1024, repeats: int = 5) -> float:
    """The best of ``repeats`` dense ``[n, n] @ [n, n]`` float32 products, in FLOP/s (2 n^3 a product)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--epochs", type=int, default=4, help="epochs timed per setting (after one untimed)")
    parser.add_argument("--device", default="cpu", help="cpu (2 threads, the target's setting), cuda or auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.set_num_threads(2)
    zoo = load_zoo(args.zoo)
    settings = {name: Setting(zoo, beta, probe, device) for name, (beta, probe) in SETTINGS.items()}
    times: dict[str, list[float]] = {name: [] for name in settings}
    flops = {name: epoch_flops_per_step(setting, 1) for name, setting in settings.items()}  # warms up too
    matmul = []
    for epoch in range(2, args.epochs + 2):
        for name, setting in settings.items():
            times[name].append(setting.epoch_seconds_per_step(epoch))
        matmul.append(matmul_flops_per_second(device))
    structure = "beta=1 (structure)"
    base = float(np.median(times[structure]))
    steps = next(iter(settings.values())).steps
    print(f"device {device}; {steps} steps an epoch; median over {args.epochs} epochs per setting, interleaved")
    print("\n| setting | ms/step | ratio |\n|---|---:|---:|")
    for name, values in times.items():
        median = float(np.median(values))
        print(f"| {name} | {median * 1e3:.1f} | {median / base:.2f} |")
    print("\ntarget: ratio <= 1.4 at probe 256")
    peak = float(np.median(matmul))
    print(f"\nroofline: dense matmul {peak / 1e9:.1f} GFLOP/s on this device, same run (median of {len(matmul)})")
    print("\n| setting | branch GFLOP/step | branch ms/step | branch GFLOP/s | share of matmul |")
    print("|---|---:|---:|---:|---:|")
    for name in [n for n in settings if n != structure]:
        work, extra = flops[name] - flops[structure], float(np.median(times[name])) - base
        print(
            f"| {name} | {work / 1e9:.3f} | {extra * 1e3:.1f} | {work / extra / 1e9:.1f} | {work / extra / peak:.0%} |"
        )
    print("\ntarget: the branch at >= 50% of matmul's FLOP/s if its cost is its own arithmetic")


if __name__ == "__main__":
    main()
