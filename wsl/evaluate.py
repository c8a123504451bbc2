"""How good a trained autoencoder is: its reconstructions run as networks, its embeddings probed.

The zoo is split by model into train, validation and test. Every figure a
sweep may decide by is a *validation* figure: the per-epoch metrics are
computed on the validation models (probes are fit on the training models and
choose their regularisation there too). The test models are read only by
``evaluate_final``, once, at the end of a run that reports (``wsl train``, a
promoted run), under names that say so (``test_*``); sweep trials never call it.

- ``run_models``: test accuracy of (decoded) models and their agreement with
  the originals (share of test inputs on which both predict the same class).
- ``originals``: a held-out split's trained originals and their predictions on
  the test inputs they are judged on (all, or a fixed subset: ``eval.inputs``),
  computed once per run: they never change within it, so an epoch runs only
  the reconstructions.
- ``evaluate_epoch``: what a run reports every epoch (DESIGN.md's metrics):
  held-out structural loss, reconstruction of the validation split's trained
  models (all of them, and apart for *working* and *broken* originals: a
  reconstruction that repairs a broken model is unfaithful), the embedding's
  ridge probe of test accuracy on all rows and on *later* rows.
- ``copy_baselines``: the agreement a model that is *not* an original's
  reconstruction reaches with it (a copied training model): what a
  reconstruction's agreement must beat to carry anything of its own original.
- ``evaluate_final``: the baselines beside the probe on the same rows (ridge and
  boosting on weight statistics, boosting on metadata) and the probe's extra
  targets, on validation and test; every epoch figure again on the test models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from wsl import probes
from wsl.config import EvalConfig
from wsl.data import Data
from wsl.losses import struct_loss
from wsl.metrics import TEST_PREFIX
from wsl.model import Autoencoder, encode_all
from wsl.tokens import detokenize
from wsl.zoo.arch import Arch, forward
from wsl.zoo.tasks import Task

EXTRA_TARGETS = ("epoch", "gap")  # probed at the end of a run: probe_r2_epoch, probe_tau_gap, ...


INPUTS_SEED = 0  # draws eval.inputs' subset: not the run's seed, so every run on a zoo is judged on the same inputs


@dataclass(frozen=True)
class Originals:
    """A held-out split's trained originals and what they predict on the test inputs they are judged on.

    Their predictions never change within a run: computed once (``originals``), read by every epoch's
    reconstruction metrics and by the copy baselines, so that an epoch runs only the reconstructions.
    """

    split: str
    rows: np.ndarray  # [H] the split's rows at the zoo's last checkpoint (``final_rows``)
    x: Tensor  # [N, C, H, W] the test inputs: all of them, or ``eval.inputs``' fixed subset
    y: Tensor  # [N] their labels, on the predictions' device
    pred: Tensor  # [H, N] the originals' predicted classes on ``x``


@torch.no_grad()
def originals(data: Data, split: str, inputs: int | None = None) -> Originals:
    """``split``'s trained originals run once on the test inputs (``epoch_inputs(data.task, inputs)``)."""
    x, y = epoch_inputs(data.task, inputs)
    rows = final_rows(data, split)
    pred = _predictions(data.lay.arch, _weights(data, rows), list(data.activations[rows]), x)
    return Originals(split, rows, x, y.to(pred.device), pred)


def epoch_inputs(task: Task, count: int | None) -> tuple[Tensor, Tensor]:
    """The test inputs ``[N, C, H, W]`` and labels ``[N]`` a per-epoch evaluation runs on: all of them (``count``
    None, or at least the test set), else ``count`` drawn without replacement with ``INPUTS_SEED``, in the test
    set's order: the same subset every epoch, for every seed and every run with the same count on the task."""
    if count is None or count >= len(task.x_test):
        return task.x_test, task.y_test
    gen = torch.Generator().manual_seed(INPUTS_SEED)
    pick = torch.randperm(len(task.x_test), generator=gen)[:count].sort().values
    return task.x_test[pick], task.y_test[pick]


