"""How good a trained autoencoder is: its reconstructions run as networks, its embeddings probed.

- ``run_models``: test accuracy of (decoded) models and their agreement with
  the originals (share of test inputs on which both predict the same class).
- ``evaluate_epoch``: what a run reports every epoch (DESIGN.md's metrics):
  held-out structural loss, reconstruction of the held-out trained models
  (all of them, and apart for *working* and *broken* originals: a
  reconstruction that repairs a broken model is unfaithful), the embedding's
  ridge probe of test accuracy on all rows and on *later* rows.
- ``evaluate_final``: what it adds at the end: the three baselines on exactly
  the probe's rows (ridge and boosting on weight statistics, boosting on
  metadata) and the probe's extra targets (epoch, generalisation gap).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from wsl import probes
from wsl.config import EvalConfig
from wsl.data import Data
from wsl.losses import struct_loss
from wsl.model import Autoencoder, encode_all
from wsl.tokens import detokenize
from wsl.zoo.arch import Arch, forward
from wsl.zoo.tasks import Task

EXTRA_TARGETS = ("epoch", "gap")  # probed at the end of a run: probe_r2_epoch, probe_tau_gap, ...


@torch.no_grad()
def run_models(
    arch: Arch, params: dict[str, Tensor], activations, task: Task, reference: dict[str, Tensor] | None = None
) -> dict[str, np.ndarray]:
    """Per-model test ``acc`` and, given reference params, ``agreement`` with the reference's predictions."""
    pred = _predictions(arch, params, activations, task)
    out = {"acc": (pred == task.y_test.to(pred.device)).double().mean(1).cpu().numpy()}
    if reference is not None:
        ref = _predictions(arch, reference, activations, task)
        out["agreement"] = (pred == ref).double().mean(1).cpu().numpy()
    return out


def _predictions(arch: Arch, params: dict[str, Tensor], activations, task: Task, chunk: int = 256) -> Tensor:
    """Predicted classes [N, test inputs]."""
    device = next(iter(params.values())).device
    return torch.cat(
        [
            forward(arch, params, task.x_test[s : s + chunk].to(device), activations).argmax(-1)
            for s in range(0, len(task.x_test), chunk)
        ],
        dim=1,
    )


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
def evaluate_epoch(model: Autoencoder, data: Data, ev: EvalConfig) -> dict[str, float]:
    """Held-out structural loss, reconstruction accuracy/agreement and the embedding probe (all and later rows)."""
    model.eval()
    mask = data.lay.mask.to(data.tokens.device)
    val = data.tokens[data.rows["val"]]
    val_struct = float(struct_loss(model(val, positions_of(data))[0], val, mask))
    features = embeddings(model, data)
    target = probes.probe_target(data.zoo.models, "test_acc")
    out = {"val_loss_struct": val_struct, **reconstruction(model, data, ev.working_acc)}
    for suffix, rows in probe_rows(data, ev.later_epoch).items():
        probe = _probe(probes.ridge_probe, features, target, rows)
        out[f"probe_r2{suffix}"], out[f"probe_tau{suffix}"] = probe["r2"], probe["tau"]
    return out


def probe_rows(data: Data, later_epoch: int) -> dict[str, dict[str, np.ndarray] | None]:
    """The probes' rows by split: all (suffix ``""``), and later checkpoints only (``"_later"``; None if a split
    has none, e.g. a zoo whose last checkpoint is before ``later_epoch``)."""
    epochs = data.zoo.models["epoch"].to_numpy()
    later = {s: r[epochs[r] >= later_epoch] for s, r in data.rows.items()}
    return {"": data.rows, "_later": later if all(len(r) for r in later.values()) else None}


def _probe(fit, features: np.ndarray, target: np.ndarray, rows: dict[str, np.ndarray] | None) -> dict[str, float]:
    """``fit`` (a probe of ``wsl.probes``) on ``rows``; NaN when there are none."""
    if rows is None:
        return {"r2": float("nan"), "tau": float("nan")}
    return fit({s: features[r] for s, r in rows.items()}, {s: target[r] for s, r in rows.items()})


def final_test_rows(data: Data) -> np.ndarray:
    """Test-split rows at the zoo's last checkpoint: trained models, judged by what they do."""
    models = data.zoo.models
    last = models["epoch"].to_numpy() == models["epoch"].max()
    return np.intersect1d(data.rows["test"], np.flatnonzero(last))


def reconstruction(model: Autoencoder, data: Data, working_acc: float) -> dict[str, float]:
    """Reconstructed held-out models: all together, and working and broken originals apart.

    ``rec_acc_corr``: the correlation across models of original and reconstructed
    accuracy: whether reconstructions keep the originals' order and spread.
    """
    per = reconstruction_per_model(model, data)
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


def reconstruction_per_model(model: Autoencoder, data: Data) -> dict[str, np.ndarray]:
    """For each final test model: its row, original and reconstructed test accuracy, agreement."""
    rows = final_test_rows(data)
    original = {k: v[rows].to(data.tokens.device) for k, v in data.zoo.weights.items()}
    acts = list(data.activations[rows])
    rec = run_models(data.lay.arch, decode_rows(model, data, rows), acts, data.task, original)
    test_acc = data.zoo.models["test_acc"].to_numpy()[rows]
    return {"row": rows, "test_acc": test_acc, "rec_acc": rec["acc"], "agreement": rec["agreement"]}


def embeddings(model: Autoencoder, data: Data) -> np.ndarray:
    """[R, latent] float64: every row's embedding (the mean of its latent tokens), what the probes read."""
    return encode_all(model, data.tokens, positions_of(data)).double().cpu().numpy()


def embedding_probe(model: Autoencoder, data: Data, targets: tuple[str, ...] = ("test_acc",)) -> dict[str, dict]:
    """The ridge probe of the embeddings on all rows for each target: ``test_acc``, ``epoch`` or ``gap``.

    ``gap`` is the generalisation gap, train minus test accuracy: with the
    checkpoint's epoch, the field's extra probe targets.
    """
    features = embeddings(model, data)
    models = data.zoo.models
    return {t: _probe(probes.ridge_probe, features, probes.probe_target(models, t), data.rows) for t in targets}


def evaluate_final(model: Autoencoder, data: Data, ev: EvalConfig) -> dict[str, float]:
    """End-of-run extras: the baselines on the embedding probe's rows, and the probe's extra targets.

    ``baseline_*``: ridge on weight statistics (always: cheap); with ``ev.baselines``
    also ``boost_*``, boosting on the same statistics, and ``meta_*``, boosting on
    the metadata a user has without weights.
    """
    stats = probes.weight_statistics(data.zoo.weights)
    meta = probes.metadata(data.zoo.models)
    target = probes.probe_target(data.zoo.models, "test_acc")
    baselines = {"baseline": (probes.ridge_probe, stats)}
    if ev.baselines:
        baselines |= {"boost": (probes.boosted_probe, stats), "meta": (probes.boosted_probe, meta)}
    out = {}
    for suffix, rows in probe_rows(data, ev.later_epoch).items():
        for name, (fit, features) in baselines.items():
            probe = _probe(fit, features, target, rows)
            out[f"{name}_r2{suffix}"], out[f"{name}_tau{suffix}"] = probe["r2"], probe["tau"]
    for target, probe in embedding_probe(model, data, EXTRA_TARGETS).items():
        out[f"probe_r2_{target}"], out[f"probe_tau_{target}"] = probe["r2"], probe["tau"]
    return out
