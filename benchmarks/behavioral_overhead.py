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
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

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
    for epoch in range(1, args.epochs + 2):
        for name, setting in settings.items():
            seconds = setting.epoch_seconds_per_step(epoch)
            if epoch > 1:  # the first epoch warms the allocator and torch's kernels up
                times[name].append(seconds)
    base = float(np.median(times["beta=1 (structure)"]))
    steps = next(iter(settings.values())).steps
    print(f"device {device}; {steps} steps an epoch; median over {args.epochs} epochs per setting, interleaved")
    print("\n| setting | ms/step | ratio |\n|---|---:|---:|")
    for name, values in times.items():
        median = float(np.median(values))
        print(f"| {name} | {median * 1e3:.1f} | {median / base:.2f} |")
    print("\ntarget: ratio <= 1.4 at probe 256")


if __name__ == "__main__":
    main()