@torch.no_grad()
def run_models(
    arch: Arch, params: dict[str, Tensor], activations, task: Task, reference: dict[str, Tensor] | None = None
) -> dict[str, np.ndarray]:
    """Per-model test ``acc`` and, given reference params, ``agreement`` with the reference's predictions."""
    pred = _predictions(arch, params, activations, task.x_test)
    out = {"acc": (pred == task.y_test.to(pred.device)).double().mean(1).cpu().numpy()}
    if reference is not None:
        ref = _predictions(arch, reference, activations, task.x_test)
        out["agreement"] = (pred == ref).double().mean(1).cpu().numpy()
    return out


def _predictions(
    arch: Arch, params: dict[str, Tensor], activations, x: Tensor, models: int = 64, inputs: int = 256
) -> Tensor:
    """Predicted classes ``[M, N]`` of M models on the inputs ``x`` ``[N, C, H, W]``, in blocks of ``models``
    models by ``inputs`` inputs.

    A block's layer outputs are ``[models, inputs, features]`` however many models a split holds: run all at once,
    the copy baselines' 179 training models held 94 MB in their first layer alone (the default zoo; a training
    step's behavioral forward is the same 64 by 256). Each model's figures are those of a run of it alone.
    """
    first = next(iter(params.values()))
    acts = [activations] * len(first) if isinstance(activations, str) else list(activations)
    blocks = []
    for m in range(0, len(first), models):
        part = {k: v[m : m + models] for k, v in params.items()}
        logits = (
            forward(arch, part, x[s : s + inputs].to(first.device), acts[m : m + models])
            for s in range(0, len(x), inputs)
        )
        blocks.append(torch.cat([block.argmax(-1) for block in logits], dim=1))
    return torch.cat(blocks)


def positions_of(data: Data) -> Tensor:
    """The layout's position ids ``[T, 3]`` on the tokens' device."""
    return data.lay.positions.to(data.tokens.device)


@torch.no_grad()
def decode_rows(model: Autoencoder, data: Data, rows: np.ndarray) -> dict[str, Tensor]:
    """Weights (``name -> [len(rows), *shape]``) reconstructed from clean tokens."""
    model.eval()
    rec, _ = model(data.tokens[rows], positions_of(data))
    return detokenize(data.norm.denormalize(rec, data.lay), data.lay)


@torch.no_grad()
def evaluate_epoch(model: Autoencoder, data: Data, ev: EvalConfig, val: Originals) -> dict[str, float]:
    """Held-out structural loss and the validation models' scores: what a sweep may decide by.

    ``val``: ``originals(data, "val", ev.inputs)``, computed once per run.
    """
    model.eval()
    mask = data.lay.mask.to(data.tokens.device)
    tokens = data.tokens[data.rows["val"]]
    val_struct = float(struct_loss(model(tokens, positions_of(data))[0], tokens, mask))
    return {"val_loss_struct": val_struct, **scores(model, data, ev, val)}


def scores(model: Autoencoder, data: Data, ev: EvalConfig, held: Originals) -> dict[str, float]:
    """Reconstruction of ``held``'s originals and the embedding probe scored on their split (all and later
    rows): the metrics of ``wsl.metrics.SCORES``, unprefixed."""
    split = held.split
    out = reconstruction(model, data, ev.working_acc, held)
    probed = _probes(probes.ridge_probe, embeddings(model, data), _target(data, "test_acc"), data, ev, (split,))
    for suffix, by_split in probed.items():
        out[f"probe_r2{suffix}"], out[f"probe_tau{suffix}"] = by_split[split]["r2"], by_split[split]["tau"]
    return out


def probe_rows(data: Data, later_epoch: int) -> dict[str, dict[str, np.ndarray]]:
    """The probes' rows by split: all (suffix ``""``), and later checkpoints only (``"_later"``; a split may
    have none, e.g. in a zoo whose last checkpoint is before ``later_epoch``)."""
    epochs = data.zoo.models["epoch"].to_numpy()
    return {"": data.rows, "_later": {s: r[epochs[r] >= later_epoch] for s, r in data.rows.items()}}


