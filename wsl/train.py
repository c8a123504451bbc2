"""One training run of the weight-space autoencoder, top to bottom.

    zoo -> tokens (normalised with training-split statistics)
    each step: two augmented views of a batch of training models
               -> reconstruction + latents -> structural, contrastive, behavioral losses
    each epoch: held-out metrics -> report(metrics) -> checkpoint

``train`` takes a typed ``TrainConfig`` and a ``report`` callback; it knows
nothing of Ray or Hydra (a sweep trial passes Ray's report, ``wsl train``
a progress printer). Metric names are the results table's columns (DESIGN.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wsl import evaluate as ev
from wsl.augment import erase, multiplicative_noise, permute_neurons
from wsl.device import pick_device
from wsl.errors import WslError
from wsl.losses import LossConfig, LossScaler, behav_loss, combine, nt_xent, run_tokens, struct_loss
from wsl.model import Autoencoder, ModelConfig, encode_all
from wsl.tokens import Normalizer, TokenLayout, detokenize, layout, tokenize
from wsl.zoo.arch import forward
from wsl.zoo.store import Zoo, load_zoo
from wsl.zoo.tasks import Task, load_task

CHECKPOINT = "checkpoint.pt"
EXTRA_TARGETS = ("epoch", "gap")  # probed at the end of a run: probe_r2_epoch, probe_tau_gap, ...


@dataclass
class TokenConfig:
    width: int = 32


@dataclass
class AugmentConfig:
    permute: bool = True
    noise: float = 0.1
    erase_p: float = 0.5


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 30
    batch_size: int = 64


@dataclass
class TrainConfig:
    name: str = "default"
    zoo: str = "zoos/digits-cnn"
    out: str = "runs/default"
    seed: int = 0
    device: str = "auto"
    generate: int = 32  # models sampled from the KDE at the end (0: skip generation)
    tokens: TokenConfig = field(default_factory=TokenConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        checks = [
            ("loss.gamma", self.loss.gamma, 0 <= self.loss.gamma <= 1, "in [0, 1]"),
            ("loss.beta", self.loss.beta, 0 <= self.loss.beta <= 1, "in [0, 1]"),
            ("loss.probe_size", self.loss.probe_size, self.loss.probe_size >= 1, ">= 1"),
            (
                "loss.probe_inputs",
                self.loss.probe_inputs,
                self.loss.probe_inputs in ("train", "noise", "mix"),
                "train, noise or mix",
            ),
            ("loss.distance", self.loss.distance, self.loss.distance in ("mse", "kl"), "mse or kl"),
            ("loss.temperature", self.loss.temperature, self.loss.temperature > 0, "> 0"),
            ("tokens.width", self.tokens.width, self.tokens.width >= 1, ">= 1"),
            ("optim.lr", self.optim.lr, self.optim.lr > 0, "> 0"),
            ("optim.epochs", self.optim.epochs, self.optim.epochs >= 1, ">= 1"),
            ("optim.batch_size", self.optim.batch_size, self.optim.batch_size >= 2, ">= 2 (contrastive pairs)"),
            (
                "model.d_model",
                self.model.d_model,
                self.model.d_model % self.model.heads == 0,
                f"a multiple of model.heads={self.model.heads}",
            ),
            ("model.latent_dim", self.model.latent_dim, self.model.latent_dim >= 1, ">= 1"),
            ("augment.erase_p", self.augment.erase_p, 0 <= self.augment.erase_p <= 1, "in [0, 1]"),
            ("augment.noise", self.augment.noise, self.augment.noise >= 0, ">= 0"),
        ]
        for key, value, ok, expected in checks:
            if not ok:
                raise WslError(f"config value {key}={value!r} is invalid: expected {expected}")


@dataclass
class Data:
    """Everything about the zoo a run needs, prepared once (tokens on the device)."""

    zoo: Zoo
    task: Task
    lay: TokenLayout
    norm: Normalizer
    tokens: torch.Tensor  # [R, T, W] normalised
    rows: dict[str, np.ndarray]  # split -> row indices
    probe_x: torch.Tensor  # [P, C, H, W]
    target_logits: torch.Tensor | None  # [R, P, classes]: originals on the probe set, training rows (None: beta=1)
    activations: np.ndarray  # [R]


def prepare(zoo: Zoo, cfg: TrainConfig, device: str, memo: dict | None = None) -> Data:
    """Tokens, splits, normaliser and the behavioral targets of ``zoo`` for ``cfg``.

    ``memo``: where to keep the targets (the originals' probe outputs, seconds
    to compute on a CPU) for the next call on the same zoo with the same probe
    set; a sweep worker running many trials of one sweep passes one dict.
    """
    task = load_task(zoo.task)
    lay = layout(zoo.arch, cfg.tokens.width)
    raw = tokenize(zoo.weights, lay)
    split = zoo.models["split"].to_numpy()
    rows = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    if any(len(r) == 0 for r in rows.values()):
        raise WslError(f"zoo {zoo.path} needs models in each of the train, val and test splits")
    norm = Normalizer.fit(raw[rows["train"]], lay)
    acts = zoo.models["activation"].to_numpy()
    probe_x = probe_inputs(task, cfg.loss.probe_size, cfg.loss.probe_inputs, cfg.seed).to(device)
    target = None
    if cfg.loss.beta < 1:  # seconds per run, so only when the loss reads it, and only for the rows it reads
        memo = {} if memo is None else memo
        key = (str(zoo.path), len(zoo), cfg.loss.probe_size, cfg.loss.probe_inputs, cfg.seed, device)
        target = memo.pop(key, None)  # re-inserted below: newest last
        if target is None:
            target = behavioral_targets(zoo, rows["train"], probe_x, acts)
        memo[key] = target
    return Data(zoo, task, lay, norm, norm.normalize(raw, lay).to(device), rows, probe_x, target, acts)


@torch.no_grad()
def behavioral_targets(
    zoo: Zoo, train: np.ndarray, probe_x: torch.Tensor, activations: np.ndarray, chunk: int = 256
) -> torch.Tensor:
    """[R, P, classes]: the ``train`` rows' logits on the probe set, ``chunk`` models at a time; zeros elsewhere
    (the loss reads no other row)."""
    weights = {k: v[train].to(probe_x.device) for k, v in zoo.weights.items()}
    acts = activations[train]
    outputs = torch.cat(
        [
            forward(zoo.arch, {k: v[s : s + chunk] for k, v in weights.items()}, probe_x, list(acts[s : s + chunk]))
            for s in range(0, len(train), chunk)
        ]
    )
    target = outputs.new_zeros(len(zoo), *outputs.shape[1:])
    target[train] = outputs
    return target


def probe_inputs(task: Task, size: int, kind: str, seed: int) -> torch.Tensor:
    """The behavioral probe set [size, C, H, W]: training inputs, uniform noise over their range, or half each."""
    gen = torch.Generator().manual_seed(seed)
    real = task.x_train[torch.randint(len(task.x_train), (size,), generator=gen)]
    lo, hi = task.x_train.min(), task.x_train.max()
    noise = lo + (hi - lo) * torch.rand(real.shape, generator=gen)
    if kind == "mix":
        return torch.cat([real[: size // 2], noise[size // 2 :]])
    return real if kind == "train" else noise


def train(
    cfg: TrainConfig,
    report: Callable[[dict], None],
    zoo: Zoo | None = None,
    resume: bool = False,
    memo: dict | None = None,
) -> dict:
    """Train, calling ``report(metrics)`` once per epoch; returns the final metrics (with generation).

    ``zoo``: already loaded (else read from ``cfg.zoo``); ``memo``: see ``prepare``.
    """
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    data = prepare(zoo if zoo is not None else load_zoo(cfg.zoo), cfg, device, memo)
    lay = data.lay
    model = Autoencoder(cfg.model, lay.width, lay.num_tokens, lay.max_positions).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scaler = LossScaler(cfg.loss.scale_by_first)
    out = Path(cfg.out)
    start = _resume(out, model, opt, scaler, cfg) if resume else 0
    gen = torch.Generator(device=device).manual_seed(cfg.seed + start)
    positions = lay.positions.to(device)
    metrics: dict = {}
    for epoch in range(start + 1, cfg.optim.epochs + 1):
        t0 = time.perf_counter()
        losses = train_epoch(model, opt, scaler, data, cfg, positions, gen)
        metrics = {"epoch": epoch, **losses, **evaluate_epoch(model, data, positions)}
        metrics["time_s"] = time.perf_counter() - t0
        _save(out, model, opt, scaler, epoch, cfg)
        report(metrics)
    return {**metrics, **evaluate_final(model, data, positions, cfg)}


def train_epoch(model, opt, scaler, data: Data, cfg: TrainConfig, positions, gen) -> dict[str, float]:
    """One pass over the training models; returns the mean of each loss component."""
    model.train()
    rows = data.rows["train"]
    order = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(int(gen.initial_seed())))]
    sums: dict[str, float] = {}
    batches = [order[i : i + cfg.optim.batch_size] for i in range(0, len(order), cfg.optim.batch_size)]
    for batch in [b for b in batches if len(b) >= 2]:
        parts = train_step(model, data, cfg, batch, positions, gen)
        loss = combine(
            cfg.loss,
            scaler("contrast", parts["loss_contrast"]),
            scaler("struct", parts["loss_struct"]),
            scaler("behav", parts["loss_behav"]) if "loss_behav" in parts else None,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for k, v in {"loss": loss, **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(batches)
    sums.setdefault("loss_behav", float("nan"))
    return sums


def train_step(model, data: Data, cfg: TrainConfig, batch: np.ndarray, positions, gen) -> dict[str, torch.Tensor]:
    """Loss components for one batch of training rows (unweighted, unscaled)."""
    lay, norm = data.lay, data.norm
    targets, inputs = [], []
    for _ in range(2):
        params = {k: v[batch].to(positions.device) for k, v in data.zoo.weights.items()}
        if cfg.augment.permute:
            params = permute_neurons(lay.arch, params, gen)
        clean = norm.normalize(tokenize(params, lay), lay)
        noisy = multiplicative_noise(clean, cfg.augment.noise, gen)
        targets.append(clean)
        inputs.append(erase(noisy, lay.mask.to(clean.device), cfg.augment.erase_p, generator=gen))
    (rec_a, z_a), (rec_b, z_b) = model(inputs[0], positions), model(inputs[1], positions)
    mask = lay.mask.to(positions.device)
    parts = {
        "loss_struct": (struct_loss(rec_a, targets[0], mask) + struct_loss(rec_b, targets[1], mask)) / 2,
        "loss_contrast": nt_xent(model.project(z_a), model.project(z_b), cfg.loss.temperature),
    }
    if cfg.loss.beta < 1:
        # Permutations preserve the function, so the original outputs are the target for view a too.
        logits = run_tokens(rec_a, lay, norm, data.probe_x, list(data.activations[batch]))
        parts["loss_behav"] = behav_loss(logits, data.target_logits[batch], cfg.loss)
    return parts


@torch.no_grad()
def decode_rows(model: Autoencoder, data: Data, rows: np.ndarray, positions) -> dict[str, torch.Tensor]:
    """Weights (``name -> [len(rows), *shape]``) reconstructed from clean tokens."""
    model.eval()
    rec, _ = model(data.tokens[rows], positions)
    return detokenize(data.norm.denormalize(rec, data.lay), data.lay)


@torch.no_grad()
def evaluate_epoch(model: Autoencoder, data: Data, positions) -> dict[str, float]:
    """Held-out structural loss, reconstruction accuracy/agreement and the embedding probe."""
    model.eval()
    mask = data.lay.mask.to(positions.device)
    val = data.tokens[data.rows["val"]]
    val_struct = float(struct_loss(model(val, positions)[0], val, mask))
    rec = reconstruction(model, data, positions)
    probe = embedding_probe(model, data, positions)["test_acc"]
    return {"val_loss_struct": val_struct, **rec, "probe_r2": probe["r2"], "probe_tau": probe["tau"]}


def final_test_rows(data: Data) -> np.ndarray:
    """Test-split rows at the zoo's last checkpoint: trained models, judged by what they do."""
    models = data.zoo.models
    last = models["epoch"].to_numpy() == models["epoch"].max()
    return np.intersect1d(data.rows["test"], np.flatnonzero(last))


