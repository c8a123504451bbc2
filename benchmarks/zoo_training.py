"""Batched population training vs a plain one-model-at-a-time PyTorch loop.

    python benchmarks/zoo_training.py                # default CNN on digits, N=128, 2 epochs: ~1 min
    python benchmarks/zoo_training.py --models 256 --epochs 3 --task shapes

Both train the same N models (same initial weights, hyper-parameters, data,
epochs, batch size) and evaluate them once at the end; the loop uses
``torch.optim`` and an ``nn.Sequential`` per model. Prints models/s of each
and the ratio. Target: batched >= 5x on 2 CPU cores for the default CNN.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from wsl.zoo.arch import as_module, cnn, init_params, mlp
from wsl.zoo.make import SpaceConfig
from wsl.zoo.population import SGD_MOMENTUM, sample_hypers, train_population
from wsl.zoo.tasks import load_task


def train_loop(arch, task, hypers, params, epochs: int, batch_size: int) -> list[float]:
    """The plain baseline: one model, one optimizer, one Python loop over batches, model after model."""
    accs = []
    for m, h in enumerate(hypers.itertuples()):
        model = as_module(arch, {k: v[m] for k, v in params.items()}, h.activation, h.dropout)
        if h.optimizer == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=h.lr, weight_decay=h.wd)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=h.lr, momentum=SGD_MOMENTUM, weight_decay=h.wd)
        gen = torch.Generator().manual_seed(int(h.seed))
        for _ in range(epochs):
            order = torch.randperm(len(task.x_train), generator=gen)
            for s in range(0, len(order) - batch_size + 1, batch_size):
                idx = order[s : s + batch_size]
                opt.zero_grad()
                F.cross_entropy(model(task.x_train[idx]), task.y_train[idx]).backward()
                opt.step()
        with torch.no_grad():
            model.eval()
            accs.append((model(task.x_test).argmax(1) == task.y_test).float().mean().item())
    return accs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="digits")
    parser.add_argument("--arch", default="cnn", choices=("cnn", "mlp"))
    parser.add_argument("--models", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    task = load_task(args.task)
    arch = (cnn if args.arch == "cnn" else mlp)(task.in_shape, task.num_classes)
    space = SpaceConfig()
    hypers = sample_hypers(
        args.models, 0, space.lr, space.wd, space.activation, space.init, space.optimizer, space.dropout
    )
    params = init_params(arch, list(hypers["init"]), torch.Generator().manual_seed(0))

    t0 = time.perf_counter()
    _, rows = train_population(arch, task, hypers, args.epochs, [args.epochs], args.batch_size, seed=0)
    batched_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop_accs = train_loop(arch, task, hypers, params, args.epochs, args.batch_size)
    loop_s = time.perf_counter() - t0

    n = args.models
    print(
        f"\n{args.arch} on {args.task}: {arch.num_params} params/model, {n} models, {args.epochs} epochs, "
        f"batch {args.batch_size}, {torch.get_num_threads()} threads"
    )
    print(f"{'mode':<10}{'seconds':>10}{'models/s':>12}{'mean test acc':>16}")
    print(f"{'loop':<10}{loop_s:>10.2f}{n / loop_s:>12.2f}{sum(loop_accs) / n:>16.3f}")
    print(f"{'batched':<10}{batched_s:>10.2f}{n / batched_s:>12.2f}{rows['test_acc'].mean():>16.3f}")
    print(f"speed-up batched / loop: {loop_s / batched_s:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