def _probes(fit, features: np.ndarray, target: np.ndarray, data: Data, ev: EvalConfig, splits: tuple[str, ...]):
    """``fit`` (a probe of ``wsl.probes``) on the training rows, scored on ``splits``, for all and later rows:
    ``{suffix: {split: {"r2", "tau"}}}``; NaN where the training rows or the split's are none (whether a split
    has later rows never depends on another held-out split)."""
    model_ids = data.zoo.models["model_id"].to_numpy()
    out = {}
    for suffix, rows in probe_rows(data, ev.later_epoch).items():
        used = {s: rows[s] for s in ("train", *splits)}
        if not all(len(r) for r in used.values()):
            out[suffix] = {s: {"r2": float("nan"), "tau": float("nan")} for s in splits}
            continue
        fitted = fit(
            {s: features[r] for s, r in used.items()},
            {s: target[r] for s, r in used.items()},
            model_ids[rows["train"]],
        )
        out[suffix] = {s: fitted[s] for s in splits}
    return out


def _target(data: Data, name: str) -> np.ndarray:
    """[R] what a probe predicts for every row (``wsl.probes.probe_target``)."""
    return probes.probe_target(data.zoo.models, name)


def final_rows(data: Data, split: str) -> np.ndarray:
    """``split``'s rows at the zoo's last checkpoint: trained models, judged by what they do."""
    models = data.zoo.models
    last = models["epoch"].to_numpy() == models["epoch"].max()
    return np.intersect1d(data.rows[split], np.flatnonzero(last))


def reconstruction(model: Autoencoder, data: Data, working_acc: float, held: Originals) -> dict[str, float]:
    """Reconstructed ``held`` originals: all together, and working and broken originals apart.

    ``rec_acc_corr``: the correlation across models of original and reconstructed
    accuracy: whether reconstructions keep the originals' order and spread.
    """
    per = reconstruction_per_model(model, data, held)
    orig, rec, agree = per["test_acc"], per["rec_acc"], per["agreement"]
    working = orig >= working_acc
    return {
        "rec_acc": float(rec.mean()),
        "rec_acc_ratio": float(rec.mean() / orig.mean()),
        "rec_agreement": float(agree.mean()),
        "rec_agreement_working": _mean(agree[working]),
        "rec_acc_ratio_working": _mean(rec[working]) / _mean(orig[working]),
        "rec_agreement_broken": _mean(agree[~working]),
        "rec_acc_broken": _mean(rec[~working]),
        "orig_acc_broken": _mean(orig[~working]),
        "rec_acc_corr": float(np.corrcoef(orig, rec)[0, 1]) if orig.std() > 0 and rec.std() > 0 else float("nan"),
    }


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


@torch.no_grad()
def reconstruction_per_model(model: Autoencoder, data: Data, held: Originals) -> dict[str, np.ndarray]:
    """For each of ``held``'s originals: its row, its recorded test accuracy, its reconstruction's accuracy and
    agreement with it on ``held``'s inputs. Only the reconstructions run: the originals' predictions are held."""
    rows = held.rows
    pred = _predictions(data.lay.arch, decode_rows(model, data, rows), list(data.activations[rows]), held.x)
    test_acc = data.zoo.models["test_acc"].to_numpy()[rows]
    return {
        "row": rows,
        "test_acc": test_acc,
        "rec_acc": (pred == held.y).double().mean(1).cpu().numpy(),
        "agreement": (pred == held.pred).double().mean(1).cpu().numpy(),
    }


def _weights(data: Data, rows: np.ndarray) -> dict[str, Tensor]:
    """The zoo's weights of ``rows`` (name -> [len(rows), *shape]) on the tokens' device."""
    return {k: v[rows].to(data.tokens.device) for k, v in data.zoo.weights.items()}