def reconstruction(model: Autoencoder, data: Data, positions) -> dict[str, float]:
    per = reconstruction_per_model(model, data, positions)
    return {
        "rec_acc": float(per["rec_acc"].mean()),
        "rec_acc_ratio": float(per["rec_acc"].mean() / per["test_acc"].mean()),
        "rec_agreement": float(per["agreement"].mean()),
    }


def reconstruction_per_model(model: Autoencoder, data: Data, positions) -> dict[str, np.ndarray]:
    """For each final test model: its row, original and reconstructed test accuracy, agreement."""
    rows = final_test_rows(data)
    original = {k: v[rows].to(positions.device) for k, v in data.zoo.weights.items()}
    acts = list(data.activations[rows])
    rec = ev.run_models(data.lay.arch, decode_rows(model, data, rows, positions), acts, data.task, original)
    test_acc = data.zoo.models["test_acc"].to_numpy()[rows]
    return {"row": rows, "test_acc": test_acc, "rec_acc": rec["acc"], "agreement": rec["agreement"]}


def embedding_probe(
    model: Autoencoder, data: Data, positions, targets: tuple[str, ...] = ("test_acc",)
) -> dict[str, dict[str, float]]:
    """The ridge probe of the embeddings for each target: ``test_acc``, ``epoch`` or ``gap``.

    ``gap`` is the generalisation gap, train minus test accuracy: with the
    checkpoint's epoch, the field's extra probe targets.
    """
    features = _by_split(encode_all(model, data.tokens, positions).double().cpu().numpy(), data)
    return {t: ev.ridge_probe(features, _by_split(ev.probe_target(data.zoo.models, t), data)) for t in targets}


