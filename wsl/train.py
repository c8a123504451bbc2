"""One training run of the weight-space autoencoder, top to bottom.

    zoo -> tokens (normalised with training-split statistics)        wsl.data
    each step: two augmented views of a batch of training models     wsl.augment
               -> reconstruction + latents -> structural, contrastive, behavioral losses
    each epoch: validation metrics -> checkpoint -> report(metrics)  wsl.evaluate, wsl.run
    at the end: baselines, extra probe targets, test figures,         wsl.evaluate, wsl.generate
                generation (not in sweep trials: ``eval.test`` off)

``train`` takes a typed ``TrainConfig`` and a ``report`` callback; it knows
nothing of Ray or Hydra (a sweep trial passes Ray's report, ``wsl train``
a progress printer). Metric names are the results table's columns (``wsl.metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from wsl import run
from wsl.augment import two_views
from wsl.config import TrainConfig
from wsl.data import Behavior, Data, behavior, prepare
from wsl.device import pick_device
from wsl.evaluate import copy_baselines, evaluate_epoch, evaluate_final, originals
from wsl.generate import generation
from wsl.losses import LossScaler, behav_loss, combine, nt_xent, run_tokens, struct_loss
from wsl.zoo.store import Zoo, load_zoo


def train(
    cfg: TrainConfig,
    report: Callable[[dict], None],
    zoo: Zoo | None = None,
    resume: bool = False,
    memo: dict | None = None,
) -> dict:
    """Train, calling ``report(metrics)`` once per epoch; returns the final metrics.

    Each epoch's metrics are validation figures (what a sweep decides by); with
    ``cfg.eval.test`` the final metrics add the test figures (``test_*``) and the
    baselines, and with ``cfg.generate`` generation.

    ``zoo``: already loaded (else read from ``cfg.zoo``); ``memo``: see ``wsl.data.behavior``.
    The run directory ``cfg.out`` holds the checkpoint that ``wsl.run.load_run`` reloads.
    """
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    data = prepare(zoo if zoo is not None else load_zoo(cfg.zoo), cfg.tokens.width, device)
    behav = behavior(data, cfg.loss, cfg.seed, memo)
    model = run.build_model(cfg, data.lay).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scaler = LossScaler(cfg.loss.scale_by_first)
    start = run.resume(Path(cfg.out), cfg, model, opt, scaler) if resume else 0
    val = originals(data, "val", cfg.eval.inputs)  # the originals' predictions never change: run them once
    copies = copy_baselines(data, val, cfg.eval.working_acc)  # the zoo's and the inputs' alone: once too
    metrics: dict = {}
    for epoch in range(start + 1, cfg.optim.epochs + 1):
        t0 = time.perf_counter()
        warm = epoch <= cfg.loss.warmup_epochs  # structure (and contrast) alone first
        gen = torch.Generator(device=device).manual_seed(epoch_seed(cfg.seed, epoch, AUGMENT))
        if behav is not None and behav.generator is not None:  # resampled behavioral inputs
            behav.generator.manual_seed(epoch_seed(cfg.seed, epoch, BEHAVIOR))
        losses = train_epoch(model, opt, scaler, data, None if warm else behav, cfg, epoch, gen)
        metrics = {"epoch": epoch, **losses, **evaluate_epoch(model, data, cfg.eval, val), **copies}
        metrics["time_s"] = time.perf_counter() - t0
        run.save(Path(cfg.out), cfg, data, model, opt, scaler, epoch)
        report(metrics)
    final = {**metrics, **evaluate_final(model, data, cfg.eval)} if cfg.eval.test else dict(metrics)
    if cfg.generate > 0:
        final.update(generation(model, data, cfg.generate, cfg.seed))
    return final


def train_epoch(
    model, opt, scaler, data: Data, behav: Behavior | None, cfg: TrainConfig, epoch: int, gen
) -> dict[str, float]:
    """One pass over the training models; returns the mean of each loss component over the steps taken."""
    model.train()
    order = epoch_order(data.rows["train"], cfg.seed, epoch)
    size = cfg.optim.batch_size
    batches = [b for b in (order[i : i + size] for i in range(0, len(order), size)) if len(b) >= 2]  # pairs
    sums: dict[str, float] = {}
    for batch in batches:
        opt.zero_grad(set_to_none=True)  # before the step, not after it: no gradient outlives its step
        parts = train_step(model, data, behav, cfg, batch, gen)
        loss = combine(
            cfg.loss,
            scaler("contrast", parts["loss_contrast"]),
            scaler("struct", parts["loss_struct"]),
            scaler("behav", parts["loss_behav"]) if "loss_behav" in parts else None,
        )
        loss.backward()
        opt.step()
        for k, v in {"loss": loss, **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(batches)
    sums.setdefault("loss_behav", float("nan"))
    return sums


ORDER, AUGMENT, BEHAVIOR = range(3)  # an epoch's random streams


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """The seed of one of epoch ``epoch``'s random streams (batch order, augmentations, behavioral inputs):
    each drawn anew every epoch from the run's seed, so a resumed run draws what an uninterrupted one would."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def epoch_order(rows: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The training rows in epoch ``epoch``'s order: new every epoch, and the same for a resumed run."""
    order = torch.Generator().manual_seed(epoch_seed(seed, epoch, ORDER))
    return rows[torch.randperm(len(rows), generator=order).numpy()]


def train_step(
    model, data: Data, behav: Behavior | None, cfg: TrainConfig, batch: np.ndarray, gen
) -> dict[str, torch.Tensor]:
    """Loss components for one batch of training rows (unweighted, unscaled)."""
    lay, device = data.lay, data.tokens.device
    params = {k: v[batch].to(device) for k, v in data.zoo.weights.items()}
    a, b = two_views(
        lay.arch,
        params,
        lay,
        gen,
        cfg.augment.noise,
        cfg.augment.erase_p,
        permute=cfg.augment.permute,
        normalizer=data.norm,
    )
    positions = lay.positions.to(device)
    (rec_a, z_a), (rec_b, z_b) = model(a.augmented, positions), model(b.augmented, positions)
    mask = lay.mask.to(device)
    parts = {
        "loss_struct": (struct_loss(rec_a, a.clean, mask) + struct_loss(rec_b, b.clean, mask)) / 2,
        "loss_contrast": nt_xent(model.project(z_a), model.project(z_b), cfg.loss.temperature),
    }
    if behav is not None:
        # Permutations preserve the function, so the original outputs are the target for view a too.
        # Models sorted by activation run each activation on one contiguous slice (see arch._activation).
        group = np.argsort(data.activations[batch], kind="stable")
        grouped = batch[group]
        x, target = behav.step(data, grouped, {k: v[group] for k, v in params.items()})
        parts["loss_behav"] = behav_loss(
            run_tokens(rec_a[group], lay, data.norm, x, list(data.activations[grouped])), target, cfg.loss
        )
    return parts