@torch.no_grad()
def copy_baselines(data: Data, held: Originals, working_acc: float) -> dict[str, float]:
    """Agreement with ``held``'s originals, on ``held``'s inputs, of a training model copied in place of a
    reconstruction.

    Three copies per original, from the training split's trained models: ``best``, the
    one of highest recorded test accuracy (the same for every original); ``closest``,
    the one whose recorded accuracy is nearest the original's (what metadata alone
    finds); ``oracle``, the one that agrees most with this original (knows the
    answer). Reported apart for working and broken originals, as
    ``rec_agreement_working``/``_broken`` are: a reconstruction below these carries
    nothing of its own original. They depend on the zoo and the inputs alone: computed once a run.
    """
    train = final_rows(data, "train")
    acc = data.zoo.models["test_acc"].to_numpy()
    pred_train = _predictions(data.lay.arch, _weights(data, train), list(data.activations[train]), held.x)  # [T, N]
    agree = torch.stack([(pred_train == p).double().mean(1) for p in held.pred]).cpu().numpy()  # [H, T]
    closest = np.abs(acc[held.rows][:, None] - acc[train][None]).argmin(1)
    copies = {
        "best": agree[:, acc[train].argmax()],
        "closest": agree[np.arange(len(held.rows)), closest],
        "oracle": agree.max(1),
    }
    working = acc[held.rows] >= working_acc
    return {
        f"copy_{name}_agreement_{kind}": _mean(values[mask])
        for name, values in copies.items()
        for kind, mask in (("working", working), ("broken", ~working))
    }


def embeddings(model: Autoencoder, data: Data) -> np.ndarray:
    """[R, latent] float64: every row's embedding (the mean of its latent tokens), what the probes read."""
    return encode_all(model, data.tokens, positions_of(data)).double().cpu().numpy()


def evaluate_final(model: Autoencoder, data: Data, ev: EvalConfig) -> dict[str, float]:
    """The end of a run that reports: baselines and extra targets on validation and test, every score on test
    (on every test input, whatever ``ev.inputs`` is).

    ``baseline_*``: ridge on weight statistics (always: cheap); with ``ev.baselines``
    also ``boost_*``, boosting on the same statistics, and ``meta_*``, boosting on
    the metadata a user has without weights. Each is fit on the training models
    once and scored on the rows the embedding's probe is scored on: validation
    (unprefixed) and test (``test_*``). The extra targets: ``probe_r2_epoch``,
    ``probe_r2_gap`` (and their tau), on all rows.
    """
    stats = probes.weight_statistics(data.zoo.weights)
    baselines = {"baseline": (probes.ridge_probe, stats)}
    if ev.baselines:
        meta = probes.metadata(data.zoo.models)
        baselines |= {"boost": (probes.boosted_probe, stats), "meta": (probes.boosted_probe, meta)}
    held = ("val", "test")
    out = {}
    for name, (fit, features) in baselines.items():
        for suffix, by_split in _probes(fit, features, _target(data, "test_acc"), data, ev, held).items():
            out |= _named(by_split, name + "_{}" + suffix)
    features = embeddings(model, data)
    for target in EXTRA_TARGETS:
        out |= _named(
            _probes(probes.ridge_probe, features, _target(data, target), data, ev, held)[""], "probe_{}_" + target
        )
    held_test = originals(data, "test")
    test = {**scores(model, data, ev, held_test), **copy_baselines(data, held_test, ev.working_acc)}
    return out | {TEST_PREFIX + k: v for k, v in test.items()}


def _named(by_split: dict[str, dict[str, float]], pattern: str) -> dict[str, float]:
    """``{split: {"r2", "tau"}}`` as metric names ``pattern.format(score)``, prefixed ``test_`` on the test split."""
    return {
        (TEST_PREFIX if split == "test" else "") + pattern.format(score): probe[score]
        for split, probe in by_split.items()
        for score in ("r2", "tau")
    }