def _by_split(values: np.ndarray, data: Data) -> dict[str, np.ndarray]:
    """values [R, ...] -> split name -> that split's rows, as the probes take them."""
    return {s: values[r] for s, r in data.rows.items()}


def evaluate_final(model: Autoencoder, data: Data, positions, cfg: TrainConfig) -> dict[str, float]:
    """End-of-run extras: the weight-statistics baseline, the probe's extra targets and, if asked, generation."""
    stats = _by_split(ev.weight_statistics(data.zoo.weights), data)
    base = ev.ridge_probe(stats, _by_split(ev.probe_target(data.zoo.models, "test_acc"), data))
    out = {"baseline_r2": base["r2"], "baseline_tau": base["tau"]}
    for target, probe in embedding_probe(model, data, positions, EXTRA_TARGETS).items():
        out[f"probe_r2_{target}"], out[f"probe_tau_{target}"] = probe["r2"], probe["tau"]
    if cfg.generate > 0:
        out.update(generation(model, data, positions, cfg.generate, cfg.seed))
    return out


def generation_population(models: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, str]:
    """The best 30% (at least 2) of ``rows`` that share the best model's activation function; that function.

    A network is its weights *and* its activation function, and the weights do
    not say which: a tanh network run with GELU is broken. So generation (the
    KDE, the anchors, both baselines) stays within one activation, the best model's.
    """
    acc = models["test_acc"].to_numpy()
    act = models["activation"].to_numpy()
    best = act[rows[np.argmax(acc[rows])]]
    same = rows[act[rows] == best]
    return same[np.argsort(-acc[same])][: max(2, int(0.3 * len(same)))], str(best)


