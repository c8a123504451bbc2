"""What the behavioral loss costs per training step.

    wsl zoo make                                   # once: the default zoo
    python benchmarks/behavioral_overhead.py       # ~1 min on 2 CPU cores
    python benchmarks/behavioral_overhead.py --device cuda

Times a full training step (both views, forward, backward, optimizer) with
``beta=1`` (no behavioral branch) and with ``beta=0.1`` at probe sizes 64,
256 and 1024, and prints each ratio. Target: <= 1.15x at probe size 256 on
the default CNN zoo.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wsl.config import TrainConfig
from wsl.data import behavior, prepare
from wsl.device import pick_device
from wsl.losses import LossConfig, LossScaler, combine
from wsl.run import build_model
from wsl.train import train_step
from wsl.zoo.store import load_zoo


def step_seconds(zoo, beta: float, probe_size: int, steps: int, device: str) -> float:
    cfg = TrainConfig(device=device, loss=LossConfig(beta=beta, probe_size=probe_size))
    data = prepare(zoo, cfg.tokens.width, device)
    probes = behavior(data, cfg.loss, cfg.seed)
    model = build_model(cfg, data.lay).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    scaler, gen = LossScaler(True), torch.Generator(device=device).manual_seed(0)
    batch = data.rows["train"][: cfg.optim.batch_size]
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        parts = train_step(model, data, probes, cfg, batch, gen)
        behav = scaler("behav", parts["loss_behav"]) if "loss_behav" in parts else None
        loss = combine(
            cfg.loss, scaler("contrast", parts["loss_contrast"]), scaler("struct", parts["loss_struct"]), behav
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu", help="cpu (2 threads, the target's setting), cuda or auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.set_num_threads(2)
    zoo = load_zoo(args.zoo)
    print(f"device {device}")
    base = step_seconds(zoo, 1.0, 256, args.steps, device)
    print(f"\n{'setting':<22}{'ms/step':>10}{'ratio':>8}")
    print(f"{'beta=1 (structure)':<22}{base * 1e3:>10.1f}{1.0:>8.2f}")
    for probe in (64, 256, 1024):
        t = step_seconds(zoo, 0.1, probe, args.steps, device)
        print(f"{f'beta=0.1 probe={probe}':<22}{t * 1e3:>10.1f}{t / base:>8.2f}")
    print("target: ratio <= 1.15 at probe 256")


if __name__ == "__main__":
    main()