@torch.no_grad()
def generation(model: Autoencoder, data: Data, positions, n: int, seed: int) -> dict[str, float]:
    """Decode KDE samples of the best training models' embeddings; accuracy and novelty beside two baselines.

    The best models: those of ``generation_population`` at the last epoch.

    Baselines: a random top training model plus Gaussian noise of the same
    per-tensor scale as the generated models' distance, and the mean of the top
    training models. Novelty = L2 distance to the nearest training model, up
    to the order of hidden units (a shuffled copy is still a copy).
    """
    models = data.zoo.models
    train = data.rows["train"]
    last = train[models["epoch"].to_numpy()[train] == models["epoch"].max()]
    top, act = generation_population(models, last)
    acts = [act] * n
    model.eval()
    z = model.encode(data.tokens[top], positions)  # [k, T, latent]
    emb = z.mean(1).cpu().numpy()
    samples = torch.as_tensor(ev.kde_sample(emb, n, seed), dtype=z.dtype, device=z.device)
    # The decoder reads per-token latents: shift each top model's tokens to the sampled mean.
    anchor = z[torch.randint(len(top), (n,), generator=torch.Generator().manual_seed(seed))]
    latents = anchor - anchor.mean(1, keepdim=True) + samples[:, None, :]
    gen_params = detokenize(data.norm.denormalize(model.decode(latents, positions), data.lay), data.lay)
    arch = data.lay.arch
    pool = {k: v[last].to(z.device) for k, v in data.zoo.weights.items()}  # moved once, read three times

    def novelty(params) -> float:
        return float(ev.nearest_distance_aligned(arch, params, pool).mean())

    gen_novelty = novelty(gen_params)
    top_params = {k: v[top].to(z.device) for k, v in data.zoo.weights.items()}
    picks = torch.randint(len(top), (n,), generator=torch.Generator().manual_seed(seed + 1))
    scale = gen_novelty / np.sqrt(arch.num_params)
    noisy = {k: v[picks] + scale * torch.randn_like(v[picks]) for k, v in top_params.items()}
    mean = {k: v.mean(0, keepdim=True) for k, v in top_params.items()}
    run = ev.run_models
    return {
        "gen_acc": float(run(arch, gen_params, acts, data.task)["acc"].mean()),
        "gen_novelty": gen_novelty,
        "noise_acc": float(run(arch, noisy, acts, data.task)["acc"].mean()),
        "noise_novelty": novelty(noisy),
        "avg_acc": float(run(arch, mean, acts[:1], data.task)["acc"].mean()),
        "avg_novelty": novelty(mean),
    }


def _save(out: Path, model, opt, scaler: LossScaler, epoch: int, cfg: TrainConfig) -> None:
    """Checkpoint atomically: a crash mid-write leaves the previous checkpoint intact."""
    out.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optim": opt.state_dict(),
        "scaler": scaler.first,
        "epoch": epoch,
        "config": asdict(cfg),
    }
    tmp = out / (CHECKPOINT + ".tmp")
    torch.save(state, tmp)
    tmp.replace(out / CHECKPOINT)


def _resume(out: Path, model, opt, scaler: LossScaler, cfg: TrainConfig) -> int:
    path = out / CHECKPOINT
    if not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    _check_same_autoencoder(path, state["config"], cfg)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optim"])
    scaler.first.update(state["scaler"])
    return int(state["epoch"])


def _check_same_autoencoder(path: Path, saved: dict, cfg: TrainConfig) -> None:
    """A checkpoint resumes only into the autoencoder it was trained as (defaults change: say which key)."""
    for section in ("tokens", "model"):
        for key, value in saved[section].items():
            now = getattr(getattr(cfg, section), key)
            if now != value:
                raise WslError(
                    f"{path} was trained with {section}.{key}={value!r}, not {now!r}: resume with the run's "
                    f"settings ({section}.{key}={value!r}), or start a new run under another name"
                )
